//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_TASK_GROUP_HPP
#define CREW_IMPL_TASK_GROUP_HPP

#include <crew/detail/group_core.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/task_shape.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <optional>
#include <stdexcept>

namespace crew {
namespace detail {

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

  /// Frees an operation that was never handed to a group.
  void destroy() noexcept {
    auto alloc = rebound_allocator<spawn_op>(handler_.handler());
    this->~spawn_op();
    alloc.deallocate(this, 1);
  }

  void admitted(boost::system::error_code ec) noexcept override {
    auto holder = std::move(handler_);
    destroy();
    holder.post(ec);
  }

  void queued(std::weak_ptr<group_core> group) noexcept override {
    auto slot = net::get_associated_cancellation_slot(handler_.handler());
    if (!slot.is_connected()) return;
    try {
      slot.template emplace<keyed_cancellation<group_core>>(
          keyed_cancellation<group_core>{std::move(group), key_});
    } catch (...) {
      // Without memory for its cancellation the spawn still completes, uncancellable.
    }
  }

 private:
  completion_holder<Handler, DefaultExecutor> handler_;
};

}  // namespace detail

// ---------------------------------------------------------------- initiations

namespace detail {

/// The initiation of a group core's spawn that completes once the task got in: a task
/// group's async_spawn, a worker pool's async_submit. A named class with the I/O
/// executor, as Asio's own initiations are.
template <class Executor>
class initiate_group_spawn {
 public:
  using executor_type = Executor;

  initiate_group_spawn(Executor const& ex, group_core& core, source_location site,
                       group_core::admit_mode mode)
      : ex_(ex), core_(&core), site_(site), mode_(mode) {}

  executor_type get_executor() const noexcept { return ex_; }

  /// Admits the task now if a slot (or, for a pool's submit, a place in the queue) is
  /// free. False if not, and `body` is left as it was.
  bool try_now(task_body& body, spawn_options& options) const {
    auto const r = mode_ == group_core::admit_mode::submit
                       ? core_->try_reserve_submit()
                       : (core_->try_reserve() ? group_core::reservation::slot
                                               : group_core::reservation::none);
    if (r == group_core::reservation::none) return false;
    try {
      core_->spawn(std::move(body), std::move(options), site_,
                   r == group_core::reservation::slot ? group_core::admit_mode::reserved
                                                      : group_core::admit_mode::reserved_queue);
    } catch (...) {
      core_->release_reservation(r);
      throw;
    }
    return true;
  }

  template <class Handler>
  void operator()(Handler&& handler, task_body body, spawn_options options) const {
    using handler_type = std::decay_t<Handler>;
    using op_type = spawn_op<handler_type, Executor>;
    auto* op = op_type::create(handler_type(std::forward<Handler>(handler)), ex_);
    try {
      core_->spawn(std::move(body), std::move(options), site_, mode_, op);
    } catch (...) {
      op->destroy();
      throw;
    }
  }

