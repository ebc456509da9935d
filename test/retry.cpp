//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Retries run in virtual time: each test passes a crew::manual_clock and moves it to
// the next pending wait, so backoff times are asserted exactly and nothing sleeps.
//
#define BOOST_TEST_MODULE crew_retry
#include <crew/retry.hpp>
#include <crew/task_group.hpp>  // the tests run retries inside groups

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::error_number;
using crew_test::test_error;
using crew_test::yield_once;
using crew_test::yield_until;
using duration = crew::clock::duration;

namespace {

/// Starts a retry with a callback on `clk`, then moves the clock to each wait as soon
/// as it is pending, until the retry completed. Returns the retry's result.
template <class F>
net::awaitable<std::exception_ptr> retry_on(crew::manual_clock& clk, F& fn,
                                            crew::retry_options const& options) {
  auto ex = co_await net::this_coro::executor;
  auto o = options;
  o.clock = &clk;
  std::optional<std::exception_ptr> result;
  crew::async_retry(ex, fn, o, [&](std::exception_ptr e) { result = e; });
  for (int i = 0; !result; ++i) {
    if (i == 1000000) throw std::runtime_error("retry_on: the retry never completed");
    clk.advance_to_next();
    co_await yield_once();
  }
  co_return *result;
}

/// A predicate for BOOST_CHECK_EXCEPTION: the message names `field`.
auto names(std::string field) {
  return [field](std::exception const& e) {
    std::string const what = e.what();
    BOOST_TEST_MESSAGE(what);
    return what.find(field) != std::string::npos;
  };
}

}  // namespace

// ---------------------------------------------------------------- attempts

CO_TEST_CASE(retries_until_an_attempt_succeeds) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<std::size_t> iterations;
  std::vector<int> previous;
  std::vector<duration> elapsed;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    iterations.push_back(r.iteration());
    previous.push_back(error_number(r.last_failure()));
    elapsed.push_back(r.elapsed());
    co_await yield_once();
    if (r.iteration() < 3) throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.backoff = crew::backoff::constant(1s)};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(!e);
  BOOST_TEST(iterations == std::vector<std::size_t>({1, 2, 3}));
  BOOST_TEST(previous == std::vector<int>({-1, 1, 2}));
  BOOST_TEST((elapsed == std::vector<duration>({0s, 1s, 2s})));
  BOOST_TEST((clk.now() == t0 + 2s));
}

CO_TEST_CASE(attempts_never_run_inside_the_call) {
  auto ex = co_await net::this_coro::executor;
  bool ran = false;
  std::optional<std::exception_ptr> result;
  crew::async_retry(
      ex,
      [&](crew::retrier&) -> net::awaitable<void> {
        ran = true;
        co_return;
      },
      [&](std::exception_ptr e) { result = e; });
  BOOST_TEST(!ran);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(ran);
  BOOST_TEST(!*result);
}

CO_TEST_CASE(an_attempt_function_may_take_no_argument_and_return_an_error_code) {
  crew::manual_clock clk;
  int calls = 0;
  //[retry_error_code
  auto refused_twice = [&]() -> net::awaitable<boost::system::error_code> {  // no retrier
    co_await yield_once();
    if (++calls < 3) co_return net::error::connection_refused;  // a failure: retried
    co_return boost::system::error_code{};                      // success
  };
  //]
  crew::retry_options options{.backoff = crew::backoff::none()};
  auto e = co_await retry_on(clk, refused_twice, options);
  BOOST_TEST(!e);
  BOOST_TEST(calls == 3);

  // The last failure's code, wrapped in a system_error.
  int always = 0;
  auto refused = [&]() -> net::awaitable<boost::system::error_code> {
    ++always;
    co_return net::error::connection_refused;
  };
  options.max_attempts = 2;
  e = co_await retry_on(clk, refused, options);
  BOOST_TEST((crew_test::code_of(e) == net::error::connection_refused));
  BOOST_TEST(always == 2);
}

