//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The circuit breaker, in virtual time: every breaker runs on a crew::manual_clock that
// the test moves, and a call that must stay in flight waits on a second manual clock
// (a "gate") until the test opens it. The first cases port sony/gobreaker v2's tests
// (v2/gobreaker_test.go, v2/twostep_gobreaker_test.go): the behaviours, not the code.
//
#define BOOST_TEST_MODULE circuit_breaker
#include <crew/circuit_breaker.hpp>
#include <crew/runtime.hpp>
#include <crew/task_group.hpp>
#include <crew/this_task.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew::circuit_counts;
using crew::circuit_state;
using crew_test::captured_reports;
using crew_test::code_of;
using crew_test::error_number;
using crew_test::invalid_argument_of;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_once;
using crew_test::yield_until;
using duration = crew::clock::duration;
using error_code = boost::system::error_code;

namespace {

/// A failure the tests' `is_excluded` recognises.
struct excluded_error : std::runtime_error {
  excluded_error() : std::runtime_error("excluded") {}
};

bool is_excluded_error(std::exception_ptr const& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (excluded_error const&) {
    return true;
  } catch (...) {
  }
  return false;
}

enum class ending { success, failure, exclusion };

net::awaitable<void> finish(ending how) {
  co_await yield_once();
  if (how == ending::failure) throw test_error(1);
  if (how == ending::exclusion) throw excluded_error();
}

/// What unchecked_call says when a call completed with something it did not end with.
error_code unexpected() {
  return make_error_code(boost::system::errc::bad_message);
}

/// Runs one call through `cb` that ends as `how` says, and says what happened: an empty
/// code when the breaker let it through and it completed with what it ended with; else
/// why the breaker refused it; else `unexpected()`. No Boost.Test assertion: usable from
/// several threads at once.
net::awaitable<error_code> unchecked_call(crew::circuit_breaker& cb, ending how) {
  auto ex = co_await net::this_coro::executor;
  bool ran = false;
  auto op = cb.async_call(
      ex,
      [&ran, how] {
        ran = true;
        return finish(how);
      },
      net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  if (!ran) {
    auto const code = code_of(e);
    if (code == crew::error::circuit_open || code == crew::error::too_many_requests) co_return code;
    co_return unexpected();
  }
  bool const as_asked = how == ending::success   ? !e
                        : how == ending::failure ? error_number(e) == 1
                                                 : is_excluded_error(e);
  co_return as_asked ? error_code() : unexpected();
}

/// The same, checked: the call ran as asked or was refused.
net::awaitable<error_code> call(crew::circuit_breaker& cb, ending how) {
  auto const r = co_await unchecked_call(cb, how);
  BOOST_TEST((r != unexpected()));
  co_return r;
}

// The assertions live in these small coroutines, never around a co_await in a test's
// body: a frame holding many is large enough for g++ 12 at -O1 to warn falsely
// (-Wmismatched-new-delete) about Asio's frame allocator.

/// A call the breaker must let through, ending as `how` says.
net::awaitable<void> ran(crew::circuit_breaker& cb, ending how) {
  auto const r = co_await call(cb, how);
  BOOST_TEST(!r, "the breaker refused a call: " << r.message());
}

/// A call the breaker must refuse with `why`.
net::awaitable<void> refused(crew::circuit_breaker& cb, ending how, crew::error why) {
  auto const r = co_await call(cb, how);
  BOOST_TEST((r == why), "expected " << make_error_code(why).message() << ", got "
                                     << (r ? r.message() : "a call that ran"));
}

/// A call that stays in flight until `gate` moves an hour on; cancellation aborts it.
auto gated(crew::manual_clock& gate) {
  return [&gate]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    co_await gate.async_wait_for(ex, 1h, net::use_awaitable);
  };
}

struct change {
  std::string name;
  circuit_state from;
  circuit_state to;
  friend bool operator==(change const&, change const&) = default;
};

std::ostream& operator<<(std::ostream& os, change const& c) {
  return os << c.name << ": " << c.from << " -> " << c.to;
}

using changes = std::vector<change>;

/// gobreaker's newCustom: three trial calls, a 30 s interval, open for 90 s, trips at a
/// failure ratio of 0.6 over at least 3 calls not excluded.
crew::circuit_breaker_settings custom_settings(crew::manual_clock& clk, changes* log) {
  crew::circuit_breaker_settings s;
  s.name = "cb";
  s.max_half_open = 3;
  s.interval = 30s;
  s.open_timeout = 90s;
  s.trip = [](circuit_counts const& c) {
    auto const n = c.requests - c.total_exclusions;
    return n >= 3 && static_cast<double>(c.total_failures) / static_cast<double>(n) >= 0.6;
  };
  s.is_excluded = is_excluded_error;
  if (log)
    s.on_state_change = [log](std::string const& name, circuit_state from, circuit_state to) {
      log->push_back({name, from, to});
    };
  s.clock = &clk;
  return s;
}

/// Fails the breaker until it opens; returns how many failures it took.
net::awaitable<int> trip(crew::circuit_breaker& cb) {
  int n = 0;
  while (cb.state() == circuit_state::closed) {
    auto const r = co_await call(cb, ending::failure);
    BOOST_REQUIRE(!r);
    ++n;
  }
  co_return n;
}

}  // namespace

// ---------------------------------------------------------------- gobreaker's cases

BOOST_AUTO_TEST_CASE(state_names) {
  BOOST_TEST(std::string(crew::to_string(circuit_state::closed)) == "closed");
  BOOST_TEST(std::string(crew::to_string(circuit_state::half_open)) == "half-open");
  BOOST_TEST(std::string(crew::to_string(circuit_state::open)) == "open");
  BOOST_TEST(std::string(crew::to_string(static_cast<circuit_state>(100))) == "unknown");
  std::ostringstream os;
  os << circuit_state::half_open << ' ' << circuit_counts{.requests = 3, .total_failures = 2};
  BOOST_TEST(os.str() ==
             "half-open {requests 3, successes 0, failures 2, exclusions 0, consecutive "
             "successes 0, consecutive failures 0}");
}

BOOST_AUTO_TEST_CASE(new_breakers) {
  crew::circuit_breaker defaults;
  BOOST_TEST(defaults.name() == "");
  BOOST_TEST(defaults.state() == circuit_state::closed);
  BOOST_TEST(defaults.counts() == circuit_counts{});

  crew::manual_clock clk;
  crew::circuit_breaker custom{custom_settings(clk, nullptr)};
  BOOST_TEST(custom.name() == "cb");
  BOOST_TEST(custom.state() == circuit_state::closed);
  BOOST_TEST(custom.counts() == circuit_counts{});
}

CO_TEST_CASE(the_default_breaker_trips_after_six_consecutive_failures) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};

  for (int i = 0; i < 5; ++i) co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 5, .total_failures = 5, .consecutive_failures = 5}));

  co_await ran(cb, ending::success);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(
      cb.counts() ==
      (circuit_counts{
          .requests = 6, .total_successes = 1, .total_failures = 5, .consecutive_successes = 1}));

  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(
      cb.counts() ==
      (circuit_counts{
          .requests = 7, .total_successes = 1, .total_failures = 6, .consecutive_failures = 1}));

  // Closed to open: 6 consecutive failures.
  for (int i = 0; i < 5; ++i) co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::open);
  BOOST_TEST(cb.counts() == circuit_counts{});

  // Open: calls fail fast, without running, and are not counted.
  co_await refused(cb, ending::success, crew::error::circuit_open);
  co_await refused(cb, ending::failure, crew::error::circuit_open);
  BOOST_TEST(cb.counts() == circuit_counts{});

  clk.advance(60s - 1ns);
  BOOST_TEST(cb.state() == circuit_state::open);

  // Open to half-open, once open_timeout has passed.
  clk.advance(1ns);
  BOOST_TEST(cb.state() == circuit_state::half_open);

  // Half-open to open: one failure.
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::open);
  BOOST_TEST(cb.counts() == circuit_counts{});

  clk.advance(60s);
  BOOST_TEST(cb.state() == circuit_state::half_open);

  // Half-open to closed: one success (max_half_open is 1).
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == circuit_counts{});
}

