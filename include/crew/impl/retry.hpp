//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_RETRY_HPP
#define CREW_IMPL_RETRY_HPP

#include <crew/detail/coroutine_op.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace crew {
namespace detail {

inline std::string retry_ms(clock::duration d) {
  return std::to_string(std::chrono::duration<double, std::milli>(d).count()) + " ms";
}

inline void validate_retry_options(retry_options const& o) {
  if (o.max_attempts == 0)
    throw std::invalid_argument(
        "crew::async_retry: max_attempts must be at least 1 or crew::unlimited (got 0)");
  if (o.max_elapsed < clock::duration::zero())
    throw std::invalid_argument("crew::async_retry: max_elapsed is negative (" +
                                retry_ms(o.max_elapsed) + ")");
}

/// `now + d`, or `time_point::max()` where that would overflow.
inline clock::time_point saturated_deadline(clock::time_point now, clock::duration d) {
  return d > clock::time_point::max() - now ? clock::time_point::max() : now + d;
}

/// Awaits one attempt; its failure, or null.
template <class F>
net::awaitable<std::exception_ptr> run_attempt(F& fn, retrier& r) {
  auto call = [&] {
    if constexpr (std::is_invocable_v<F&, retrier&>)
      return fn(r);
    else
      return fn();
  };
  using awaitable_type = decltype(call());
  static_assert(awaitable_traits<awaitable_type>::value &&
                    std::is_same_v<typename awaitable_traits<awaitable_type>::executor_type,
                                   net::any_io_executor>,
                "crew::async_retry: the attempt function returns net::awaitable<void> or "
                "net::awaitable<boost::system::error_code>");
  using result_type = typename awaitable_traits<awaitable_type>::result_type;
  static_assert(std::is_void_v<result_type> ||
                    std::is_same_v<result_type, boost::system::error_code> ||
                    std::is_same_v<result_type, std::error_code>,
                "crew::async_retry: the attempt function's awaitable returns void, "
                "boost::system::error_code or std::error_code");
  if constexpr (std::is_void_v<result_type>) {
    co_await call();
    co_return nullptr;
  } else {
    co_return failure_of(co_await call());
  }
}

/// The operation's body; runs as a crew task (see launch_coroutine_op).
struct retry_access {
  template <class F>
  static net::awaitable<void> run(F& fn, retry_options const& o, source_location site) {
    clock& clk = o.clock ? *o.clock : clock::steady();
    retrier r(clk);
    std::vector<task_failure> failures;
    for (;;) {
      ++r.iteration_;
      std::exception_ptr e;
      try {
        e = co_await run_attempt(fn, r);
      } catch (...) {
        e = std::current_exception();
      }
      if (!e) co_return;

      // A cancellation of this operation ends it with the attempt's outcome; the
      // operation_aborted it caused is reported as is.
      auto const cs = co_await net::this_coro::cancellation_state;
      bool const cancelled = cs.cancelled() != net::cancellation_type::none;
      if (cancelled && is_operation_aborted(e)) std::rethrow_exception(e);
      if (o.all_failures)
        failures.push_back(task_failure{.id = 0,
                                        .name = "attempt " + std::to_string(r.iteration_),
                                        .spawn_site = site,
                                        .exception = e,
                                        .trace = throw_site_trace(e)});

      bool retry = !cancelled && !r.stopped_ && r.iteration_ < o.max_attempts &&
                   (!o.retry_if || o.retry_if(e));
      auto const now = clk.now();
      clock::duration d{};
      if (retry) {
        auto const n = static_cast<unsigned>(std::min<std::size_t>(r.iteration_, ~0u));
        d = r.delay_ ? *r.delay_ : o.backoff.delay(n);
        auto const elapsed = now - r.start_;  // never negative: the clock is steady
        retry = o.max_elapsed == clock::duration::max() ||
                (elapsed <= o.max_elapsed && d <= o.max_elapsed - elapsed);
      }
      if (!retry) {
        if (o.all_failures) throw task_errors(std::move(failures));
        std::rethrow_exception(e);
      }

      r.delay_.reset();
      r.last_failure_ = std::move(e);
      auto ex = co_await net::this_coro::executor;
      co_await clk.async_wait_until(ex, saturated_deadline(now, d), net::use_awaitable);
    }
  }
};

template <class F>
struct retry_initiation {
  template <class Handler>
  void operator()(Handler handler, net::any_io_executor const& ex, F fn, retry_options o,
                  source_location site) const {
    launch_coroutine_op(
        ex,
        [fn = std::move(fn), o = std::move(o), site]() mutable {
          return retry_access::run(fn, o, site);
        },
        std::move(handler), site);
  }

  template <class Handler>
  void operator()(Handler handler, F fn, retry_options o, source_location site) const {
    net::any_io_executor ex = net::get_associated_executor(handler);
    (*this)(std::move(handler), ex, std::move(fn), std::move(o), site);
  }
};

}  // namespace detail

inline void retrier::set_delay(duration d) {
  if (d < duration::zero()) {
    stop();
    throw std::invalid_argument("crew::retrier::set_delay: d is negative (" + detail::retry_ms(d) +
                                ")");
  }
  delay_ = d;
}

template <detail::retry_executor Executor, retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(Executor const& ex, F&& fn, retry_options const& options, CompletionToken&& token,
                 source_location site) {
  detail::validate_retry_options(options);
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      detail::retry_initiation<std::decay_t<F>>{}, token, net::any_io_executor(ex),
      std::forward<F>(fn), options, site);
}

template <detail::retry_executor Executor, retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(Executor const& ex, F&& fn, CompletionToken&& token, source_location site) {
  return async_retry(ex, std::forward<F>(fn), retry_options{}, std::forward<CompletionToken>(token),
                     site);
}

template <retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(F&& fn, retry_options const& options, CompletionToken&& token,
                 source_location site) {
  detail::validate_retry_options(options);
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      detail::retry_initiation<std::decay_t<F>>{}, token, std::forward<F>(fn), options, site);
}

template <retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(F&& fn, CompletionToken&& token, source_location site) {
  return async_retry(std::forward<F>(fn), retry_options{}, std::forward<CompletionToken>(token),
                     site);
}

}  // namespace crew

#endif
