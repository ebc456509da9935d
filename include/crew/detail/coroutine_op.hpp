//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_COROUTINE_OP_HPP
#define CREW_DETAIL_COROUTINE_OP_HPP

#include <crew/task_group.hpp>

#include <boost/asio/associator.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <utility>

namespace crew::detail {

/// The state of an operation whose body is a coroutine run as a crew task.
template <class Executor>
struct coroutine_op_state {
  explicit coroutine_op_state(Executor const& ex)
      : group(ex), result(std::make_shared<std::optional<std::exception_ptr>>()) {}
  basic_task_group<Executor> group;
  // Shared with the body, which may outlive the group if the handler is destroyed.
  std::shared_ptr<std::optional<std::exception_ptr>> result;  // empty until the body ended
};

/// Completes the operation's handler with the body's outcome.
template <class Handler, class Executor>
class coroutine_op_handler {
 public:
  coroutine_op_handler(Handler&& h, std::shared_ptr<coroutine_op_state<Executor>> st)
      : handler_(std::move(h)), state_(std::move(st)) {}

  void operator()(std::exception_ptr waited) {
    // The body catches everything, so the wait reports only a cancellation that
    // came before the body started.
    auto result = *state_->result ? **state_->result : waited;
    state_.reset();
    std::move(handler_)(std::move(result));
  }

  Handler handler_;

 private:
  std::shared_ptr<coroutine_op_state<Executor>> state_;
};

/** Runs `body()` (an `awaitable<void>`) as a crew task on `ex` and completes
    `handler` with `void(std::exception_ptr)`: null when the body returned, else what
    it threw. The handler's cancellation slot cancels the body (terminal); a body
    cancelled before it started completes with `operation_aborted`.
*/
template <class Executor, class Body, class Handler>
void launch_coroutine_op(Executor const& ex, Body&& body, Handler&& handler, source_location site) {
  auto st = std::make_shared<coroutine_op_state<Executor>>(ex);
  st->group.spawn(
      [result = st->result, body = std::forward<Body>(body)]() mutable -> net::awaitable<void> {
        try {
          co_await body();
          *result = std::exception_ptr();
        } catch (...) {
          *result = std::current_exception();
        }
      },
      site);
  auto& group = st->group;
  group.async_wait(
      coroutine_op_handler<std::decay_t<Handler>, Executor>(std::forward<Handler>(handler), st));
}

}  // namespace crew::detail

template <template <class, class> class Associator, class Handler, class Executor,
          class DefaultCandidate>
struct boost::asio::associator<Associator, crew::detail::coroutine_op_handler<Handler, Executor>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      crew::detail::coroutine_op_handler<Handler, Executor> const& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler_);
  }

  static auto get(crew::detail::coroutine_op_handler<Handler, Executor> const& h,
                  DefaultCandidate const& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler_, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
  }
};

#endif