CO_TEST_CASE(a_custom_breaker) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  changes log;
  crew::circuit_breaker cb{custom_settings(clk, &log)};
  BOOST_TEST(cb.name() == "cb");

  for (int i = 0; i < 5; ++i) {
    co_await ran(cb, ending::success);
    co_await ran(cb, ending::failure);
    co_await ran(cb, ending::exclusion);
  }
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 15,
                                            .total_successes = 5,
                                            .total_failures = 5,
                                            .total_exclusions = 5,
                                            .consecutive_failures = 1}));

  clk.advance(30s - 1ms);
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 16,
                                            .total_successes = 6,
                                            .total_failures = 5,
                                            .total_exclusions = 5,
                                            .consecutive_successes = 1}));

  clk.advance(1s);  // past the interval: a new generation
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 1, .total_failures = 1, .consecutive_failures = 1}));

  // Closed to open: a failure ratio of 2/3.
  co_await ran(cb, ending::success);
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::open);
  BOOST_TEST(cb.counts() == circuit_counts{});
  BOOST_TEST(log == (changes{{"cb", circuit_state::closed, circuit_state::open}}));

  // Open to half-open.
  clk.advance(90s);
  BOOST_TEST(cb.state() == circuit_state::half_open);
  BOOST_TEST(log.back() == (change{"cb", circuit_state::open, circuit_state::half_open}));

  // Excluded calls are neutral in the half-open state: they free their slot.
  for (int i = 0; i < 4; ++i) co_await ran(cb, ending::exclusion);
  BOOST_TEST(cb.state() == circuit_state::half_open);

  // Half-open to open: the first failure.
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::open);
  BOOST_TEST(cb.counts() == circuit_counts{});
  BOOST_TEST(log.back() == (change{"cb", circuit_state::half_open, circuit_state::open}));

  clk.advance(90s);
  BOOST_TEST(cb.state() == circuit_state::half_open);

  // Successes count, but the circuit closes only after max_half_open of them.
  co_await ran(cb, ending::success);
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.state() == circuit_state::half_open);
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 2, .total_successes = 2, .consecutive_successes = 2}));

  // A third trial in flight takes the last slot.
  std::optional<std::exception_ptr> third;
  cb.async_call(ex, gated(gate), [&](std::exception_ptr e) { third = e; });
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 3, .total_successes = 2, .consecutive_successes = 2}));
  co_await refused(cb, ending::success, crew::error::too_many_requests);
  co_await yield_until([&] { return gate.pending() == 1; });
  gate.advance(1h);
  co_await yield_until([&] { return third.has_value(); });
  BOOST_TEST(!*third);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == circuit_counts{});
  BOOST_TEST(log == (changes{{"cb", circuit_state::closed, circuit_state::open},
                             {"cb", circuit_state::open, circuit_state::half_open},
                             {"cb", circuit_state::half_open, circuit_state::open},
                             {"cb", circuit_state::open, circuit_state::half_open},
                             {"cb", circuit_state::half_open, circuit_state::closed}}));
}

CO_TEST_CASE(a_rolling_window) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  changes log;
  auto settings = custom_settings(clk, &log);
  settings.name = "rw";
  settings.bucket_period = 3s;  // 10 buckets over the 30 s interval
  crew::circuit_breaker cb{settings};
  BOOST_TEST(cb.name() == "rw");

  for (int i = 0; i < 5; ++i) {
    co_await ran(cb, ending::success);
    co_await ran(cb, ending::failure);
    co_await ran(cb, ending::exclusion);
  }
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 15,
                                            .total_successes = 5,
                                            .total_failures = 5,
                                            .total_exclusions = 5,
                                            .consecutive_failures = 1}));

  clk.advance(3s);  // the next bucket
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 16,
                                            .total_successes = 6,
                                            .total_failures = 5,
                                            .total_exclusions = 5,
                                            .consecutive_successes = 1}));

  clk.advance(2s);  // the same bucket
  co_await ran(cb, ending::success);
  co_await ran(cb, ending::exclusion);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 18,
                                            .total_successes = 7,
                                            .total_failures = 5,
                                            .total_exclusions = 6,
                                            .consecutive_successes = 2}));

  clk.advance(2s);
  co_await ran(cb, ending::exclusion);
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 20,
                                            .total_successes = 8,
                                            .total_failures = 5,
                                            .total_exclusions = 7,
                                            .consecutive_successes = 3}));

  clk.advance(2s);
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 21,
                                            .total_successes = 8,
                                            .total_failures = 6,
                                            .total_exclusions = 7,
                                            .consecutive_failures = 1}));

  // Fill every bucket.
  for (std::uint64_t i = 0; i < 6; ++i) {
    clk.advance(3s);
    co_await ran(cb, ending::success);
    co_await ran(cb, ending::failure);
    BOOST_TEST(cb.counts() == (circuit_counts{.requests = 23 + 2 * i,
                                              .total_successes = 9 + i,
                                              .total_failures = 7 + i,
                                              .total_exclusions = 7,
                                              .consecutive_failures = 1}));
  }

  // The first bucket drops out of the window.
  clk.advance(3s);
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 19,
                                            .total_successes = 9,
                                            .total_failures = 8,
                                            .total_exclusions = 2,
                                            .consecutive_failures = 2}));

  for (std::uint64_t i = 0; i < 5; ++i) {
    co_await ran(cb, ending::failure);
    BOOST_TEST(cb.counts() == (circuit_counts{.requests = 20 + i,
                                              .total_successes = 9,
                                              .total_failures = 9 + i,
                                              .total_exclusions = 2,
                                              .consecutive_failures = 3 + i}));
  }
  BOOST_TEST(cb.state() == circuit_state::closed);

  co_await ran(cb, ending::failure);  // 14 failures of 23 calls: 0.61
  BOOST_TEST(cb.state() == circuit_state::open);
  BOOST_TEST(log == (changes{{"rw", circuit_state::closed, circuit_state::open}}));

  clk.advance(90s);
  BOOST_TEST(cb.state() == circuit_state::half_open);
  co_await ran(cb, ending::success);
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.state() == circuit_state::half_open);
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 2, .total_successes = 2, .consecutive_successes = 2}));

  std::optional<std::exception_ptr> third;
  cb.async_call(ex, gated(gate), [&](std::exception_ptr e) { third = e; });
  co_await refused(cb, ending::success, crew::error::too_many_requests);
  co_await yield_until([&] { return gate.pending() == 1; });
  gate.advance(1h);
  co_await yield_until([&] { return third.has_value(); });
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == circuit_counts{});
  BOOST_TEST(log.back() == (change{"rw", circuit_state::half_open, circuit_state::closed}));
}

