//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_RETRY_HPP
#define CREW_IMPL_RETRY_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>

#include <utility>

namespace crew {
namespace detail {

/// An attempt function, erased: makes the body of one attempt, which calls the
/// function inside the attempt's task.
using attempt_function = unique_function<task_body(retrier&)>;

using retry_handler = net::any_completion_handler<void(std::exception_ptr)>;

/// @throws std::invalid_argument naming the field.
void validate_retry_options(retry_options const& o);

/// Starts the retry: a policy over the restart driver, compiled in lib/retry.cpp.
void start_retry(net::any_io_executor const& ex, attempt_function fn, retry_options const& o,
                 source_location site, retry_handler handler);

/// What an attempt function returns.
template <class F, bool = std::is_invocable_v<F&, retrier&>>
struct attempt_result {
  using type = std::invoke_result_t<F&, retrier&>;
};
template <class F>
struct attempt_result<F, false> {
  using type = std::invoke_result_t<F&>;
};

template <class F>
attempt_function make_attempt_function(F&& fn) {
  using fn_type = std::decay_t<F>;
  constexpr bool takes_retrier = std::is_invocable_v<fn_type&, retrier&>;
  using awaitable_type = typename attempt_result<fn_type>::type;
  static_assert(is_task_awaitable_v<awaitable_type>,
                "crew::async_retry: the attempt function returns net::awaitable<void> or "
                "net::awaitable<error_code> (on net::any_io_executor)");
  check_task(fn, "crew::async_retry: fn");
  return [f = fn_type(std::forward<F>(fn))](retrier& r) mutable -> task_body {
    // The function lives in the operation, which outlives every attempt.
    if constexpr (takes_retrier)
      return unique_function<awaitable_type()>([&f, &r] { return f(r); });
    else
      return unique_function<awaitable_type()>([&f] { return f(); });
  };
}

/// The initiation of async_retry on an executor, as Asio's own initiations are.
template <class Executor>
class initiate_retry {
 public:
  using executor_type = Executor;

  explicit initiate_retry(Executor const& ex) : ex_(ex) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler, attempt_function fn, retry_options const& o,
                  source_location site) const {
    start_retry(net::any_io_executor(ex_), std::move(fn), o, site,
                retry_handler(std::forward<Handler>(handler)));
  }

 private:
  Executor ex_;
};

/// The initiation of async_retry on the handler's associated executor.
struct initiate_retry_on_handler_executor {
  template <class Handler>
  void operator()(Handler&& handler, attempt_function fn, retry_options const& o,
                  source_location site) const {
    net::any_io_executor ex = net::get_associated_executor(handler);
    start_retry(ex, std::move(fn), o, site, retry_handler(std::forward<Handler>(handler)));
  }
};

}  // namespace detail

template <detail::retry_executor Executor, retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(Executor const& ex, F&& fn, retry_options const& options, CompletionToken&& token,
                 source_location site) {
  detail::validate_retry_options(options);
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      detail::initiate_retry<Executor>(ex), token,
      detail::make_attempt_function(std::forward<F>(fn)), options, site);
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
      detail::initiate_retry_on_handler_executor{}, token,
      detail::make_attempt_function(std::forward<F>(fn)), options, site);
}

template <retry_attempt F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_retry(F&& fn, CompletionToken&& token, source_location site) {
  return async_retry(std::forward<F>(fn), retry_options{}, std::forward<CompletionToken>(token),
                     site);
}

}  // namespace crew

#endif