 private:
  executor_type ex_;
  group_core* core_;
  source_location site_;
  group_core::admit_mode mode_;
};

template <class Token>
struct plain_use_awaitable : std::false_type {};
template <class E>
struct plain_use_awaitable<net::use_awaitable_t<E>> : std::true_type {
  using executor_type = E;
};

/// A group spawn awaited with use_awaitable: a task that gets a slot at once is admitted
/// without suspending the caller (no post, no scheduler round trip); otherwise it waits
/// as the initiation does. As with any awaited operation, a caller already cancelled
/// gets operation_aborted first.
template <class AwaitableExecutor, class Executor>
net::awaitable<void, AwaitableExecutor> spawn_now_or_wait(initiate_group_spawn<Executor> init,
                                                          task_body body, spawn_options options) {
  if (co_await net::this_coro::throw_if_cancelled()) {
    net::cancellation_state const state = co_await net::this_coro::cancellation_state;
    if (state.cancelled() != net::cancellation_type::none)
      throw boost::system::system_error(net::error::operation_aborted);
  }
  if (init.try_now(body, options)) co_return;
  net::use_awaitable_t<AwaitableExecutor> token;
  auto op = net::async_initiate<decltype(token), void(boost::system::error_code)>(
      std::move(init), token, std::move(body), std::move(options));
  co_await std::move(op);
}

/// A group spawn that completes once the task got in (async_spawn, async_submit).
template <class Executor, class Token>
auto async_group_spawn(initiate_group_spawn<Executor> init, Token&& token, task_body body,
                       spawn_options options) {
  using token_type = std::decay_t<Token>;
  if constexpr (plain_use_awaitable<token_type>::value)
    return spawn_now_or_wait<typename plain_use_awaitable<token_type>::executor_type>(
        std::move(init), std::move(body), std::move(options));
  else
    return net::async_initiate<Token, void(boost::system::error_code)>(
        std::move(init), token, std::move(body), std::move(options));
}

/// The initiation of a group core's wait: until idle (a task group's async_wait and
/// async_wait_for), a barrier (a pool's async_wait), or close then until idle (a pool's
/// async_shutdown).
template <class Executor>
class initiate_group_wait {
 public:
  using executor_type = Executor;
  enum class kind { idle, barrier, close_then_idle };

  initiate_group_wait(Executor const& ex, group_core& core, kind k)
      : ex_(ex), core_(&core), kind_(k) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler,
                  std::optional<std::chrono::steady_clock::duration> timeout) const {
    if (kind_ == kind::close_then_idle) core_->close();
    core_->async_wait(wait_handler(std::forward<Handler>(handler)), timeout,
                      kind_ == kind::barrier);
  }

 private:
  executor_type ex_;
  group_core* core_;
  kind kind_;
};

}  // namespace detail

// ---------------------------------------------------------------- basic_task_group

template <class Executor>
basic_task_group<Executor>& basic_task_group<Executor>::operator=(
    basic_task_group&& other) noexcept {
  if (this != &other) {
    if (this->state_) this->state_->shutdown();
    this->ex_ = std::move(other.ex_);
    this->state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_task_group<Executor>::~basic_task_group() {
  if (this->state_) this->state_->shutdown();
}

template <class Executor>
detail::group_core& basic_task_group<Executor>::state() const {
  if (!this->state_) throw std::logic_error("crew::task_group: the group was moved from");
  return *this->state_;
}

template <class Executor>
template <class Task>
void basic_task_group<Executor>::spawn(Task&& task, source_location site) {
  spawn(std::forward<Task>(task), spawn_options{}, site);
}

template <class Executor>
template <class Task>
void basic_task_group<Executor>::spawn(Task&& task, spawn_options options, source_location site) {
  auto& core = state();
  core.spawn(detail::make_task_body(std::forward<Task>(task), "crew::task_group::spawn"),
             std::move(options), site, detail::group_core::admit_mode::spawn);
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
  char const* const who = "crew::task_group::try_spawn";
  auto& core = state();
  detail::check_task(task, who);
  // The slot first, so that a refused task is never moved from.
  if (!core.try_reserve()) return false;
  try {
    core.spawn(detail::make_task_body(std::forward<Task>(task), who), std::move(options), site,
               detail::group_core::admit_mode::reserved);
  } catch (...) {
    core.release_reservation();
    throw;
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
  return detail::async_group_spawn(
      initiate_spawn(this->ex_, state(), site, detail::group_core::admit_mode::async_spawn),
      std::forward<CompletionToken>(token),
      detail::make_task_body(std::forward<Task>(task), "crew::task_group::async_spawn"),
      std::move(options));
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_task_group<Executor>::async_wait(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      initiate_wait(this->ex_, state(), initiate_wait::kind::idle), token, no_timeout);
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_task_group<Executor>::async_wait_for(std::chrono::steady_clock::duration timeout,
                                                CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      initiate_wait(this->ex_, state(), initiate_wait::kind::idle), token, timeout_type(timeout));
}

}  // namespace crew

#endif