CO_TEST_CASE(a_rolling_window_forgets_a_result_whose_bucket_left_it) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  crew::circuit_breaker_settings settings{.interval = 10s,
                                          .bucket_period = 5s,
                                          .trip = [](circuit_counts const&) { return false; },
                                          .clock = &clk};
  crew::circuit_breaker cb{settings};
  std::optional<std::exception_ptr> late;
  auto failing_gate = [&]() -> net::awaitable<void> {
    co_await gate.async_wait_for(co_await net::this_coro::executor, 1h, net::use_awaitable);
    throw test_error(2);
  };
  cb.async_call(ex, failing_gate, [&](std::exception_ptr e) { late = e; });
  co_await yield_until([&] { return gate.pending() == 1; });
  clk.advance(10s);  // its bucket left the window
  BOOST_TEST(cb.counts() == circuit_counts{});
  gate.advance(1h);
  co_await yield_until([&] { return late.has_value(); });
  BOOST_TEST(error_number(*late) == 2);  // delivered, not counted
  BOOST_TEST(cb.counts() == circuit_counts{});
}

CO_TEST_CASE(an_exception_is_a_failure_and_is_rethrown) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};
  auto op = cb.async_call(
      []() -> net::awaitable<void> {
        throw test_error(7);
        co_return;
      },
      net::use_awaitable);
  BOOST_CHECK_THROW(co_await std::move(op), test_error);
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 1, .total_failures = 1, .consecutive_failures = 1}));

  // What the factory itself throws is the call's failure too.
  auto op2 = cb.async_call([]() -> net::awaitable<void> { throw test_error(8); },
                           net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op2);
  BOOST_TEST(error_number(e) == 8);
  BOOST_TEST(cb.counts().total_failures == 2u);
}

CO_TEST_CASE(a_result_from_an_older_generation_is_ignored) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  crew::circuit_breaker cb{custom_settings(clk, nullptr)};
  clk.advance(29s);
  co_await ran(cb, ending::success);
  std::optional<std::exception_ptr> late;
  cb.async_call(ex, gated(gate), [&](std::exception_ptr e) { late = e; });
  co_await yield_until([&] { return gate.pending() == 1; });
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 2, .total_successes = 1, .consecutive_successes = 1}));

  clk.advance(1s);  // the interval: a new generation
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(cb.counts() == circuit_counts{});

  gate.advance(1h);
  co_await yield_until([&] { return late.has_value(); });
  BOOST_TEST(!*late);
  BOOST_TEST(cb.counts() == circuit_counts{});  // the old generation's success is not counted
}

CO_TEST_CASE(the_interval_is_cyclic) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.interval = 10s, .clock = &clk};
  crew::circuit_breaker cb{settings};
  for (int cycle = 0; cycle < 3; ++cycle) {
    co_await ran(cb, ending::failure);
    co_await ran(cb, ending::failure);
    BOOST_TEST(cb.counts().consecutive_failures == 2u);
    clk.advance(10s);
    BOOST_TEST(cb.counts() == circuit_counts{});
  }
  // Five failures per interval never reach six in a row.
  for (int cycle = 0; cycle < 3; ++cycle) {
    for (int i = 0; i < 5; ++i) co_await ran(cb, ending::failure);
    clk.advance(10s);
  }
  BOOST_TEST(cb.state() == circuit_state::closed);
}

CO_TEST_CASE(a_custom_is_successful) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{
      .is_successful = [](std::exception_ptr const&) { return true; }, .clock = &clk};
  crew::circuit_breaker everything_succeeds{settings};
  for (int i = 0; i < 5; ++i) co_await ran(everything_succeeds, ending::failure);
  BOOST_TEST(everything_succeeds.state() == circuit_state::closed);
  BOOST_TEST(everything_succeeds.counts() ==
             (circuit_counts{.requests = 5, .total_successes = 5, .consecutive_successes = 5}));

  settings.is_successful = [](std::exception_ptr const& e) { return !e; };
  crew::circuit_breaker strict{settings};
  for (int i = 0; i < 6; ++i) co_await ran(strict, ending::failure);
  BOOST_TEST(strict.state() == circuit_state::open);

  // A returned error code reaches is_successful as a system_error: here a "not found"
  // is an answer, not a failure.
  int asked = 0;
  settings.is_successful = [&](std::exception_ptr const& e) {
    ++asked;
    return !e || code_of(e) == net::error::not_found;
  };
  crew::circuit_breaker lenient{settings};
  auto not_found = []() -> net::awaitable<error_code> { co_return net::error::not_found; };
  auto refused = []() -> net::awaitable<error_code> { co_return net::error::connection_refused; };
  auto op = lenient.async_call(not_found, net::use_awaitable);
  error_code ec = co_await std::move(op);
  BOOST_TEST((ec == net::error::not_found));  // still delivered as the call returned it
  auto op2 = lenient.async_call(refused, net::use_awaitable);
  ec = co_await std::move(op2);
  BOOST_TEST((ec == net::error::connection_refused));
  BOOST_TEST(asked == 2);
  BOOST_TEST(
      lenient.counts() ==
      (circuit_counts{
          .requests = 2, .total_successes = 1, .total_failures = 1, .consecutive_failures = 1}));
}

CO_TEST_CASE(is_excluded_is_asked_before_is_successful) {
  crew::manual_clock clk;
  std::vector<std::string> asked;
  crew::circuit_breaker_settings settings{.is_successful =
                                              [&](std::exception_ptr const& e) {
                                                asked.push_back("is_successful");
                                                return !e;
                                              },
                                          .is_excluded =
                                              [&](std::exception_ptr const& e) {
                                                asked.push_back("is_excluded");
                                                return is_excluded_error(e);
                                              },
                                          .clock = &clk};
  crew::circuit_breaker cb{settings};

  for (int i = 0; i < 3; ++i) co_await ran(cb, ending::exclusion);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 3, .total_exclusions = 3}));
  BOOST_TEST(asked == std::vector<std::string>(3, "is_excluded"));

  for (int i = 0; i < 3; ++i) co_await ran(cb, ending::success);
  BOOST_TEST(
      cb.counts() ==
      (circuit_counts{
          .requests = 6, .total_successes = 3, .total_exclusions = 3, .consecutive_successes = 3}));

  for (int i = 0; i < 2; ++i) co_await ran(cb, ending::failure);
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 8,
                                            .total_successes = 3,
                                            .total_failures = 2,
                                            .total_exclusions = 3,
                                            .consecutive_failures = 2}));
  BOOST_TEST(asked.size() == 3u + 2 * 5);
}

CO_TEST_CASE_MT(many_calls_on_two_threads, 2) {
  // gobreaker's TestCircuitBreakerInParallel: 10 routines of alternating successes and
  // exclusions, counted exactly.
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker cb{custom_settings(clk, nullptr)};
  constexpr int routines = 10;
  constexpr int calls = 1000;
  std::atomic<int> done{0};
  std::atomic<int> wrong{0};
  for (int r = 0; r < routines; ++r)
    net::co_spawn(
        ex,
        [&]() -> net::awaitable<void> {
          for (int i = 0; i < calls; ++i) {
            auto const how = i % 2 == 0 ? ending::success : ending::exclusion;
            if (co_await unchecked_call(cb, how)) ++wrong;
          }
        },
        [&](std::exception_ptr e) {
          if (e) ++wrong;
          ++done;
        });
  co_await yield_until([&] { return done.load() == routines; });
  BOOST_TEST(wrong.load() == 0);
  std::uint64_t const half = routines * calls / 2;
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 2 * half,
                                            .total_successes = half,
                                            .total_exclusions = half,
                                            .consecutive_successes = half}));
}

