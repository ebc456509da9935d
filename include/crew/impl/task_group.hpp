//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_TASK_GROUP_HPP
#define CREW_IMPL_TASK_GROUP_HPP

#include <crew/detail/group_core.hpp>
#include <crew/detail/handler_ops.hpp>
#include <crew/detail/task_executor.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <mutex>
#include <optional>
#include <system_error>

namespace crew {
namespace detail {

// ---------------------------------------------------------------- task traits

template <class T>
struct awaitable_traits : std::false_type {};

template <class T, class E>
struct awaitable_traits<net::awaitable<T, E>> : std::true_type {
  using result_type = T;
  using executor_type = E;
};

template <class Task>
struct task_traits {
  using task_type = std::decay_t<Task>;
  static constexpr bool is_awaitable = awaitable_traits<task_type>::value;

  static auto awaitable_type_of() {
    if constexpr (is_awaitable)
      return std::type_identity<task_type>{};
    else if constexpr (std::is_invocable_v<task_type&>)
      return std::type_identity<std::invoke_result_t<task_type&>>{};
    else
      return std::type_identity<void>{};
  }
  using awaitable_type = typename decltype(awaitable_type_of())::type;

  static constexpr bool valid_shape = awaitable_traits<awaitable_type>::value;
  static_assert(valid_shape,
                "crew: a task is an awaitable<void>, an awaitable<error_code>, or a callable "
                "taking no arguments that returns one");
  static_assert(!is_awaitable || !std::is_lvalue_reference_v<Task>,
                "crew: an awaitable can run only once; pass it as an rvalue (std::move)");

  using result_type = typename awaitable_traits<awaitable_type>::result_type;
  using executor_type = typename awaitable_traits<awaitable_type>::executor_type;
  static_assert(std::is_void_v<result_type> ||
                    std::is_same_v<result_type, boost::system::error_code> ||
                    std::is_same_v<result_type, std::error_code>,
                "crew: a task's awaitable returns void, boost::system::error_code or "
                "std::error_code");
};

template <class E>
struct is_task_executor : std::false_type {};
template <class I>
struct is_task_executor<task_executor<I>> : std::true_type {};

template <class Inner, class AnyExecutor, class F>
bool visit_if(AnyExecutor const& ex, F& f, task_node*& result) {
  if (auto const* p = ex.template target<Inner>()) {
    result = f(*p);
    return true;
  }
  if (auto const* p = ex.template target<task_executor<Inner>>()) {
    result = f(p->get_inner_executor());
    return true;
  }
  return false;
}

/// Calls `f` with the concrete executor a task of a group on `ex` should run on: the
/// io_context, thread_pool or strand executor behind an any_io_executor when there is
/// one, without any crew task executor that may wrap it. A task executor over an
/// io_context or thread_pool executor fits any_io_executor's in-place storage; over
/// anything bigger (a strand, another any_io_executor) each copy allocates.
template <class Executor, class F>
task_node* visit_inner(Executor const& ex, F&& f) {
  if constexpr (std::is_same_v<Executor, net::any_io_executor>) {
    using io = net::io_context::executor_type;
    using pool = net::thread_pool::executor_type;
    task_node* n = nullptr;
    if (visit_if<io>(ex, f, n) || visit_if<net::strand<io>>(ex, f, n) || visit_if<pool>(ex, f, n) ||
        visit_if<net::strand<pool>>(ex, f, n))
      return n;
    if (auto const* p = ex.template target<task_executor<net::any_io_executor>>())
      return f(p->get_inner_executor());
    return f(ex);
  } else if constexpr (is_task_executor<Executor>::value) {
    return f(ex.get_inner_executor());
  } else {
    return f(ex);
  }
}

// ---------------------------------------------------------------- task entry

inline std::exception_ptr failure_of(boost::system::error_code const& ec) {
  if (!ec) return nullptr;
  return std::make_exception_ptr(boost::system::system_error(ec));
}

inline std::exception_ptr failure_of(std::error_code const& ec) {
  if (!ec) return nullptr;
  return std::make_exception_ptr(std::system_error(ec));
}

template <class Task>
decltype(auto) awaitable_of(Task& task) {
  if constexpr (task_traits<Task>::is_awaitable)
    return std::move(task);
  else
    return task();
}

/// The task entry frame's reference to its node. When the frame is destroyed
/// before the task reported its end (its io_context was destroyed with the task
/// suspended, or before it started), it reports the task as abandoned: cancelled.
class entry_ref {
 public:
  explicit entry_ref(task_node* n) noexcept : n_(n) {}  // adopts a reference
  entry_ref(entry_ref&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  entry_ref& operator=(entry_ref&&) = delete;
  ~entry_ref() {
    if (!n_) return;
    if (!n_->finished()) n_->core()->task_abandoned(n_);
    n_->release();
  }
  task_node* get() const noexcept { return n_; }
  task_node* operator->() const noexcept { return n_; }

 private:
  task_node* n_;
};

/// The bottom frame of a task's coroutine stack: runs the task, then reports its
/// outcome inline. Unlike co_spawn's entry point it has no initial dispatch and no
/// final post, and every exception, cancellation included, is caught.
template <class AwaitableExecutor, class Result, class Task>
net::awaitable<net::detail::awaitable_thread_entry_point, AwaitableExecutor> task_entry(
    entry_ref node, Task task) {
  std::exception_ptr e;
  try {
    if constexpr (std::is_void_v<Result>)
      co_await awaitable_of(task);
    else
      e = failure_of(co_await awaitable_of(task));
  } catch (...) {
    e = std::current_exception();
  }
  node->core()->task_done(node.get(), std::move(e));
}

template <class AwaitableExecutor, class Inner>
class node_impl final : public task_node {
 public:
  using allocator_type = net::recycling_allocator<node_impl>;