CO_TEST_CASE(stop_makes_the_current_outcome_the_result) {
  crew::manual_clock clk;
  int calls = 0;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    ++calls;
    if (r.iteration() > 3) r.stop();  // iteration() starts at 1
    BOOST_TEST(r.stopped() == (r.iteration() > 3));
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.max_attempts = 10, .backoff = crew::backoff::none()};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 4);
  BOOST_TEST(calls == 4);

  // A stopped attempt that succeeds is a success.
  auto stop_and_succeed = [&](crew::retrier& r) -> net::awaitable<void> {
    r.stop();
    co_return;
  };
  e = co_await retry_on(clk, stop_and_succeed, options);
  BOOST_TEST(!e);
}

CO_TEST_CASE(max_attempts_ends_with_the_last_failure) {
  crew::manual_clock clk;
  int calls = 0;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    ++calls;
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.max_attempts = 3, .backoff = crew::backoff::constant(1s)};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 3);
  BOOST_TEST(calls == 3);
  BOOST_TEST(clk.pending() == 0u);

  calls = 0;
  options.max_attempts = 1;  // no retry at all
  e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 1);
  BOOST_TEST(calls == 1);
}

// ---------------------------------------------------------------- backoff and delays

CO_TEST_CASE(exponential_backoff_waits_exactly_without_jitter) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<duration> at;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(clk.now() - t0);
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  // 100, 200, 400, then capped at 500.
  crew::retry_options options{.max_attempts = 6,
                              .backoff = crew::exponential_backoff{100ms, 2.0, 500ms, 0.0}};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 6);
  BOOST_TEST((at == std::vector<duration>({0ms, 100ms, 300ms, 700ms, 1200ms, 1700ms})));
}

CO_TEST_CASE(exponential_backoff_with_jitter_stays_within_its_bounds) {
  crew::manual_clock clk;
  std::vector<crew::clock::time_point> at;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(clk.now());
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.max_attempts = 8,
                              .backoff = crew::exponential_backoff{100ms, 2.0, 1s, 0.25}};
  co_await retry_on(clk, attempt, options);
  BOOST_REQUIRE(at.size() == 8u);
  duration base = 100ms;
  for (std::size_t i = 1; i < at.size(); ++i, base = std::min<duration>(base * 2, 1s)) {
    auto const wait = at[i] - at[i - 1];
    BOOST_TEST((wait >= base * 3 / 4 && wait <= base * 5 / 4),
               "wait " << i << " is " << wait.count() << " ns, base " << base.count());
  }
}

CO_TEST_CASE(constant_and_no_backoff) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<duration> at;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(clk.now() - t0);
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.max_attempts = 3, .backoff = crew::backoff::constant(2s)};
  co_await retry_on(clk, attempt, options);
  BOOST_TEST((at == std::vector<duration>({0s, 2s, 4s})));

  at.clear();
  options.backoff = crew::backoff::none();
  auto const t1 = clk.now();
  co_await retry_on(clk, attempt, options);
  BOOST_TEST(at.size() == 3u);
  BOOST_TEST((clk.now() == t1));  // no wait moved the clock
}

CO_TEST_CASE(set_delay_overrides_the_backoff_for_one_wait) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<duration> at;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(clk.now() - t0);
    if (r.iteration() == 2) r.set_delay(3s);  // only for the next wait
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.max_attempts = 5,
                              .backoff = crew::exponential_backoff{100ms, 2.0, 30s, 0.0}};
  co_await retry_on(clk, attempt, options);
  // Waits: 100 ms, 3 s (set_delay), then the backoff resumes: 400 ms, 800 ms.
  BOOST_TEST((at == std::vector<duration>({0ms, 100ms, 3100ms, 3500ms, 4300ms})));

  // A zero delay retries at once, even with a backoff.
  at.clear();
  auto const t1 = clk.now();
  auto at_once = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(clk.now() - t1);
    r.set_delay(0s);
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  options.max_attempts = 3;
  co_await retry_on(clk, at_once, options);
  BOOST_TEST((at == std::vector<duration>({0s, 0s, 0s})));
}