CO_TEST_CASE_MT(a_rolling_window_on_two_threads, 2) {
  // gobreaker's TestRollingWindowCircuitBreakerInParallel, with the clock moving and the
  // circuit tripping and recovering meanwhile.
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  std::atomic<int> state_changes{0};
  std::atomic<int> wrong{0};
  std::atomic<bool> in_callback{false};
  auto settings = custom_settings(clk, nullptr);
  settings.bucket_period = 3s;
  settings.open_timeout = 5s;
  settings.trip = [](circuit_counts const& c) { return c.consecutive_failures >= 2; };
  settings.on_state_change = [&](std::string const&, circuit_state from, circuit_state to) {
    if (in_callback.exchange(true)) ++wrong;  // one call at a time
    if (from == to) ++wrong;
    ++state_changes;
    in_callback = false;
  };
  crew::circuit_breaker cb{settings};
  constexpr int routines = 12;
  constexpr int calls = 100;
  std::atomic<int> done{0};
  for (int r = 0; r < routines; ++r)
    net::co_spawn(
        ex,
        [&]() -> net::awaitable<void> {
          for (int i = 0; i < calls; ++i)
            if (co_await unchecked_call(cb, static_cast<ending>(i % 3)) == unexpected()) ++wrong;
        },
        [&](std::exception_ptr e) {
          if (e) ++wrong;
          ++done;
        });
  while (done.load() < routines) {
    clk.advance(1s);
    co_await yield_n(3);
  }
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(state_changes.load() > 0);
  auto const c = cb.counts();
  BOOST_TEST(c.total_successes + c.total_failures + c.total_exclusions <= c.requests);
}

CO_TEST_CASE_MT(the_half_open_limit_holds_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  crew::circuit_breaker_settings settings{.max_half_open = 3, .clock = &clk};
  crew::circuit_breaker cb{settings};
  co_await trip(cb);
  clk.advance(60s);
  constexpr int calls = 50;
  std::atomic<int> refused{0};
  std::atomic<int> succeeded{0};
  std::atomic<int> wrong{0};
  for (int i = 0; i < calls; ++i)
    net::co_spawn(
        ex,
        [&]() -> net::awaitable<void> {
          auto op = cb.async_call(gated(gate), net::as_tuple(net::use_awaitable));
          auto [e] = co_await std::move(op);
          if (!e)
            ++succeeded;
          else if (code_of(e) == crew::error::too_many_requests)
            ++refused;
          else
            ++wrong;
        },
        net::detached);
  co_await yield_until([&] { return refused.load() == calls - 3 && gate.pending() == 3; });
  BOOST_TEST(cb.state() == circuit_state::half_open);
  gate.advance(1h);
  co_await yield_until([&] { return succeeded.load() == 3; });
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(cb.state() == circuit_state::closed);
}

// ---------------------------------------------------------------- the two-step breaker

CO_TEST_CASE(a_two_step_breaker) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{
      .open_timeout = 10s, .is_excluded = is_excluded_error, .clock = &clk};
  crew::circuit_breaker cb{settings};

  auto p = cb.allow();
  BOOST_TEST(static_cast<bool>(p));
  p.done();
  BOOST_TEST(!p);
  p.done(std::make_exception_ptr(test_error(1)));  // an empty permit ignores it
  BOOST_TEST(cb.counts() ==
             (circuit_counts{.requests = 1, .total_successes = 1, .consecutive_successes = 1}));

  cb.allow().done(std::make_exception_ptr(test_error(1)));
  cb.allow().done(std::make_exception_ptr(excluded_error()));
  cb.allow().done(error_code(net::error::connection_reset));
  cb.allow().done(error_code());
  { auto dropped = cb.allow(); }  // never reported: excluded
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 6,
                                            .total_successes = 2,
                                            .total_failures = 2,
                                            .total_exclusions = 2,
                                            .consecutive_successes = 1}));

  for (int i = 0; i < 6; ++i) cb.allow().done(error_code(net::error::connection_reset));
  BOOST_TEST(cb.state() == circuit_state::open);
  try {
    cb.allow();
    BOOST_ERROR("allow() let a call through an open breaker");
  } catch (boost::system::system_error const& e) {
    BOOST_TEST((e.code() == crew::error::circuit_open));
  }
  error_code ec;
  auto refused = cb.allow(ec);
  BOOST_TEST(!refused);
  BOOST_TEST((ec == crew::error::circuit_open));

  clk.advance(10s);
  auto trial = cb.allow(ec);
  BOOST_TEST(!ec);
  BOOST_TEST(static_cast<bool>(trial));
  cb.allow(ec);
  BOOST_TEST((ec == crew::error::too_many_requests));
  trial = crew::circuit_permit();  // given back: the slot is free again
  auto second = cb.allow(ec);
  BOOST_TEST(!ec);
  auto moved = std::move(second);
  BOOST_TEST(!second);
  moved.done();
  BOOST_TEST(cb.state() == circuit_state::closed);
  co_return;
}

BOOST_AUTO_TEST_CASE(two_step_trials_that_end_excluded_free_their_slots) {
  // gobreaker's TestTwoStepCircuitBreaker, half-open part.
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{
      .name = "tscb", .max_half_open = 2, .is_excluded = is_excluded_error, .clock = &clk};
  crew::circuit_breaker cb{settings};
  for (int i = 0; i < 6; ++i) cb.allow().done(std::make_exception_ptr(test_error(i)));
  BOOST_TEST(cb.state() == circuit_state::open);
  clk.advance(60s);
  BOOST_TEST(cb.state() == circuit_state::half_open);
  auto first = cb.allow();
  auto second = cb.allow();
  error_code ec;
  cb.allow(ec);
  BOOST_TEST((ec == crew::error::too_many_requests));
  first.done(std::make_exception_ptr(excluded_error()));
  second.done(std::make_exception_ptr(excluded_error()));
  BOOST_TEST(cb.state() == circuit_state::half_open);
  cb.allow().done();
  cb.allow().done();
  BOOST_TEST(cb.state() == circuit_state::closed);
}

// ---------------------------------------------------------------- settings

CO_TEST_CASE(zero_settings_mean_what_gobreaker_says) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{
      .max_half_open = 0, .open_timeout = duration::zero(), .clock = &clk};
  crew::circuit_breaker cb{settings};
  co_await trip(cb);
  clk.advance(60s - 1ns);  // 0 is 60 s
  BOOST_TEST(cb.state() == circuit_state::open);
  clk.advance(1ns);
  BOOST_TEST(cb.state() == circuit_state::half_open);
  auto p = cb.allow();  // 0 is one trial call
  error_code ec;
  cb.allow(ec);
  BOOST_TEST((ec == crew::error::too_many_requests));
  p.done();
  BOOST_TEST(cb.state() == circuit_state::closed);
}

CO_TEST_CASE(duration_max_means_never) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{
      .interval = duration::max(), .open_timeout = duration::max(), .clock = &clk};
  crew::circuit_breaker cb{settings};
  co_await ran(cb, ending::failure);
  clk.advance(24h * 365 * 100);
  BOOST_TEST(cb.counts().total_failures == 1u);  // never cleared
  co_await trip(cb);
  BOOST_TEST(cb.state() == circuit_state::open);
  clk.advance(duration::max());  // the clock stops at time_point::max()
  BOOST_TEST((clk.now() == crew::clock::time_point::max()));
  BOOST_TEST(cb.state() == circuit_state::open);  // and it never opens... to half-open
  co_await refused(cb, ending::success, crew::error::circuit_open);

  // An open_timeout near max() saturates instead of overflowing.
  crew::manual_clock clk2;
  settings.open_timeout = duration::max() - 1ns;
  settings.clock = &clk2;
  crew::circuit_breaker cb2{settings};
  co_await trip(cb2);
  clk2.advance(24h * 365 * 100);
  BOOST_TEST(cb2.state() == circuit_state::open);
}