  node_impl(group_core* core, Inner const& inner) : task_node(core, &table), inner_(inner) {}

  std::optional<net::detail::awaitable_thread<AwaitableExecutor>> thread_;

 private:
  struct launcher {
    net::detail::awaitable_thread<AwaitableExecutor> thread;
    task_node* node;  // kept alive by the section_function
    void operator()() {
      node->emit_pending_before_start();
      thread.launch();
    }
  };

  static void destroy(task_node* n) noexcept {
    auto* self = static_cast<node_impl*>(n);
    allocator_type alloc;
    std::allocator_traits<allocator_type>::destroy(alloc, self);
    alloc.deallocate(self, 1);
  }

  static void start(task_node* n) noexcept {
    auto* self = static_cast<node_impl*>(n);
    launcher l{std::move(*self->thread_), self};
    self->thread_.reset();
    try {
      net::execution::execute(net::require(self->inner_, net::execution::blocking.never),
                              section_function<launcher>(self, std::move(l)));
    } catch (...) {
      // Posting allocates; without memory the task can neither run nor report.
      std::terminate();
    }
  }

  static void discard(task_node* n) noexcept {
    // Never admitted: its group keeps no account of it, and may be gone by the time
    // the frame is destroyed.
    n->mark_finished();
    static_cast<node_impl*>(n)->thread_.reset();
  }

  static constexpr operations table{&destroy, &start, &discard};

