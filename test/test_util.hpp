//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Small awaitables the tests share.
//
#ifndef CREW_TEST_TEST_UTIL_HPP
#define CREW_TEST_TEST_UTIL_HPP

#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <crew/detail/failure.hpp>

#include <chrono>
#include <exception>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace crew_test {

namespace net = boost::asio;

/// Suspends once, through the executor's queue.
inline net::awaitable<void> yield_once() {
  auto ex = co_await net::this_coro::executor;
  co_await net::post(ex, net::use_awaitable);
}

/// Suspends `n` times.
inline net::awaitable<void> yield_n(int n) {
  auto ex = co_await net::this_coro::executor;
  for (int i = 0; i < n; ++i) co_await net::post(ex, net::use_awaitable);
}

/// Yields until `done()` holds; throws after `max_yields` so a broken test fails
/// instead of hanging.
template <class Pred>
net::awaitable<void> yield_until(Pred done, int max_yields = 1000000) {
  auto ex = co_await net::this_coro::executor;
  for (int i = 0; !done(); ++i) {
    if (i == max_yields) throw std::runtime_error("yield_until: the condition never held");
    co_await net::post(ex, net::use_awaitable);
  }
}

/// Sleeps on a steady_timer; cancellation aborts it at once.
inline net::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex, d);
  co_await timer.async_wait(net::use_awaitable);
}

/// Sleeps; an operation_aborted that ends the sleep is counted, then rethrown.
template <class Counter>
net::awaitable<void> sleep_counting_aborts(std::chrono::steady_clock::duration d,
                                           Counter& aborted) {
  try {
    co_await sleep_for(d);
  } catch (boost::system::system_error const& e) {
    if (e.code() == net::error::operation_aborted) ++aborted;
    throw;
  }
}

/// A failure with a recognisable message.
struct test_error : std::runtime_error {
  explicit test_error(int n) : std::runtime_error("test error " + std::to_string(n)), n(n) {}
  int n;
};

/// The test_error number in `e`, or -1.
inline int error_number(std::exception_ptr const& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (test_error const& t) {
    return t.n;
  } catch (...) {
  }
  return -1;
}

/// Whether `e` holds a system_error with `operation_aborted`.
inline bool is_aborted(std::exception_ptr const& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (boost::system::system_error const& se) {
    return se.code() == net::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

/// Whether a future holds its result, without waiting.
template <class Future>
bool ready(Future const& f) {
  return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

/// What a ready `future<void>` holds: null, or its exception.
inline std::exception_ptr outcome(std::future<void>& f) {
  try {
    f.get();
    return nullptr;
  } catch (...) {
    return std::current_exception();
  }
}

/// The message of the std::invalid_argument that `f` throws, or a note that it threw none.
template <class F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (std::invalid_argument const& e) {
    return e.what();
  }
  return "(no invalid_argument thrown)";
}

/// The code of the system_error in `e`, or an empty code.
inline boost::system::error_code code_of(std::exception_ptr const& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (boost::system::system_error const& se) {
    return se.code();
  } catch (...) {
  }
  return {};
}

/// The what() of the std::exception in `e`, or empty.
inline std::string what_of(std::exception_ptr const& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (std::exception const& x) {
    return x.what();
  } catch (...) {
  }
  return {};
}

/// Captures what reaches crew's failure path while it lives, in place of the default
/// sink (stderr); restores the previous sink when it dies. Thread-safe.
class captured_reports {
 public:
  captured_reports()
      : previous_(crew::detail::set_failure_sink(
            [this](crew::detail::failure_report const& r) { add(r); })) {}
  ~captured_reports() { crew::detail::set_failure_sink(std::move(previous_)); }
  captured_reports(captured_reports const&) = delete;
  captured_reports& operator=(captured_reports const&) = delete;

  /// How many reported failures are `test_error(n)`.
  int count(int n) const {
    std::lock_guard lock(mutex_);
    int c = 0;
    for (auto const& r : reports_)
      for (auto const& f : r.failures)
        if (auto const* t = f.as<test_error>(); t && t->n == n) ++c;
    return c;
  }

  /// How many failures were reported, in all.
  std::size_t total() const {
    std::lock_guard lock(mutex_);
    std::size_t c = 0;
    for (auto const& r : reports_) c += r.failures.size();
    return c;
  }

  /// Whether a report said `event`.
  bool saw(std::string_view event) const {
    std::lock_guard lock(mutex_);
    for (auto const& r : reports_)
      if (event == r.event) return true;
    return false;
  }

  std::vector<crew::detail::failure_report> reports() const {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  void add(crew::detail::failure_report const& r) {
    std::lock_guard lock(mutex_);
    reports_.push_back(r);
  }

  mutable std::mutex mutex_;
  std::vector<crew::detail::failure_report> reports_;
  crew::detail::failure_sink previous_;
};

}  // namespace crew_test

#endif