BOOST_AUTO_TEST_CASE(bad_settings_are_refused_naming_the_field) {
  auto mentions = [](std::string const& what, std::vector<std::string> const& words) {
    BOOST_TEST_MESSAGE(what);
    for (auto const& w : words)
      if (what.find(w) == std::string::npos) return false;
    return true;
  };
  auto refused = [&](crew::circuit_breaker_settings const& s) {
    return invalid_argument_of([&] { crew::circuit_breaker cb{s}; });
  };
  BOOST_TEST(mentions(refused({.interval = -1s}), {"crew::circuit_breaker", "interval", "-1 s"}));
  BOOST_TEST(mentions(refused({.bucket_period = -2ms}), {"bucket_period", "-2 ms"}));
  BOOST_TEST(mentions(refused({.open_timeout = -3s}), {"open_timeout", "-3 s"}));
  BOOST_TEST(mentions(refused({.open_timeout = duration::min()}), {"open_timeout"}));
  BOOST_TEST(mentions(refused({.bucket_period = 1s}), {"bucket_period", "interval", "0 s"}));
  BOOST_TEST(mentions(refused({.interval = duration::max(), .bucket_period = 1s}),
                      {"bucket_period", "interval", "duration::max()"}));
  BOOST_TEST(mentions(refused({.interval = 1h, .bucket_period = 1ms}),
                      {"interval", "1 h", "bucket_period", "1 ms", "65536"}));
  // Within the bound, the interval rounds up to whole buckets.
  BOOST_TEST(refused({.interval = 10s, .bucket_period = 3s}) == "(no invalid_argument thrown)");
  BOOST_TEST(refused({.interval = 1s, .bucket_period = 1h}) == "(no invalid_argument thrown)");
}

// ---------------------------------------------------------------- callbacks

CO_TEST_CASE(on_state_change_may_call_the_breaker) {
  crew::manual_clock clk;
  std::vector<circuit_state> seen;
  crew::circuit_breaker* self = nullptr;
  crew::circuit_breaker_settings settings{
      .open_timeout = 1s,
      .on_state_change =
          [&](std::string const&, circuit_state, circuit_state to) {
            seen.push_back(self->state());  // no deadlock: called outside the lock
            BOOST_TEST(self->state() == to);
            BOOST_TEST(self->counts().total_failures == 0u);  // a new generation
          },
      .clock = &clk};
  crew::circuit_breaker cb{settings};
  self = &cb;
  co_await trip(cb);
  clk.advance(1s);
  co_await ran(cb, ending::success);
  BOOST_TEST(seen == (std::vector<circuit_state>{circuit_state::open, circuit_state::half_open,
                                                 circuit_state::closed}));
}

CO_TEST_CASE(callbacks_that_throw_go_to_the_failure_path) {
  captured_reports reports;
  crew::manual_clock clk;
  int trips = 0;
  crew::circuit_breaker_settings settings{
      .name = "thrower",
      .trip =
          [&](circuit_counts const& c) {
            if (++trips == 1) throw test_error(31);
            return c.consecutive_failures >= 2;
          },
      .is_successful =
          [](std::exception_ptr const& e) {
            if (error_number(e) == 2) throw test_error(32);
            return !e;
          },
      .on_state_change = [](std::string const&, circuit_state,
                            circuit_state) { throw test_error(33); },
      .clock = &clk};
  crew::circuit_breaker cb{settings};

  // trip throws: reported, and the circuit stays closed.
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::closed);
  BOOST_TEST(reports.count(31) == 1);

  // is_successful throws: reported, and the outcome counts as a failure; the call
  // completes with its own outcome. That second failure in a row trips the circuit;
  // on_state_change throws: reported, and the change stands.
  auto ex = co_await net::this_coro::executor;
  auto op = cb.async_call(
      ex, []() -> net::awaitable<void> { co_return; }, net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_TEST(reports.count(32) == 0);  // is_successful(null) did not throw

  auto op2 = cb.async_call(
      ex, []() -> net::awaitable<void> { throw test_error(2); }, net::as_tuple(net::use_awaitable));
  auto [e2] = co_await std::move(op2);
  BOOST_TEST(error_number(e2) == 2);
  BOOST_TEST(reports.count(32) == 1);
  co_await ran(cb, ending::failure);
  BOOST_TEST(cb.state() == circuit_state::open);
  BOOST_TEST(reports.count(33) == 1);
  auto const all = reports.reports();
  BOOST_REQUIRE(!all.empty());
  BOOST_TEST(std::string(all[0].owner_kind) == "circuit breaker");
  BOOST_TEST(all[0].owner_name == "thrower");
  BOOST_TEST(all[0].failures.at(0).name == "trip");
}

// ---------------------------------------------------------------- completion

CO_TEST_CASE(refusals_complete_through_a_post_and_never_call_the_factory) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.name = "svc", .clock = &clk};
  crew::circuit_breaker cb{settings};
  co_await trip(cb);
  bool called = false;
  std::optional<std::exception_ptr> result;
  cb.async_call(
      ex,
      [&]() -> net::awaitable<void> {
        called = true;
        co_return;
      },
      [&](std::exception_ptr e) { result = e; });
  BOOST_TEST(!result.has_value());  // never inside the call
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!called);
  BOOST_TEST((code_of(*result) == crew::error::circuit_open));
  BOOST_TEST(crew_test::what_of(*result).find("'svc'") != std::string::npos);
}

CO_TEST_CASE(a_call_is_a_crew_task) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.name = "svc", .clock = &clk};
  crew::circuit_breaker cb{settings};
  crew::task_info inside;
  std::uint64_t caller = 0;
  auto const site = crew::source_location::current();
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    caller = crew::this_task::id();
    auto op = cb.async_call(
        [&]() -> net::awaitable<void> {
          inside = crew::this_task::info();
          co_return;
        },
        net::use_awaitable, site);
    co_await std::move(op);
  });
  co_await g.async_wait(net::use_awaitable);
  BOOST_TEST(inside.id != 0u);
  BOOST_TEST(inside.id != caller);
  BOOST_TEST(inside.parent_id == caller);
  BOOST_TEST(std::string(inside.owner_kind) == "circuit breaker");
  BOOST_TEST(inside.owner_name == "svc");
  BOOST_TEST(inside.spawn_site.line() == site.line());
}