  Inner inner_;
};

template <class Task, class Inner>
task_node* make_task_node(group_core* core, Inner const& inner, Task&& task,
                          spawn_options&& options, source_location site) {
  using traits = task_traits<Task>;
  using awaitable_executor = typename traits::executor_type;
  static_assert(std::is_constructible_v<awaitable_executor, task_executor<Inner>>,
                "crew: a task's awaitable must use a polymorphic executor such as "
                "net::any_io_executor (the default of net::awaitable)");
  using node_type = node_impl<awaitable_executor, Inner>;

  typename node_type::allocator_type alloc;
  node_type* n = alloc.allocate(1);
  try {
    std::allocator_traits<decltype(alloc)>::construct(alloc, n, core, inner);
  } catch (...) {
    alloc.deallocate(n, 1);
    throw;
  }
  entry_ref owner(n);  // the initial reference, handed to the task's entry frame
  n->id_ = next_task_id();
  n->name_ = std::move(options.name);
  n->on_failure_ = std::move(options.on_failure);
  n->site_ = site;
  net::cancellation_slot slot = n->signal_.slot();
  net::cancellation_state state(slot);
  awaitable_executor ex{task_executor<Inner>(inner, n)};
  n->thread_.emplace(task_entry<awaitable_executor, typename traits::result_type>(
                         std::move(owner), typename traits::task_type(std::forward<Task>(task))),
                     ex, slot, state);
  return n;
}

// ---------------------------------------------------------------- group state

template <class Executor>
class group_state final : public group_core {
 public:
  group_state(Executor const& ex, task_group_options const& options)
      : group_core(options), ex_(ex) {}

 private:
  void post_to_strand(std::function<void()> fn) override {
    std::call_once(strand_once_, [this] { strand_.emplace(net::make_strand(ex_)); });
    net::post(*strand_, std::move(fn));
  }

  Executor ex_;
  std::once_flag strand_once_;
  std::optional<net::strand<Executor>> strand_;
};

/// Installed in a waiter's cancellation slot. Holds no pointer to the operation, so
/// an emission after completion is harmless.
struct wait_cancellation {
  std::weak_ptr<group_core> core;
  std::uint64_t key;

  void operator()(net::cancellation_type type) const {
    if (type == net::cancellation_type::none) return;
    if (auto c = core.lock()) c->abort_waiter(key);
  }
};

template <class Handler, class DefaultExecutor>
class wait_op final : public wait_op_base {
 public:
  using timer_type =
      net::basic_waitable_timer<std::chrono::steady_clock,
                                net::wait_traits<std::chrono::steady_clock>, DefaultExecutor>;

  using allocator_type = decltype(rebound_allocator<wait_op>(std::declval<Handler const&>()));

  wait_op(Handler&& h, DefaultExecutor const& ex)
      : alloc_(rebound_allocator<wait_op>(h)), handler_(std::move(h), ex) {}

  void start_timer(std::shared_ptr<group_core> const& core, std::chrono::steady_clock::duration d) {
    timer_.emplace(handler_.io_executor(), d);
    // One reference for the group's link, one for the timer's handler; the handler
    // drops its reference even if it is destroyed without being called.
    refs_ = 2;
    struct timer_ref {
      wait_op* op;
      timer_ref(wait_op* o) noexcept : op(o) {}
      timer_ref(timer_ref&& o) noexcept : op(std::exchange(o.op, nullptr)) {}
      ~timer_ref() {
        if (op) op->drop();
      }
    };
    timer_->async_wait(
        [ref = timer_ref(this), weak = std::weak_ptr<group_core>(core)](boost::system::error_code) {
          auto c = weak.lock();
          if (c && c->detach_waiter(ref.op)) {
            ref.op->finish(std::make_exception_ptr(
                boost::system::system_error(make_error_code(error::timed_out))));
            ref.op->drop();  // the group's reference: it will never complete this op now
          }
        });
  }

  void complete(std::exception_ptr result) noexcept override {
    if (timer_) timer_->cancel();
    finish(std::move(result));
    drop();
  }

  static wait_op* create(Handler&& h, DefaultExecutor const& ex) {
    auto alloc = rebound_allocator<wait_op>(h);
    wait_op* p = alloc.allocate(1);
    try {
      return new (p) wait_op(std::move(h), ex);
    } catch (...) {
      alloc.deallocate(p, 1);
      throw;
    }
  }

