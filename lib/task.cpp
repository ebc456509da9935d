//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task layer's launcher. Every crew task is built here: one coroutine frame at the
// bottom of its stack (task_entry) that runs the body, catches everything and reports
// the outcome to the task's owner inline, on the task executor that brackets each of
// its steps in a section. There is no co_spawn: no initial dispatch, no final post, no
// re-entrant completion, no lost cancellation exception (DESIGN §2).
//
#include <crew/detail/io_pool.hpp>
#include <crew/detail/seam.hpp>
#include <crew/detail/spin_mutex.hpp>
#include <crew/detail/task.hpp>
#include <crew/detail/task_executor.hpp>
#include <crew/detail/task_memory.hpp>
#include <crew/io_pool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace crew::detail {

// ---------------------------------------------------------------- task_node

std::uint64_t next_task_id() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

crew::trace_id task_node::trace() noexcept {
  crew::trace_id t = peek_trace();
  if (!t) {
    t = crew::trace_id::generate();
    set_trace(t);
  }
  return t;
}

void task_node::pause(unsigned& spins) noexcept {
  spin_pause(spins);
}

void task_node::request_cancel(boost::asio::cancellation_type type) noexcept {
  if (type == boost::asio::cancellation_type::none) return;
  pending_type_.fetch_or(static_cast<std::uint32_t>(type), std::memory_order_acq_rel);
  std::uint32_t const s = state_.fetch_or(pending | requested, std::memory_order_acq_rel);
  if ((s & (active_mask | emitting)) == 0) emit_pending();
}

void task_node::emit_taken_type() noexcept {
  auto const type = static_cast<boost::asio::cancellation_type>(
      pending_type_.exchange(0, std::memory_order_acq_rel));
  // An emission of `none` would clear the coroutine's cancelled state.
  if (type == boost::asio::cancellation_type::none) return;
  task_node* const outer = std::exchange(emitting_node, this);
  signal_.get().emit(type);
  emitting_node = outer;
}