CO_TEST_CASE(a_void_call_with_every_token) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};
  int calls = 0;
  auto ok = [&]() -> net::awaitable<void> {
    ++calls;
    co_await yield_once();
  };
  auto bad = [&]() -> net::awaitable<void> {
    ++calls;
    co_await yield_once();
    throw test_error(calls);
  };

  // A callback.
  std::optional<std::exception_ptr> r;
  cb.async_call(ex, ok, [&](std::exception_ptr e) { r = e; });
  co_await yield_until([&] { return r.has_value(); });
  BOOST_TEST(!*r);

  // use_awaitable, on an executor and on the awaiting coroutine's.
  auto op = cb.async_call(ex, ok, net::use_awaitable);
  co_await std::move(op);
  auto op2 = cb.async_call(bad, net::use_awaitable);
  BOOST_CHECK_THROW(co_await std::move(op2), test_error);

  // use_future.
  auto fut = cb.async_call(ex, ok, net::use_future);
  co_await yield_until([&] { return crew_test::ready(fut); });
  fut.get();
  auto failed = cb.async_call(ex, bad, net::use_future);
  co_await yield_until([&] { return crew_test::ready(failed); });
  BOOST_CHECK_THROW(failed.get(), test_error);

  // deferred: nothing is decided or run before it is launched.
  auto deferred = cb.async_call(ex, ok, net::deferred);
  int const before = calls;
  BOOST_TEST(cb.counts().requests == 5u);
  co_await std::move(deferred)(net::use_awaitable);
  BOOST_TEST(calls == before + 1);

  // The executor's default token.
  using default_awaitable = net::use_awaitable_t<>::executor_with_default<net::any_io_executor>;
  default_awaitable dex{ex};
  auto op3 = cb.async_call(dex, ok);
  co_await std::move(op3);
  BOOST_TEST(
      cb.counts() ==
      (circuit_counts{
          .requests = 7, .total_successes = 5, .total_failures = 2, .consecutive_successes = 2}));
}

CO_TEST_CASE(a_call_with_a_value) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};

  auto op = cb.async_call([]() -> net::awaitable<int> { co_return 42; }, net::use_awaitable);
  int const v = co_await std::move(op);
  BOOST_TEST(v == 42);

  auto op2 = cb.async_call(
      ex,
      []() -> net::awaitable<std::string> {
        co_await yield_once();
        co_return std::string(100, 'x');
      },
      net::as_tuple(net::use_awaitable));
  auto [e, s] = co_await std::move(op2);
  BOOST_TEST(!e);
  BOOST_TEST(s == std::string(100, 'x'));

  // A move-only value.
  auto op3 = cb.async_call(
      []() -> net::awaitable<std::unique_ptr<int>> { co_return std::make_unique<int>(7); },
      net::use_awaitable);
  auto p = co_await std::move(op3);
  BOOST_REQUIRE(p);
  BOOST_TEST(*p == 7);

  // A failure: the exception, and T{}.
  std::optional<std::pair<std::exception_ptr, int>> r;
  cb.async_call(
      ex,
      []() -> net::awaitable<int> {
        throw test_error(3);
        co_return 1;
      },
      [&](std::exception_ptr e, int v) { r.emplace(e, v); });
  co_await yield_until([&] { return r.has_value(); });
  BOOST_TEST(error_number(r->first) == 3);
  BOOST_TEST(r->second == 0);

  // use_future.
  auto fut = cb.async_call(
      ex, []() -> net::awaitable<int> { co_return 5; }, net::use_future);
  co_await yield_until([&] { return crew_test::ready(fut); });
  BOOST_TEST(fut.get() == 5);

  // Refused: the refusal and T{}.
  co_await trip(cb);
  auto op4 = cb.async_call([]() -> net::awaitable<int> { co_return 9; },
                           net::as_tuple(net::use_awaitable));
  auto [e4, v4] = co_await std::move(op4);
  BOOST_TEST((code_of(e4) == crew::error::circuit_open));
  BOOST_TEST(v4 == 0);
}

CO_TEST_CASE(a_call_returning_an_error_code) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};
  //[breaker_error_code
  auto fetch = []() -> net::awaitable<boost::system::error_code> {
    co_return net::error::connection_refused;  // a failure, counted as one
  };
  auto op = cb.async_call(fetch, net::use_awaitable);
  boost::system::error_code ec = co_await std::move(op);  // returned, not thrown
  //]
  BOOST_TEST((ec == net::error::connection_refused));
  BOOST_TEST(cb.counts().total_failures == 1u);

  // Success, and what the call throws.
  auto op2 = cb.async_call(
      ex, []() -> net::awaitable<error_code> { co_return error_code(); },
      net::as_tuple(net::use_awaitable));
  auto [e2, ec2] = co_await std::move(op2);
  BOOST_TEST(!e2);
  BOOST_TEST(!ec2);
  std::optional<std::pair<std::exception_ptr, error_code>> r;
  cb.async_call(
      ex,
      []() -> net::awaitable<error_code> {
        throw test_error(4);
        co_return error_code();
      },
      [&](std::exception_ptr e, error_code c) { r.emplace(e, c); });
  co_await yield_until([&] { return r.has_value(); });
  BOOST_TEST(error_number(r->first) == 4);
  BOOST_TEST(!r->second);
  BOOST_TEST(
      cb.counts() ==
      (circuit_counts{
          .requests = 3, .total_successes = 1, .total_failures = 2, .consecutive_failures = 1}));

  // A refusal comes as a code too.
  co_await trip(cb);
  auto op3 = cb.async_call(ex, fetch, net::as_tuple(net::use_awaitable));
  auto [e3, ec3] = co_await std::move(op3);
  BOOST_TEST(!e3);
  BOOST_TEST((ec3 == crew::error::circuit_open));

  // std::error_code.
  crew::circuit_breaker cb2{settings};
  auto std_fail = []() -> net::awaitable<std::error_code> {
    co_return std::make_error_code(std::errc::connection_refused);
  };
  auto op4 = cb2.async_call(ex, std_fail, net::use_awaitable);
  std::error_code sec = co_await std::move(op4);
  BOOST_TEST((sec == std::errc::connection_refused));
  BOOST_TEST(cb2.counts().total_failures == 1u);
  co_await trip(cb2);
  auto op5 = cb2.async_call(ex, std_fail, net::use_awaitable);
  sec = co_await std::move(op5);
  BOOST_TEST((error_code(sec) == crew::error::circuit_open));
}

// ---------------------------------------------------------------- cancellation

CO_TEST_CASE(cancelling_a_call_in_flight) {
  auto ex = co_await net::this_coro::executor;
  for (auto type : {net::cancellation_type::terminal, net::cancellation_type::partial,
                    net::cancellation_type::total}) {
    crew::manual_clock clk;
    crew::manual_clock gate;
    crew::circuit_breaker_settings settings{.clock = &clk};
    crew::circuit_breaker cb{settings};
    //[breaker_cancel
    net::cancellation_signal signal;
    std::optional<std::exception_ptr> result;
    cb.async_call(
        ex, gated(gate),
        net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
    //]
    co_await yield_until([&] { return gate.pending() == 1; });
    signal.emit(type);  // any type: the call's task is cancelled (terminal)
    co_await yield_until([&] { return result.has_value(); });
    BOOST_TEST((code_of(*result) == net::error::operation_aborted));
    BOOST_TEST(gate.pending() == 0u);  // aborted at once
    BOOST_TEST(cb.counts() == (circuit_counts{.requests = 1, .total_exclusions = 1}));
  }
}

CO_TEST_CASE(a_cancelled_trial_frees_its_half_open_slot) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  crew::circuit_breaker_settings settings{.open_timeout = 5s, .clock = &clk};
  crew::circuit_breaker cb{settings};
  co_await trip(cb);
  clk.advance(5s);
  net::cancellation_signal signal;
  std::optional<std::exception_ptr> trial;
  cb.async_call(
      ex, gated(gate),
      net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { trial = e; }));
  co_await refused(cb, ending::success, crew::error::too_many_requests);
  co_await yield_until([&] { return gate.pending() == 1; });
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return trial.has_value(); });
  BOOST_TEST((code_of(*trial) == net::error::operation_aborted));
  BOOST_TEST(cb.state() == circuit_state::half_open);  // neither success nor failure
  co_await ran(cb, ending::success);
  BOOST_TEST(cb.state() == circuit_state::closed);
}