  /// Frees an operation that was never linked.
  void destroy() noexcept {
    allocator_type alloc = alloc_;
    this->~wait_op();
    alloc.deallocate(this, 1);
  }

 private:
  void finish(std::exception_ptr result) noexcept { handler_.post(std::move(result)); }

  void drop() noexcept {
    if (--refs_ == 0) destroy();
  }

  allocator_type alloc_;
  completion_holder<Handler, DefaultExecutor> handler_;
  std::optional<timer_type> timer_;
  std::atomic<int> refs_{1};
};

/// The waiting side of an async_spawn; lives until told whether its task got a slot.
template <class Handler, class DefaultExecutor>
class spawn_op final : public spawn_waiter {
 public:
  spawn_op(Handler&& h, DefaultExecutor const& ex) : handler_(std::move(h), ex) {}

  static spawn_op* create(Handler&& h, DefaultExecutor const& ex) {
    auto alloc = rebound_allocator<spawn_op>(h);
    spawn_op* p = alloc.allocate(1);
    try {
      return new (p) spawn_op(std::move(h), ex);
    } catch (...) {
      alloc.deallocate(p, 1);
      throw;
    }
  }

  void admitted(boost::system::error_code ec) noexcept override {
    auto holder = std::move(handler_);
    auto alloc = rebound_allocator<spawn_op>(holder.handler());
    this->~spawn_op();
    alloc.deallocate(this, 1);
    holder.post(ec);
  }

 private:
  completion_holder<Handler, DefaultExecutor> handler_;
};

struct spawn_cancellation {
  std::weak_ptr<group_core> core;
  std::uint64_t key;