CO_TEST_CASE(max_elapsed_gives_up_when_the_next_wait_would_end_past_it) {
  crew::manual_clock clk;
  std::vector<duration> at;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(r.elapsed());
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.backoff = crew::backoff::constant(1s), .max_elapsed = 2500ms};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 3);  // the wait after attempt 3 would end at 3 s
  BOOST_TEST((at == std::vector<duration>({0s, 1s, 2s})));

  at.clear();
  options.max_elapsed = 2s;  // a wait that ends exactly at the limit is allowed
  e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 3);

  at.clear();
  options.max_elapsed = 0s;  // no wait at all
  e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 1);

  // Time spent inside attempts counts too.
  at.clear();
  auto slow = [&](crew::retrier& r) -> net::awaitable<void> {
    at.push_back(r.elapsed());
    co_await clk.async_wait_for(co_await net::this_coro::executor, 2s, net::use_awaitable);
    throw test_error(static_cast<int>(r.iteration()));
  };
  options.max_elapsed = 5s;  // attempts end at 2 s and 5 s; a wait after the second would not fit
  e = co_await retry_on(clk, slow, options);
  BOOST_TEST(error_number(e) == 2);
  BOOST_TEST((at == std::vector<duration>({0s, 3s})));
}

CO_TEST_CASE(retry_if_ends_at_once_with_a_failure_it_rejects) {
  crew::manual_clock clk;
  int calls = 0;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    ++calls;
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  std::vector<int> seen;
  crew::retry_options options{.backoff = crew::backoff::none(),
                              .retry_if = [&](std::exception_ptr const& e) {
                                seen.push_back(error_number(e));
                                return error_number(e) != 2;
                              }};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(error_number(e) == 2);
  BOOST_TEST(calls == 2);
  BOOST_TEST(seen == std::vector<int>({1, 2}));

  // An exception from retry_if is the result.
  calls = 0;
  options.retry_if = [](std::exception_ptr const&) -> bool {
    throw std::logic_error("bad filter");
  };
  e = co_await retry_on(clk, attempt, options);
  BOOST_REQUIRE(e);
  BOOST_CHECK_THROW(std::rethrow_exception(e), std::logic_error);
  BOOST_TEST(calls == 1);
}

CO_TEST_CASE(all_failures_reports_every_attempt_in_task_errors) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{
      .max_attempts = 3, .backoff = crew::backoff::none(), .clock = &clk, .all_failures = true};
  std::optional<std::exception_ptr> result;
  auto const line = __LINE__ + 1;
  crew::async_retry(ex, attempt, options, [&](std::exception_ptr e) { result = e; });
  while (!result) {
    clk.advance_to_next();
    co_await yield_once();
  }
  BOOST_REQUIRE(*result);
  try {
    std::rethrow_exception(*result);
  } catch (crew::task_errors const& errors) {
    BOOST_REQUIRE(errors.size() == 3u);
    for (int i = 0; i < 3; ++i) {
      auto const& f = errors.failures()[i];
      BOOST_TEST(f.name == "attempt " + std::to_string(i + 1));
      BOOST_TEST(f.as<test_error>()->n == i + 1);
      BOOST_TEST(f.spawn_site.line() == line);
      BOOST_TEST(std::string(f.spawn_site.file_name()).find("retry.cpp") != std::string::npos);
    }
    BOOST_TEST(!errors.first().trace.empty());  // where attempt 1 threw
  }

  // A success is still null.
  auto second_succeeds = [&](crew::retrier& r) -> net::awaitable<void> {
    co_await yield_once();
    if (r.iteration() == 1) throw test_error(1);
  };
  auto e = co_await retry_on(clk, second_succeeds, options);
  BOOST_TEST(!e);
}

// ---------------------------------------------------------------- cancellation