CO_TEST_CASE(cancelled_before_its_task_started_a_call_never_calls_the_factory) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};
  bool called = false;
  net::cancellation_signal signal;
  std::optional<std::pair<std::exception_ptr, error_code>> result;
  cb.async_call(
      ex,
      [&]() -> net::awaitable<error_code> {
        called = true;
        co_return error_code();
      },
      net::bind_cancellation_slot(
          signal.slot(), [&](std::exception_ptr e, error_code ec) { result.emplace(e, ec); }));
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!called);
  BOOST_TEST(!result->first);  // an error-code call gets the abort as its code
  BOOST_TEST((result->second == net::error::operation_aborted));
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 1, .total_exclusions = 1}));
}

CO_TEST_CASE(a_call_that_ends_otherwise_despite_the_cancellation_counts_as_it_ended) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};
  auto stubborn = [&](bool fails) {
    return [&gate, fails]() -> net::awaitable<void> {
      auto ex = co_await net::this_coro::executor;
      [[maybe_unused]] auto [ec] =
          co_await gate.async_wait_for(ex, 1h, net::as_tuple(net::use_awaitable));
      if (fails) throw test_error(5);
    };
  };
  for (bool fails : {false, true}) {
    net::cancellation_signal signal;
    std::optional<std::exception_ptr> result;
    cb.async_call(
        ex, stubborn(fails),
        net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
    co_await yield_until([&] { return gate.pending() == 1; });
    signal.emit(net::cancellation_type::terminal);
    co_await yield_until([&] { return result.has_value(); });
    BOOST_TEST(error_number(*result) == (fails ? 5 : -1));
  }
  BOOST_TEST(
      cb.counts() ==
      (circuit_counts{
          .requests = 2, .total_successes = 1, .total_failures = 1, .consecutive_failures = 1}));
}

CO_TEST_CASE(cancelling_the_awaiting_coroutine_cancels_the_call) {
  using namespace net::experimental::awaitable_operators;
  crew::manual_clock clk;
  crew::manual_clock gate;
  crew::circuit_breaker_settings settings{.clock = &clk};
  crew::circuit_breaker cb{settings};
  auto op = cb.async_call(gated(gate), net::use_awaitable);
  auto winner = co_await (std::move(op) || yield_n(20));
  BOOST_TEST(winner.index() == 1u);
  BOOST_TEST(gate.pending() == 0u);
  co_await yield_until([&] { return cb.counts().total_exclusions == 1; });
}

// ---------------------------------------------------------------- go_with_circuit_breaker

CO_TEST_CASE(go_with_circuit_breaker_reports_what_nobody_waits_for) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.name = "svc", .clock = &clk};
  crew::circuit_breaker cb{settings};

  int ran = 0;
  crew::go_with_circuit_breaker(
      ex,
      [&]() -> net::awaitable<void> {
        ++ran;
        co_return;
      },
      cb);
  co_await yield_until([&] { return cb.counts().total_successes == 1; });
  BOOST_TEST(reports.total() == 0u);

  auto const site = crew::source_location::current();
  crew::go_with_circuit_breaker(
      ex,
      [&]() -> net::awaitable<void> {
        ++ran;
        co_await yield_once();
        throw test_error(11);
      },
      cb, site);
  co_await yield_until([&] { return reports.total() == 1; });
  auto r = reports.reports().at(0);
  BOOST_TEST(std::string(r.owner_kind) == "circuit breaker");
  BOOST_TEST(r.owner_name == "svc");
  BOOST_TEST(error_number(r.failures.at(0).exception) == 11);
  BOOST_TEST(r.failures.at(0).id != 0u);
  BOOST_TEST(r.failures.at(0).spawn_site.line() == site.line());

  // A returned code.
  crew::go_with_circuit_breaker(
      ex, [&]() -> net::awaitable<error_code> { co_return net::error::connection_reset; }, cb);
  co_await yield_until([&] { return reports.total() == 2; });
  BOOST_TEST(
      (code_of(reports.reports().at(1).failures.at(0).exception) == net::error::connection_reset));
  BOOST_TEST(cb.counts().total_failures == 2u);

  // A refusal is a failure nobody waited for too; the factory never runs.
  co_await trip(cb);
  int const before = ran;
  crew::go_with_circuit_breaker(
      ex,
      [&]() -> net::awaitable<void> {
        ++ran;
        co_return;
      },
      cb);
  co_await yield_until([&] { return reports.total() == 3; });
  BOOST_TEST(ran == before);
  BOOST_TEST(
      (code_of(reports.reports().at(2).failures.at(0).exception) == crew::error::circuit_open));
}

CO_TEST_CASE(go_with_circuit_breaker_reaches_the_runtimes_handlers) {
  auto ex = co_await net::this_coro::executor;
  std::vector<error_code> codes;
  std::vector<int> thrown;
  crew::set_error_handler(
      [&](crew::task_info const&, std::exception_ptr e) { codes.push_back(code_of(e)); });
  crew::set_exception_handler(
      [&](crew::task_info const&, std::exception_ptr e, boost::stacktrace::stacktrace const&) {
        thrown.push_back(error_number(e));
      });
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.trip = [](circuit_counts const&) { return true; },
                                          .clock = &clk};
  crew::circuit_breaker cb{settings};
  crew::go_with_circuit_breaker(
      ex, []() -> net::awaitable<void> { throw test_error(12); }, cb);
  co_await yield_until([&] { return thrown.size() == 1; });
  crew::go_with_circuit_breaker(
      ex, []() -> net::awaitable<void> { co_return; }, cb);
  co_await yield_until([&] { return codes.size() == 1; });
  crew::set_error_handler(nullptr);
  crew::set_exception_handler(nullptr);
  BOOST_TEST(thrown == std::vector<int>{12});
  BOOST_TEST((codes.at(0) == crew::error::circuit_open));
}

// ---------------------------------------------------------------- hostile probes

CO_TEST_CASE(bad_factories_are_refused_before_anything_starts) {
  auto ex = co_await net::this_coro::executor;
  crew::circuit_breaker cb;
  auto mentions = [](std::string const& what, std::string const& a, std::string const& b) {
    BOOST_TEST_MESSAGE(what);
    return what.find(a) != std::string::npos && what.find(b) != std::string::npos;
  };
  net::awaitable<void> (*null)() = nullptr;
  std::function<net::awaitable<int>()> empty;
  BOOST_TEST(
      mentions(invalid_argument_of([&] { cb.async_call(ex, null, [](std::exception_ptr) {}); }),
               "crew::circuit_breaker::async_call: factory", "null function pointer"));
  BOOST_TEST(mentions(
      invalid_argument_of([&] { cb.async_call(ex, empty, [](std::exception_ptr, int) {}); }),
      "crew::circuit_breaker::async_call: factory", "empty std::function"));
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_circuit_breaker(ex, null, cb); }),
                      "crew::go_with_circuit_breaker: factory", "null function pointer"));
  BOOST_TEST(cb.counts() == circuit_counts{});  // nothing was let through
}