  void operator()(net::cancellation_type type) const {
    if (type == net::cancellation_type::none) return;
    if (auto c = core.lock()) {
      if (task_node* n = c->withdraw_spawn(key)) {
        std::exchange(n->waiter_, nullptr)->admitted(net::error::operation_aborted);
        n->discard();
      }
    }
  }
};

}  // namespace detail

// ---------------------------------------------------------------- basic_task_group

template <class Executor>
basic_task_group<Executor>::basic_task_group(executor_type const& ex)
    : basic_task_group(ex, task_group_options{}) {}

template <class Executor>
basic_task_group<Executor>::basic_task_group(executor_type const& ex, task_group_options options)
    : ex_(ex), state_(std::make_shared<detail::group_state<Executor>>(ex, options)) {}

template <class Executor>
basic_task_group<Executor>& basic_task_group<Executor>::operator=(
    basic_task_group&& other) noexcept {
  if (this != &other) {
    if (state_) state_->shutdown();
    ex_ = std::move(other.ex_);
    state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_task_group<Executor>::~basic_task_group() {
  if (state_) state_->shutdown();
}

template <class Executor>
detail::group_state<Executor>& basic_task_group<Executor>::state() const {
  if (!state_) throw std::logic_error("crew::task_group: the group was moved from");
  return *state_;
}

template <class Executor>
template <class Task>
detail::task_node* basic_task_group<Executor>::make_task(Task&& task, spawn_options&& options,
                                                         source_location site) {
  auto& st = state();
  return detail::visit_inner(ex_, [&](auto const& inner) {
    return detail::make_task_node(&st, inner, std::forward<Task>(task), std::move(options), site);
  });
}

template <class Executor>
template <class Task>
void basic_task_group<Executor>::spawn(Task&& task, source_location site) {
  spawn(std::forward<Task>(task), spawn_options{}, site);
}

template <class Executor>
template <class Task>
void basic_task_group<Executor>::spawn(Task&& task, spawn_options options, source_location site) {
  auto* n = make_task(std::forward<Task>(task), std::move(options), site);
  state_->admit(n, detail::group_core::admit_mode::spawn);
}

template <class Executor>
template <class Task>
bool basic_task_group<Executor>::try_spawn(Task&& task, source_location site) {
  return try_spawn(std::forward<Task>(task), spawn_options{}, site);
}

template <class Executor>
template <class Task>
bool basic_task_group<Executor>::try_spawn(Task&& task, spawn_options options,
                                           source_location site) {
  auto* n = make_task(std::forward<Task>(task), std::move(options), site);
  if (state_->admit(n, detail::group_core::admit_mode::try_spawn) ==
      detail::group_core::admitted::refused) {
    n->discard();
    return false;
  }
  return true;
}

template <class Executor>
template <class Task,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) CompletionToken>
auto basic_task_group<Executor>::async_spawn(Task&& task, CompletionToken&& token,
                                             source_location site) {
  return async_spawn(std::forward<Task>(task), spawn_options{},
                     std::forward<CompletionToken>(token), site);
}

template <class Executor>
template <class Task,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) CompletionToken>
auto basic_task_group<Executor>::async_spawn(Task&& task, spawn_options options,
                                             CompletionToken&& token, source_location site) {
  using task_type = typename detail::task_traits<Task>::task_type;
  return net::async_initiate<CompletionToken, void(boost::system::error_code)>(
      [this, site](auto handler, task_type t, spawn_options o) {
        using op_type = detail::spawn_op<decltype(handler), Executor>;
        auto& st = state();
        auto slot = net::get_associated_cancellation_slot(handler);
        auto* n = make_task(std::move(t), std::move(o), site);
        try {
          n->waiter_ = op_type::create(std::move(handler), ex_);
        } catch (...) {
          n->discard();
          throw;
        }
        // Once admitted, `n` may run and end on another thread: use copies only.
        auto const key = n->spawn_key_ = st.next_key();
        if (st.admit(n, detail::group_core::admit_mode::async_spawn) ==
                detail::group_core::admitted::queued &&
            slot.is_connected())
          slot.template emplace<detail::spawn_cancellation>(
              detail::spawn_cancellation{state_, key});
      },
      token, task_type(std::forward<Task>(task)), std::move(options));
}

template <class Executor>
void basic_task_group<Executor>::set_limit(std::size_t limit) {
  state().set_limit(limit);
}

template <class Executor>
std::size_t basic_task_group<Executor>::limit() const noexcept {
  return state_ ? state_->limit() : 0;
}

template <class Executor>
void basic_task_group<Executor>::cancel(net::cancellation_type type) {
  state().cancel(type);
}

template <class Executor>
std::size_t basic_task_group<Executor>::size() const noexcept {
  return state_ ? state_->size() : 0;
}

template <class Executor>
std::vector<task_failure> basic_task_group<Executor>::failures() const {
  return state().failures();
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_task_group<Executor>::async_wait(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [this](auto handler) {
        using op_type = detail::wait_op<decltype(handler), Executor>;
        auto& st = state();
        auto slot = net::get_associated_cancellation_slot(handler);
        auto* op = op_type::create(std::move(handler), ex_);
        op->key_ = st.next_key();
        if (slot.is_connected())
          slot.template emplace<detail::wait_cancellation>(
              detail::wait_cancellation{state_, op->key_});
        st.add_waiter(op);
      },
      token);
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_task_group<Executor>::async_wait_for(std::chrono::steady_clock::duration timeout,
                                                CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [this, timeout](auto handler) {
        using op_type = detail::wait_op<decltype(handler), Executor>;
        auto& st = state();
        auto slot = net::get_associated_cancellation_slot(handler);
        auto* op = op_type::create(std::move(handler), ex_);
        op->key_ = st.next_key();
        try {
          op->start_timer(state_, timeout);
        } catch (...) {
          op->destroy();
          throw;
        }
        if (slot.is_connected())
          slot.template emplace<detail::wait_cancellation>(
              detail::wait_cancellation{state_, op->key_});
        st.add_waiter(op);
      },
      token);
}

}  // namespace crew

#endif