CO_TEST_CASE(cancelling_during_the_wait_aborts_it_at_once) {
  auto ex = co_await net::this_coro::executor;
  for (auto type : {net::cancellation_type::terminal, net::cancellation_type::partial,
                    net::cancellation_type::total}) {
    crew::manual_clock clk;
    auto const t0 = clk.now();
    int calls = 0;
    auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
      ++calls;
      co_await yield_once();
      throw test_error(static_cast<int>(r.iteration()));
    };
    crew::retry_options options{.backoff = crew::backoff::constant(1h), .clock = &clk};
    net::cancellation_signal signal;
    std::optional<std::exception_ptr> result;
    crew::async_retry(
        ex, attempt, options,
        net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
    co_await yield_until([&] { return clk.pending() > 0; });
    signal.emit(type);
    co_await yield_until([&] { return result.has_value(); });
    BOOST_TEST((crew_test::code_of(*result) == net::error::operation_aborted));
    BOOST_TEST(calls == 1);
    BOOST_TEST(clk.pending() == 0u);
    BOOST_TEST((clk.now() == t0));  // no time had to pass
  }
}

CO_TEST_CASE(an_attempt_aborted_by_the_cancellation_is_never_retried) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  int calls = 0;
  auto attempt = [&](crew::retrier&) -> net::awaitable<void> {
    ++calls;
    co_await clk.async_wait_for(co_await net::this_coro::executor, 1h, net::use_awaitable);
  };
  // Every failure may be retried and all are reported, yet the cancellation ends it,
  // without even asking retry_if.
  int asked = 0;
  crew::retry_options options{.backoff = crew::backoff::none(),
                              .retry_if =
                                  [&](std::exception_ptr const&) {
                                    ++asked;
                                    return true;
                                  },
                              .clock = &clk,
                              .all_failures = true};
  net::cancellation_signal signal;
  std::optional<std::exception_ptr> result;
  crew::async_retry(
      ex, attempt, options,
      net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
  co_await yield_until([&] { return clk.pending() > 0; });
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST((crew_test::code_of(*result) == net::error::operation_aborted));  // not wrapped
  BOOST_TEST(calls == 1);
  BOOST_TEST(asked == 0);

  // An attempt that turns the cancellation into another failure: that failure is the
  // result, and no attempt follows.
  calls = 0;
  auto rethrowing = [&](crew::retrier& r) -> net::awaitable<void> {
    ++calls;
    try {
      co_await clk.async_wait_for(co_await net::this_coro::executor, 1h, net::use_awaitable);
    } catch (boost::system::system_error const&) {
      throw test_error(static_cast<int>(r.iteration()));
    }
  };
  options.all_failures = false;
  result.reset();
  crew::async_retry(
      ex, rethrowing, options,
      net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
  co_await yield_until([&] { return clk.pending() > 0; });
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(error_number(*result) == 1);
  BOOST_TEST(calls == 1);
  BOOST_TEST(asked == 0);
}

CO_TEST_CASE(an_operation_aborted_not_caused_by_the_cancellation_is_retried) {
  crew::manual_clock clk;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    co_await yield_once();
    if (r.iteration() < 3) throw boost::system::system_error(net::error::operation_aborted);
  };
  crew::retry_options options{.backoff = crew::backoff::none()};
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_TEST(!e);
}