CO_TEST_CASE(destroying_the_breaker_with_calls_in_flight) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::manual_clock gate;
  int asked = 0;
  int changed = 0;
  crew::circuit_breaker_settings settings{
      .trip = [](circuit_counts const&) { return true; },
      .is_successful =
          [&](std::exception_ptr const& e) {
            ++asked;
            return !e;
          },
      .on_state_change = [&](std::string const&, circuit_state, circuit_state) { ++changed; },
      .clock = &clk};
  auto cb = std::make_unique<crew::circuit_breaker>(settings);
  int completed = 0;
  std::vector<int> failures;
  for (int i = 0; i < 3; ++i)
    cb->async_call(
        ex,
        [&gate, i]() -> net::awaitable<void> {
          co_await gate.async_wait_for(co_await net::this_coro::executor, 1h, net::use_awaitable);
          if (i == 1) throw test_error(i);
        },
        [&](std::exception_ptr e) {
          ++completed;
          if (e) failures.push_back(error_number(e));
        });
  crew::go_with_circuit_breaker(ex, gated(gate), *cb);
  co_await yield_until([&] { return gate.pending() == 4; });
  cb.reset();
  gate.advance(1h);
  co_await yield_until([&] { return completed == 3; });
  co_await yield_n(10);
  BOOST_TEST(failures == std::vector<int>{1});  // the calls complete as they ended
  BOOST_TEST(asked == 0);                       // but nothing of the breaker runs any more
  BOOST_TEST(changed == 0);

  // An operation launched after its breaker was destroyed: shut_down.
  auto b2 = std::make_unique<crew::circuit_breaker>(settings);
  auto deferred = b2->async_call(ex, gated(gate), net::deferred);
  b2.reset();
  auto op = std::move(deferred)(net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  BOOST_TEST((code_of(e) == crew::error::shut_down));
}

CO_TEST_CASE(on_state_change_may_destroy_the_breaker) {
  crew::manual_clock clk;
  std::unique_ptr<crew::circuit_breaker> cb;
  int changes_seen = 0;
  crew::circuit_breaker_settings settings{
      .open_timeout = 1s,
      .on_state_change =
          [&](std::string const&, circuit_state, circuit_state to) {
            ++changes_seen;
            if (to == circuit_state::half_open) cb.reset();
          },
      .clock = &clk};
  cb = std::make_unique<crew::circuit_breaker>(settings);
  co_await trip(*cb);
  clk.advance(1s);
  cb->state();  // turns half-open, and the callback destroys the breaker
  BOOST_TEST(!cb);
  BOOST_TEST(changes_seen == 2);
}

BOOST_AUTO_TEST_CASE(destroying_the_context_with_calls_in_flight) {
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.open_timeout = 1s, .clock = &clk};
  crew::circuit_breaker cb{settings};
  bool called = false;
  {
    net::io_context ctx;
    crew::manual_clock gate;  // destroyed first: its pending waits are aborted into ctx
    cb.async_call(ctx.get_executor(), gated(gate), [&](std::exception_ptr) { called = true; });
    crew::go_with_circuit_breaker(ctx.get_executor(), gated(gate), cb);
    ctx.poll();
    BOOST_TEST(gate.pending() == 2u);
  }
  BOOST_TEST(!called);
  // Abandoned calls count as excluded, so that no half-open slot stays taken.
  BOOST_TEST(cb.counts() == (circuit_counts{.requests = 2, .total_exclusions = 2}));

  // The same in the half-open state: the slot comes back.
  for (int i = 0; i < 6; ++i) cb.allow().done(std::make_exception_ptr(test_error(i)));
  clk.advance(1s);
  {
    net::io_context ctx;
    crew::manual_clock gate;
    cb.async_call(ctx.get_executor(), gated(gate), [&](std::exception_ptr) { called = true; });
    ctx.poll();
    BOOST_TEST(cb.state() == circuit_state::half_open);
    error_code ec;
    cb.allow(ec);
    BOOST_TEST((ec == crew::error::too_many_requests));
  }
  auto p = cb.allow();
  BOOST_TEST(static_cast<bool>(p));
}

CO_TEST_CASE(a_hundred_thousand_calls) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::circuit_breaker_settings settings{.trip = [](circuit_counts const&) { return false; },
                                          .clock = &clk};
  crew::circuit_breaker cb{settings};
  constexpr int total = 100'000;
  int completed = 0;
  int failed = 0;
  for (int batch = 0; batch < total / 1000; ++batch) {
    for (int i = 0; i < 1000; ++i)
      cb.async_call(
          ex,
          [i]() -> net::awaitable<void> {
            if (i % 10 == 0) throw test_error(i);
            co_return;
          },
          [&](std::exception_ptr e) {
            ++completed;
            if (e) ++failed;
          });
    co_await yield_until([&] { return completed == (batch + 1) * 1000; });
  }
  BOOST_TEST(failed == total / 10);
  auto const c = cb.counts();
  BOOST_TEST(c.requests == static_cast<std::uint64_t>(total));
  BOOST_TEST(c.total_failures == static_cast<std::uint64_t>(total / 10));
  BOOST_TEST(c.total_successes == static_cast<std::uint64_t>(total - total / 10));
}

// ---------------------------------------------------------------- docs

namespace {

net::awaitable<std::string> fetch_quote() {
  co_await yield_once();
  co_return "42";
}

void write_to_legacy_store() {}

std::string cached_quote() {
  return "cached";
}

net::awaitable<void> refresh_cache() {
  co_await yield_once();
}

}  // namespace

CO_TEST_CASE(docs_example) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  std::vector<std::string> log;
  //[breaker_settings
  crew::circuit_breaker_settings settings{
      .name = "quotes",
      .max_half_open = 2,  // two trial calls, and two successes in a row close it
      .interval = 30s,     // the closed state forgets its counts every 30 s
      .open_timeout = 10s,
      .trip = [](crew::circuit_counts const& c) { return c.consecutive_failures >= 3; },
      .on_state_change =
          [&](std::string const& name, crew::circuit_state from, crew::circuit_state to) {
            std::ostringstream line;
            line << name << ": " << from << " -> " << to;
            log.push_back(line.str());
          },
      .clock = &clk};  // tests run in virtual time; leave it null in production
  crew::circuit_breaker breaker{settings};
  //]
  //[breaker_call
  auto op = breaker.async_call(fetch_quote, net::use_awaitable);  // a factory: called in the task
  std::string quote = co_await std::move(op);  // throws what the call threw, or circuit_open
  //]
  BOOST_TEST(quote == "42");
  for (int i = 0; i < 3; ++i) breaker.allow().done(std::make_exception_ptr(test_error(i)));
  BOOST_TEST(breaker.state() == crew::circuit_state::open);
  //[breaker_fail_fast
  std::string price;
  try {
    auto attempt = breaker.async_call(fetch_quote, net::use_awaitable);
    price = co_await std::move(attempt);
  } catch (boost::system::system_error const& error) {
    if (error.code() != crew::error::circuit_open) throw;
    price = cached_quote();  // the breaker is open: fail fast, serve what we have
  }
  //]
  BOOST_TEST(price == "cached");
  clk.advance(10s);
  BOOST_TEST(breaker.state() == crew::circuit_state::half_open);
  for (int i = 0; i < 2; ++i) breaker.allow().done();
  BOOST_TEST(breaker.state() == crew::circuit_state::closed);
  //[breaker_two_step
  boost::system::error_code refused;
  if (auto permit = breaker.allow(refused)) {
    try {
      write_to_legacy_store();  // not an awaitable: the two-step breaker counts it
      permit.done();
    } catch (...) {
      permit.done(std::current_exception());
      throw;
    }
  }
  //]
  BOOST_TEST(!refused);
  //[breaker_go
  crew::go_with_circuit_breaker(ex, refresh_cache, breaker);  // failures go to the runtime
  //]
  co_await yield_until([&] { return breaker.counts().total_successes == 2; });
  BOOST_TEST(log == (std::vector<std::string>{"quotes: closed -> open", "quotes: open -> half-open",
                                              "quotes: half-open -> closed"}));
}
