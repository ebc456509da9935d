//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_RETRY_HPP
#define CREW_RETRY_HPP

#include <crew/backoff.hpp>
#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/is_executor.hpp>

#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>

namespace crew {

class retrier;

namespace detail {
struct retry_access;
}  // namespace detail

/** Options of `crew::async_retry`. Designated initializers keep call sites readable.

    Fields are validated when `async_retry` is called, before anything starts.
*/
struct retry_options {
  /// The most attempts, at least 1, or `crew::unlimited`.
  std::size_t max_attempts = unlimited;
  /// The wait after each failed attempt: `crew::exponential_backoff{...}` (by default
  /// 100 ms, doubling up to 30 s, so that a retry never spins),
  /// `crew::backoff::constant(d)` or `crew::backoff::none()`.
  crew::backoff backoff = exponential_backoff{};
  /// Gives up when the next wait would end later than this after the first attempt
  /// started, measured on `clock`. Not negative; `duration::max()` (the default) is no limit.
  crew::clock::duration max_elapsed = crew::clock::duration::max();
  /// Whether a failure may be retried; empty (the default) retries every failure.
  /// A failure it rejects is the result at once; an exception it throws is the result.
  std::function<bool(std::exception_ptr const&)> retry_if{};
  /// The clock for waits and `max_elapsed`; null (the default) is `crew::clock::steady()`.
  /// Tests pass a `crew::manual_clock`. It must outlive the operation.
  crew::clock* clock = nullptr;
  /// When true, a failed retry reports a `crew::task_errors` holding every attempt's
  /// failure, in order, instead of the last failure alone.
  bool all_failures = false;
};

/** The handle an attempt function gets: which attempt this is, and how to steer the rest.

    Made by `async_retry` for one operation and handed to each of its attempts, which
    run one at a time: not meant to be shared with other tasks.
*/
class retrier {
 public:
  using duration = clock::duration;

  retrier(retrier const&) = delete;
  retrier& operator=(retrier const&) = delete;

  /// The current attempt's number; the first attempt is 1.
  std::size_t iteration() const noexcept { return iteration_; }

  /// No further attempt: this attempt's outcome, success or failure, is the result.
  void stop() noexcept { stopped_ = true; }

  /// Whether `stop()` was called.
  bool stopped() const noexcept { return stopped_; }

  /** Waits `d` after this attempt, if it fails, instead of what the backoff says. Only
      the next wait changes; the backoff resumes after it. `max_elapsed` still applies.

      @throws std::invalid_argument naming `d` if `d` is negative; the retry is then
      stopped, so that the exception ends it rather than being retried.
  */
  void set_delay(duration d);  // lib/retry.cpp

  /// The time since the operation started, on the operation's clock.
  duration elapsed() const { return clock_->now() - start_; }

  /// The previous attempt's failure; null during the first attempt.
  std::exception_ptr const& last_failure() const noexcept { return last_failure_; }

 private:
  friend struct detail::retry_access;

  explicit retrier(crew::clock& c) : clock_(&c), start_(c.now()) {}

  crew::clock* clock_;
  clock::time_point start_;
  std::size_t iteration_ = 0;
  bool stopped_ = false;
  std::optional<duration> delay_;
  std::exception_ptr last_failure_;
};

/** An attempt function: a callable taking a `crew::retrier&`, or nothing, that returns
    `awaitable<void>` or `awaitable<boost::system::error_code>` (a non-zero code fails
    the attempt, as a `boost::system::system_error`). `std::error_code` works too. */
template <class F>
concept retry_attempt = (std::is_invocable_v<std::decay_t<F>&, retrier&> ||
                         std::is_invocable_v<std::decay_t<F>&>);

namespace detail {
template <class E>
concept retry_executor = net::execution::executor<E> || net::is_executor<E>::value;
}  // namespace detail

/** Runs `fn` until an attempt succeeds, waiting between failed attempts.

    Each attempt calls `fn` with the operation's `crew::retrier` and awaits the
    returned coroutine. After a failed attempt the retry ends, with that failure, if
    the operation was cancelled, the attempt called `stop()`, `retry_if` rejects the
    failure, it was attempt `max_attempts`, or the next wait would end past
    `max_elapsed`; otherwise it waits (`set_delay`, else the backoff) and tries again.
    Each attempt is a crew task on `ex`, named "attempt N" and spawned at `site`, a
    child of the task that called async_retry; none runs inside this call.

    @param ex The executor the attempts run on.
    @param fn The attempt function (see `crew::retry_attempt`); moved or copied into
    the operation, which keeps it alive until the last attempt ended.
    @param site Defaults to the caller's location; it is the spawn site of the attempts.

    @throws std::invalid_argument naming the field, before anything starts, if
    `options.max_attempts` is 0 or `options.max_elapsed` is negative; naming `fn` if it
    is a null function pointer or an empty std::function.

    @par Completion signature
    `void(std::exception_ptr)`: null when an attempt succeeded; else the last attempt's
    failure, or with `all_failures` a `crew::task_errors` holding every attempt's
    failure. An `operation_aborted` caused by cancelling this operation is never
    retried and never wrapped.

    @par Per-operation cancellation
    All types, through the handler's cancellation slot: each cancels the operation's
    task (terminal). A wait between attempts aborts at once and the operation completes
    with `operation_aborted`; an attempt in flight sees the cancellation at its own
    `co_await`, and its outcome is the result: no further attempt starts. Cancelled
    before the first attempt started, the operation completes with `operation_aborted`
    and `fn` is never called.
*/
template <detail::retry_executor Executor, retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
              CompletionToken = net::default_completion_token_t<Executor>>
auto async_retry(Executor const& ex, F&& fn, retry_options const& options,
                 CompletionToken&& token = net::default_completion_token_t<Executor>(),
                 source_location site = source_location::current());

/// As above with the default options: unlimited attempts, exponential backoff.
template <detail::retry_executor Executor, retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
              CompletionToken = net::default_completion_token_t<Executor>>
auto async_retry(Executor const& ex, F&& fn,
                 CompletionToken&& token = net::default_completion_token_t<Executor>(),
                 source_location site = source_location::current());

/** As above, on the completion handler's associated executor: for `use_awaitable`, the
    awaiting coroutine's. A plain callback or `use_future` has none, so Asio's system
    executor would run the attempts on threads of its own: pass an executor for those.
*/
template <retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(F&& fn, retry_options const& options, CompletionToken&& token,
                 source_location site = source_location::current());

/// As above with the default options.
template <retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(F&& fn, CompletionToken&& token,
                 source_location site = source_location::current());

}  // namespace crew

#include <crew/impl/retry.hpp>

#endif