void task_node::emit_pending_before_start() noexcept {
  std::uint32_t s = state_.load(std::memory_order_acquire);
  while ((s & pending) != 0) {
    if (state_.compare_exchange_weak(s, s & ~pending, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      emit_taken_type();
      return;
    }
  }
}

void task_node::emit_pending() noexcept {
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((s & (active_mask | emitting)) != 0 || (s & pending) == 0 || (s & started) == 0) return;
    if ((s & finished_bit) != 0) {
      if (state_.compare_exchange_weak(s, s & ~pending, std::memory_order_acq_rel,
                                       std::memory_order_acquire))
        return;
      continue;
    }
    if (!state_.compare_exchange_weak(s, (s & ~pending) | emitting, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    emit_taken_type();
    s = state_.fetch_and(~emitting, std::memory_order_acq_rel) & ~emitting;
  }
}

// ---------------------------------------------------------------- shapes

void throw_bad_task(char const* who, char const* what) {
  throw std::invalid_argument(std::string(who) + ": the task " + what);
}

task_body task_factory::bind() noexcept {
  return std::visit(
      [](auto& f) -> task_body {
        using fn_type = std::decay_t<decltype(f)>;
        return fn_type([p = &f] { return (*p)(); });
      },
      f_);
}

namespace {

// ---------------------------------------------------------------- the entry frame

template <class Body>
decltype(auto) awaitable_of(Body& body) {
  if constexpr (awaitable_traits<Body>::value)
    return std::move(body);
  else
    return body();
}

/// The entry frame's reference to its node. When the frame is destroyed before the
/// task reported its end (its io_context was destroyed with the task suspended, or
/// before it started), it reports the task as abandoned.
class entry_ref {
 public:
  explicit entry_ref(task_node* n) noexcept : n_(n) {}  // adopts a reference
  entry_ref(entry_ref&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  entry_ref& operator=(entry_ref&&) = delete;
  ~entry_ref() {
    if (!n_) return;
    if (!n_->finished()) {
      n_->mark_finished();
      if (n_->seam_ != 0) seam_ended(n_, nullptr, task_end::abandoned);
      n_->owner()->task_abandoned(n_);
    }
    n_->release();
  }
  task_node* get() const noexcept { return n_; }
  task_node* operator->() const noexcept { return n_; }

 private:
  task_node* n_;
};

using entry_awaitable = net::awaitable<net::detail::awaitable_thread_entry_point>;
using entry_frame =
    net::detail::awaitable_frame<net::detail::awaitable_thread_entry_point, net::any_io_executor>;

struct entry_promise;

/// Asio's awaitables suspend only an awaitable_frame's handle: an awaitable that
/// task_entry awaits is handed the same frame under that name.
template <class T>
struct entry_adapter {
  net::awaitable<T> a;
  bool await_ready() const noexcept { return a.await_ready(); }
  void await_suspend(std::coroutine_handle<entry_promise> h) {
    a.await_suspend(net::detail::coroutine_handle<entry_frame>::from_address(h.address()));
  }
  T await_resume() { return a.await_resume(); }
};

/// The promise of task_entry: Asio's, with the frame's memory from the task memory.
struct entry_promise : entry_frame {
  static void* operator new(std::size_t size) { return task_memory_allocate(size); }
  static void operator delete(void* p, std::size_t size) noexcept {
    task_memory_deallocate(p, size);
  }

  /// Asio's own transform first: it throws operation_aborted into a task cancelled
  /// before it started, which then ends without running its body.
  template <class T>
  entry_adapter<T> await_transform(net::awaitable<T>&& a) {
    return {entry_frame::await_transform(std::move(a))};
  }

  entry_awaitable get_return_object() {
    entry_awaitable a = entry_frame::get_return_object();
    // The handle Asio resumes and destroys the frame through is this promise's.
    this->coro_ = std::coroutine_handle<entry_promise>::from_promise(*this);
    return a;
  }
};
static_assert(sizeof(entry_promise) == sizeof(entry_frame) &&
              alignof(entry_promise) == alignof(entry_frame));

}  // namespace
}  // namespace crew::detail

/// task_entry's frames come from crew's task memory (entry_ref names the coroutine).
template <class Body>
struct std::coroutine_traits<crew::detail::entry_awaitable, crew::detail::entry_ref, Body> {
  using promise_type = crew::detail::entry_promise;
};

namespace crew::detail {
namespace {

/// The bottom frame of a task's coroutine stack: runs the body, then reports its
/// outcome inline. Every exception, cancellation included, is caught.
template <class Body>
entry_awaitable task_entry(entry_ref node, Body body) {
  std::exception_ptr e;
  try {
    using awaitable_type = std::decay_t<decltype(awaitable_of(body))>;
    if constexpr (std::is_void_v<typename awaitable_traits<awaitable_type>::result_type>)
      co_await awaitable_of(body);
    else
      e = failure_of(co_await awaitable_of(body));
  } catch (...) {
    e = std::current_exception();
  }
  node->mark_finished();
  if (node->seam_ != 0) seam_ended(node.get(), e, task_end::done);
  node->owner()->task_done(node.get(), std::move(e));
}

using thread_type = net::detail::awaitable_thread<net::any_io_executor>;

template <class Inner>
class node_impl final : public task_node {
 public:
  using allocator_type = task_allocator<node_impl>;

  node_impl(task_owner* owner, Inner const& inner) : task_node(owner, &table), inner_(inner) {}

  std::optional<thread_type> thread_;

 private:
  struct launcher {
    thread_type thread;
    task_node* node;  // kept alive by the section_function
    void operator()() {
      node->emit_pending_before_start();
      if ((node->seam_ & seam_start_hooks) != 0) seam_started(node);
      thread.launch();
    }
  };

  static void destroy(task_node* n) noexcept {
    auto* self = static_cast<node_impl*>(n);
    allocator_type alloc;
    std::allocator_traits<allocator_type>::destroy(alloc, self);
    alloc.deallocate(self, 1);
  }

  static void start(task_node* n, bool continuation) noexcept {
    if (n->pool_ && n->pool_->take_start(n, n->pool_index_)) return;
    auto* self = static_cast<node_impl*>(n);
    launcher l{std::move(*self->thread_), self};
    self->thread_.reset();
    try {
      // The operation that carries the first section comes from the task memory too.
      auto ex = net::prefer(net::require(self->inner_, net::execution::blocking.never),
                            net::execution::allocator(task_allocator<void>()));
      if (continuation)
        net::execution::execute(net::prefer(ex, net::execution::relationship.continuation),
                                section_function<launcher>(self, std::move(l)));
      else
        net::execution::execute(ex, section_function<launcher>(self, std::move(l)));
    } catch (...) {
      // Posting allocates; without memory the task can neither run nor report.
      std::terminate();
    }
  }

  static void discard(task_node* n) noexcept {
    // Never admitted: its owner keeps no account of it, and may be gone by the time
    // the frame is destroyed.
    n->mark_finished();
    if (n->seam_ != 0) seam_ended(n, nullptr, task_end::discarded);
    // Asio posts the frame's destruction to the task's executor, and that section's end
    // may drop the node on another thread while reset() still reads it: hold it.
    node_ref keep((n->add_ref(), n));
    static_cast<node_impl*>(n)->thread_.reset();
  }

  static void launch(task_node* n) noexcept {
    auto* self = static_cast<node_impl*>(n);
    launcher l{std::move(*self->thread_), self};
    self->thread_.reset();
    section_function<launcher>(self, std::move(l))();
  }

  static void abandon(task_node* n) noexcept {
    // Destroying the thread destroys the entry frame, which reports the task abandoned.
    node_ref keep((n->add_ref(), n));
    static_cast<node_impl*>(n)->thread_.reset();
  }

  static constexpr operations table{&destroy, &start, &discard, &launch, &abandon};

  Inner inner_;
};

template <class Inner>
task_node* make_node(task_owner& owner, Inner const& inner, task_body&& body, task_spec&& spec) {
  using node_type = node_impl<Inner>;
  typename node_type::allocator_type alloc;
  node_type* n = alloc.allocate(1);
  try {
    std::allocator_traits<decltype(alloc)>::construct(alloc, n, &owner, inner);
  } catch (...) {
    alloc.deallocate(n, 1);
    throw;
  }
  entry_ref ref(n);  // the initial reference, handed to the task's entry frame
  n->id_ = next_task_id();
  task_node* const spawner = spec.parent_id == 0 && !spec.context ? current_task() : nullptr;
  if (spawner) {
    n->parent_id_ = spawner->id_;
    n->set_trace(spawner->trace());
    n->locals_ = spawner->locals_;
  } else {
    n->parent_id_ = spec.parent_id;
    if (spec.context) {
      n->set_trace(spec.context->trace);
      n->locals_ = spec.context->locals;
    }
  }
  n->name_ = std::move(spec.name);
  n->on_failure_ = std::move(spec.on_failure);
  n->site_ = spec.site;
  if (spec.index) n->index_ = *spec.index;
  net::cancellation_slot slot = n->signal_.get().slot();
  net::cancellation_state state(slot);
  net::any_io_executor ex{task_executor<Inner>(inner, n)};
  std::visit(
      [&](auto&& b) {
        using body_type = std::decay_t<decltype(b)>;
        n->thread_.emplace(task_entry<body_type>(std::move(ref), std::move(b)), ex, slot, state);
      },
      std::move(body));
  if (std::uint32_t const f = seam_features.load(std::memory_order_relaxed))
    seam_made(n, spawner, f);
  return n;
}

template <class Inner>
bool make_if(net::any_io_executor const& ex, task_owner& owner, task_body& body, task_spec& spec,
             task_node*& out) {
  if (auto const* p = ex.target<Inner>()) {
    out = make_node(owner, *p, std::move(body), std::move(spec));
    return true;
  }
  if (auto const* p = ex.target<task_executor<Inner>>()) {
    out = make_node(owner, p->get_inner_executor(), std::move(body), std::move(spec));
    return true;
  }
  return false;
}

}  // namespace

net::any_io_executor plain_executor(net::any_io_executor const& ex) {
  using io = net::io_context::executor_type;
  using pool = net::thread_pool::executor_type;
  if (auto const* p = ex.target<task_executor<io>>()) return p->get_inner_executor();
  if (auto const* p = ex.target<task_executor<net::strand<io>>>()) return p->get_inner_executor();
  if (auto const* p = ex.target<task_executor<pool>>()) return p->get_inner_executor();
  if (auto const* p = ex.target<task_executor<net::strand<pool>>>()) return p->get_inner_executor();
  if (auto const* p = ex.target<task_executor<net::any_io_executor>>())
    return p->get_inner_executor();
  return ex;
}

task_node* make_task(task_owner& owner, net::any_io_executor const& ex, task_body&& body,
                     task_spec&& spec) {
  // The task runs on the concrete executor behind `ex` when crew knows it, without any
  // task executor that may wrap it (a task spawning a task). A task executor over an
  // io_context or thread_pool executor fits any_io_executor's in-place storage; over
  // anything bigger (a strand, another any_io_executor) each copy allocates.
  using io = net::io_context::executor_type;
  using pool = net::thread_pool::executor_type;
  if (auto const* p = ex.target<io_pool::executor_type>()) {
    io_pool_impl& placing = p->impl();
    std::size_t const k = placing.place();
    task_node* const n =
        make_node(owner, placing.context(k).get_executor(), std::move(body), std::move(spec));
    n->pool_ = &placing;
    n->pool_index_ = k;
    return n;
  }
  task_node* n = nullptr;
  if (make_if<io>(ex, owner, body, spec, n) || make_if<net::strand<io>>(ex, owner, body, spec, n) ||
      make_if<pool>(ex, owner, body, spec, n) ||
      make_if<net::strand<pool>>(ex, owner, body, spec, n))
    return n;
  if (auto const* p = ex.target<task_executor<net::any_io_executor>>())
    return make_node(owner, p->get_inner_executor(), std::move(body), std::move(spec));
  return make_node(owner, ex, std::move(body), std::move(spec));
}

}  // namespace crew::detail