CO_TEST_CASE(cancelled_before_the_first_attempt_never_calls_the_function) {
  auto ex = co_await net::this_coro::executor;
  bool ran = false;
  auto attempt = [&](crew::retrier&) -> net::awaitable<void> {
    ran = true;
    co_return;
  };
  net::cancellation_signal signal;
  std::optional<std::exception_ptr> result;
  crew::async_retry(
      ex, attempt,
      net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST((crew_test::code_of(*result) == net::error::operation_aborted));
  BOOST_TEST(!ran);
}

CO_TEST_CASE(cancelling_the_awaiting_coroutine_cancels_the_retry) {
  using namespace net::experimental::awaitable_operators;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  int calls = 0;
  auto attempt = [&](crew::retrier&) -> net::awaitable<void> {
    ++calls;
    throw test_error(1);
    co_return;
  };
  crew::retry_options options{.backoff = crew::backoff::constant(1h), .clock = &clk};
  auto op = crew::async_retry(ex, attempt, options, net::use_awaitable);
  auto winner = co_await (std::move(op) || crew_test::yield_n(20));
  BOOST_TEST(winner.index() == 1u);  // the retry lost the race and was cancelled
  BOOST_TEST(calls == 1);
  BOOST_TEST(clk.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(destroying_the_context_with_a_retry_waiting_frees_it) {
  bool called = false;
  {
    net::io_context ctx;
    crew::manual_clock clk;  // destroyed first: its pending wait is aborted into ctx
    crew::retry_options options{.backoff = crew::backoff::constant(1h), .clock = &clk};
    crew::async_retry(
        ctx.get_executor(),
        [](crew::retrier&) -> net::awaitable<void> {
          throw test_error(1);
          co_return;
        },
        options, [&](std::exception_ptr) { called = true; });
    ctx.poll();
    BOOST_TEST(clk.pending() == 1u);
  }
  BOOST_TEST(!called);  // and ASan finds nothing left behind
}

// ---------------------------------------------------------------- completion tokens

namespace {

/// Fails twice, then succeeds; no backoff, so no clock needs to move.
struct flaky {
  int* calls;
  net::awaitable<void> operator()(crew::retrier& r) const {
    ++*calls;
    co_await yield_once();
    if (r.iteration() < 3) throw test_error(static_cast<int>(r.iteration()));
  }
};

}  // namespace

CO_TEST_CASE(use_awaitable_with_and_without_an_executor) {
  auto ex = co_await net::this_coro::executor;
  int calls = 0;
  crew::retry_options options{.max_attempts = 5, .backoff = crew::backoff::none()};
  auto op = crew::async_retry(ex, flaky{&calls}, options, net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(calls == 3);

  // On the awaiting coroutine's executor.
  calls = 0;
  auto op2 = crew::async_retry(flaky{&calls}, options, net::use_awaitable);
  co_await std::move(op2);
  BOOST_TEST(calls == 3);

  calls = 0;
  auto op3 = crew::async_retry(flaky{&calls}, net::use_awaitable);
  co_await std::move(op3);
  BOOST_TEST(calls == 3);

  // The failure is thrown.
  calls = 0;
  options.max_attempts = 2;
  auto op4 = crew::async_retry(flaky{&calls}, options, net::use_awaitable);
  BOOST_CHECK_THROW(co_await std::move(op4), test_error);
  BOOST_TEST(calls == 2);
}

CO_TEST_CASE(as_tuple_and_deferred) {
  auto ex = co_await net::this_coro::executor;
  int calls = 0;
  crew::retry_options options{.max_attempts = 2, .backoff = crew::backoff::none()};
  auto op = crew::async_retry(ex, flaky{&calls}, options, net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  BOOST_TEST(error_number(e) == 2);

  calls = 0;
  auto deferred = crew::async_retry(ex, flaky{&calls}, net::deferred);
  BOOST_TEST(calls == 0);  // nothing starts before the deferred operation is launched
  co_await std::move(deferred)(net::use_awaitable);
  BOOST_TEST(calls == 3);
}

CO_TEST_CASE(use_future_with_an_executor) {
  auto ex = co_await net::this_coro::executor;
  int calls = 0;
  auto fut = crew::async_retry(ex, flaky{&calls}, net::use_future);
  co_await yield_until([&] { return fut.wait_for(0s) == std::future_status::ready; });
  fut.get();
  BOOST_TEST(calls == 3);

  crew::retry_options options{.max_attempts = 1, .backoff = crew::backoff::none()};
  auto failed = crew::async_retry(ex, flaky{&calls}, options, net::use_future);
  co_await yield_until([&] { return failed.wait_for(0s) == std::future_status::ready; });
  BOOST_CHECK_THROW(failed.get(), test_error);
}

CO_TEST_CASE(the_default_token_of_the_executor) {
  using default_awaitable = net::use_awaitable_t<>::executor_with_default<net::any_io_executor>;
  auto io = co_await net::this_coro::executor;
  default_awaitable ex{io};
  int calls = 0;
  crew::retry_options options{.max_attempts = 5, .backoff = crew::backoff::none()};
  auto op = crew::async_retry(ex, flaky{&calls}, options);
  co_await std::move(op);
  BOOST_TEST(calls == 3);
  auto op2 = crew::async_retry(ex, flaky{&calls});
  co_await std::move(op2);
  BOOST_TEST(calls == 6);
}

// ---------------------------------------------------------------- invalid input

CO_TEST_CASE(invalid_options_throw_before_anything_starts) {
  auto ex = co_await net::this_coro::executor;
  bool ran = false, completed = false;
  auto attempt = [&](crew::retrier&) -> net::awaitable<void> {
    ran = true;
    co_return;
  };
  auto done = [&](std::exception_ptr) { completed = true; };

  crew::retry_options zero_attempts{.max_attempts = 0};
  BOOST_CHECK_EXCEPTION(crew::async_retry(ex, attempt, zero_attempts, done), std::invalid_argument,
                        names("max_attempts"));
  BOOST_CHECK_EXCEPTION((void)crew::async_retry(attempt, zero_attempts, net::use_awaitable),
                        std::invalid_argument, names("max_attempts"));
  crew::retry_options negative_elapsed{.max_elapsed = -1ms};
  BOOST_CHECK_EXCEPTION(crew::async_retry(ex, attempt, negative_elapsed, done),
                        std::invalid_argument, names("max_elapsed"));
  co_await yield_once();
  BOOST_TEST(!ran);
  BOOST_TEST(!completed);

  // The backoff checks its fields as it is made.
  crew::retry_options options;
  BOOST_CHECK_EXCEPTION(options.backoff = (crew::exponential_backoff{-1ms, 2.0, 1s, 0.0}),
                        std::invalid_argument, names("initial"));
  BOOST_CHECK_EXCEPTION(options.backoff = (crew::exponential_backoff{1ms, 2.0, -1s, 0.0}),
                        std::invalid_argument, names("max"));
  BOOST_CHECK_EXCEPTION(options.backoff = (crew::exponential_backoff{1ms, 0.5, 1s, 0.0}),
                        std::invalid_argument, names("multiplier"));
  BOOST_CHECK_EXCEPTION(options.backoff = (crew::exponential_backoff{1ms, 2.0, 1s, 1.5}),
                        std::invalid_argument, names("jitter"));
  BOOST_CHECK_EXCEPTION(options.backoff = (crew::exponential_backoff{1ms, 2.0, 1s, -0.1}),
                        std::invalid_argument, names("jitter"));
  BOOST_CHECK_EXCEPTION(crew::backoff::constant(-1s), std::invalid_argument,
                        names("d is negative"));
}

CO_TEST_CASE(a_negative_set_delay_ends_the_retry_with_invalid_argument) {
  crew::manual_clock clk;
  int calls = 0;
  auto attempt = [&](crew::retrier& r) -> net::awaitable<void> {
    ++calls;
    r.set_delay(-1s);
    co_return;
  };
  crew::retry_options options{.backoff =
                                  crew::backoff::none()};  // unlimited, every failure retried
  auto e = co_await retry_on(clk, attempt, options);
  BOOST_REQUIRE(e);
  BOOST_CHECK_EXCEPTION(std::rethrow_exception(e), std::invalid_argument, names("set_delay: d"));
  BOOST_TEST(calls == 1);
}

// ---------------------------------------------------------------- crew::backoff

BOOST_AUTO_TEST_CASE(backoff_delays) {
  crew::backoff none;
  BOOST_TEST(none.is_none());
  BOOST_TEST((none.delay(1) == 0s));
  BOOST_TEST(crew::backoff::none().is_none());

  auto constant = crew::backoff::constant(250ms);
  BOOST_TEST(!constant.is_none());
  for (unsigned n : {1u, 2u, 100u}) BOOST_TEST((constant.delay(n) == 250ms));

  crew::backoff exponential = crew::exponential_backoff{100ms, 3.0, 5s, 0.0};
  BOOST_TEST(!exponential.is_none());
  BOOST_TEST((exponential.delay(0) == 100ms));  // as the first
  BOOST_TEST((exponential.delay(1) == 100ms));
  BOOST_TEST((exponential.delay(2) == 300ms));
  BOOST_TEST((exponential.delay(3) == 900ms));
  BOOST_TEST((exponential.delay(4) == 2700ms));
  BOOST_TEST((exponential.delay(5) == 5s));       // capped
  BOOST_TEST((exponential.delay(100000) == 5s));  // saturates, never overflows

  crew::backoff flat = crew::exponential_backoff{10ms, 1.0, 1s, 0.0};
  BOOST_TEST((flat.delay(50) == 10ms));

  crew::backoff defaults = crew::exponential_backoff{};  // 100 ms, x2, 30 s, no jitter
  BOOST_TEST((defaults.delay(1) == 100ms));
  BOOST_TEST((defaults.delay(20) == 30s));
}

BOOST_AUTO_TEST_CASE(backoff_jitter_spreads_within_its_bounds) {
  crew::backoff b = crew::exponential_backoff{1s, 2.0, 4s, 0.5};
  duration lowest = duration::max(), highest = duration::min();
  for (int i = 0; i < 1000; ++i) {
    for (unsigned n = 1; n <= 4; ++n) {
      duration const base = std::min<duration>(1s * (1 << (n - 1)), 4s);
      auto const d = b.delay(n);
      BOOST_TEST((d >= base / 2 && d <= base * 3 / 2));
      if (n == 1) {
        lowest = std::min(lowest, d);
        highest = std::max(highest, d);
      }
    }
  }
  BOOST_TEST((highest - lowest > 500ms));  // it does spread

  crew::backoff full = crew::exponential_backoff{1s, 2.0, 4s, 1.0};
  for (int i = 0; i < 100; ++i) BOOST_TEST((full.delay(1) >= 0s && full.delay(1) <= 2s));
}

// ---------------------------------------------------------------- threads

CO_TEST_CASE_MT(many_retries_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  constexpr int n = 200;
  std::vector<std::size_t> attempts(n, 0);
  std::atomic<int> done{0}, failed{0};
  crew::retry_options options{.backoff = crew::exponential_backoff{1ms, 2.0, 1s, 0.5},
                              .clock = &clk};
  for (int i = 0; i < n; ++i) {
    crew::async_retry(
        ex,
        [&attempts, i](crew::retrier& r) -> net::awaitable<void> {
          attempts[i] = r.iteration();
          co_await yield_once();
          if (r.iteration() < 3) throw test_error(i);
        },
        options,
        [&](std::exception_ptr e) {
          if (e) ++failed;
          ++done;
        });
  }
  // Half of them awaited from tasks of a group, with a retry_if that reads shared state.
  std::atomic<int> filtered{0};
  crew::retry_options filtering = options;
  filtering.retry_if = [&](std::exception_ptr const&) {
    ++filtered;
    return true;
  };
  crew::task_group group{ex};
  std::vector<int> calls(n, 0);
  for (int i = 0; i < n; ++i) {
    group.spawn([&, i]() -> net::awaitable<void> {
      auto op = crew::async_retry(
          [&calls, i]() -> net::awaitable<void> {
            co_await yield_once();
            if (++calls[i] < 3) throw test_error(i);
          },
          filtering, net::use_awaitable);
      co_await std::move(op);
    });
  }
  while (done < n || group.size() > 0) {
    clk.advance_to_next();
    co_await yield_once();
  }
  co_await group.wait();
  BOOST_TEST(failed == 0);
  for (int i = 0; i < n; ++i) {
    BOOST_TEST(attempts[i] == 3u);
    BOOST_TEST(calls[i] == 3);
  }
  BOOST_TEST(filtered == 2 * n);
}

// ---------------------------------------------------------------- documentation

namespace {

int calls_made = 0;

net::awaitable<void> call() {
  co_await yield_once();
  if (++calls_made < 3) throw boost::system::system_error(net::error::connection_refused);
}

bool is_transient(std::exception_ptr const& e) {
  try {
    std::rethrow_exception(e);
  } catch (boost::system::system_error const& se) {
    return se.code() == net::error::connection_refused;
  } catch (...) {
    return false;
  }
}

}  // namespace

CO_TEST_CASE(design_example) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  bool stop_clock = false;
  auto ex0 = co_await net::this_coro::executor;
  crew::task_group time{ex0};
  time.spawn([&]() -> net::awaitable<void> {
    while (!stop_clock) {
      clk.advance_to_next();
      co_await yield_once();
    }
  });

  //[retry_options
  auto ex = co_await net::this_coro::executor;
  crew::retry_options options{.max_attempts = 10,
                              .backoff = crew::exponential_backoff{100ms, 2.0, 30s, 0.2},
                              .max_elapsed = 5min,
                              .retry_if = is_transient};
  //]
  options.clock = &clk;
  //[retry_example
  auto op = crew::async_retry(
      ex,
      [&](crew::retrier& r) -> net::awaitable<void> {
        if (r.iteration() > 3) r.stop();  // iteration() starts at 1
        r.set_delay(3s);                  // only for the next wait
        co_await call();
      },
      options, net::use_awaitable);
  co_await std::move(op);  // throws the last failure if every attempt failed
  //]
  auto const ended = clk.now() - t0;
  stop_clock = true;
  co_await time.wait();
  BOOST_TEST(calls_made == 3);
  BOOST_TEST((ended == 6s));  // attempts at 0, 3 s and 6 s
}

CO_TEST_CASE(cancellation_example) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto attempt = [](crew::retrier& r) -> net::awaitable<void> {
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  crew::retry_options options{.backoff = crew::backoff::constant(1h), .clock = &clk};
  std::optional<std::exception_ptr> result;
  //[retry_cancel_start
  net::cancellation_signal cancel;
  crew::async_retry(
      ex, attempt, options,
      net::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) { result = e; }));
  //]
  co_await yield_until([&] { return clk.pending() > 0; });
  //[retry_cancel_emit
  cancel.emit(net::cancellation_type::terminal);  // the hour-long wait aborts at once
  //]
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST((crew_test::code_of(*result) == net::error::operation_aborted));
}

CO_TEST_CASE(all_failures_example) {
  auto ex = co_await net::this_coro::executor;
  auto attempt = [](crew::retrier& r) -> net::awaitable<void> {
    co_await yield_once();
    throw test_error(static_cast<int>(r.iteration()));
  };
  std::ostringstream log;
  //[retry_all_failures
  crew::retry_options options{
      .max_attempts = 3, .backoff = crew::backoff::none(), .all_failures = true};
  auto op = crew::async_retry(ex, attempt, options, net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  try {
    if (e) std::rethrow_exception(e);
  } catch (crew::task_errors const& errors) {
    for (auto const& failure : errors.failures())
      log << failure;  // "task 'attempt 1' #0 spawned at file:line: ...", then the trace
  }
  //]
  auto const text = log.str();
  for (int i = 1; i <= 3; ++i) {
    BOOST_TEST(text.find("task 'attempt " + std::to_string(i) + "'") != std::string::npos, text);
    BOOST_TEST(text.find("test error " + std::to_string(i)) != std::string::npos);
  }
}
