//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Background workers wait in virtual time: each test that needs a backoff passes a
// crew::manual_clock and moves it, so waits are asserted exactly and nothing sleeps.
// The registry is process-wide: every test uses worker names of its own.
//
#define BOOST_TEST_MODULE crew_background_workers
#include <crew/runtime.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace crew {
// For Boost.Test's messages.
inline std::ostream& boost_test_print_type(std::ostream& os, worker_state s) {
  return os << to_string(s);
}
}  // namespace crew

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew::worker_state;
using crew_test::error_number;
using crew_test::is_aborted;
using crew_test::ready;
using crew_test::test_error;
using crew_test::yield_once;
using crew_test::yield_until;
using duration = crew::clock::duration;

namespace {

crew::worker_options on(crew::manual_clock& clk, crew::backoff b) {
  crew::worker_options o;
  o.backoff = std::move(b);
  o.clock = &clk;
  return o;
}

crew::worker_options no_backoff(crew::restart r) {
  crew::worker_options o;
  o.restart = r;
  o.backoff = crew::backoff::none();
  return o;
}

worker_state state_of(std::string const& name) {
  return crew::worker_status(name).state;
}

/// Yields until the worker `name` is in state `s`.
net::awaitable<void> until_state(char const* name, worker_state s) {
  co_await yield_until([&] { return state_of(name) == s; });
}

/// A run that sleeps until it is cancelled, counting the cancellations.
struct sleeper {
  int* runs;
  int* aborted;
  net::awaitable<void> operator()() const {
    ++*runs;
    try {
      co_await crew_test::sleep_for(1h);
    } catch (boost::system::system_error const& e) {
      if (e.code() == net::error::operation_aborted) ++*aborted;
      throw;
    }
  }
};

/// A run that, once cancelled, goes on until `*release`: a stop of it waits meanwhile.
/// Later cancellations (each stop cancels the run again) do not end it either.
struct stubborn {
  int* interrupted;
  bool* release;
  net::awaitable<void> operator()() const {
    co_await net::this_coro::throw_if_cancelled(false);
    try {
      co_await crew_test::sleep_for(1h);
    } catch (boost::system::system_error const&) {
      ++*interrupted;
    }
    co_await yield_until([r = release] { return *r; });
  }
};

std::string message_of(std::function<void()> f) {
  return crew_test::invalid_argument_of(std::move(f));
}

bool contains(std::string const& s, std::string const& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(worker_states_have_names) {
  BOOST_TEST(std::string(crew::to_string(worker_state::running)) == "running");
  BOOST_TEST(std::string(crew::to_string(worker_state::waiting)) == "waiting");
  BOOST_TEST(std::string(crew::to_string(worker_state::stopped)) == "stopped");
  BOOST_TEST(std::string(crew::to_string(worker_state::finished)) == "finished");
  BOOST_TEST(std::string(crew::to_string(worker_state::failed)) == "failed");
  BOOST_TEST(std::string(crew::to_string(static_cast<worker_state>(42))) == "unknown");
}

// ---------------------------------------------------------------- restarts

CO_TEST_CASE(a_permanent_worker_restarts_after_every_end_with_its_backoff) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<duration> starts;
  auto options = on(clk, crew::exponential_backoff{100ms, 2.0, 1s, 0.0});
  crew::start_worker(
      ex, "perm",
      [&]() -> net::awaitable<void> {
        starts.push_back(clk.now() - t0);
        auto const n = static_cast<int>(starts.size());
        co_await yield_once();
        // Fails three times, returns, fails once more, then returns every time.
        if (n <= 3 || n == 5) throw test_error(n);
      },
      options);
  BOOST_TEST(state_of("perm") == worker_state::running);
  for (int i = 0; i < 6; ++i) {
    co_await yield_until([&] { return clk.pending() == 1; });
    BOOST_TEST(state_of("perm") == worker_state::waiting);
    clk.advance_to_next();
  }
  co_await yield_until([&] { return starts.size() == 7; });
  auto const status = crew::worker_status("perm");
  BOOST_TEST(status.restarts == 6u);
  BOOST_TEST(error_number(status.last_error) == 5);
  auto op = crew::async_stop_worker("perm", net::use_awaitable);
  co_await std::move(op);
  // Consecutive failures make the wait grow; a normal return starts the sequence again.
  BOOST_TEST((starts == std::vector<duration>{0ms, 100ms, 300ms, 700ms, 800ms, 900ms, 1000ms}));
  BOOST_TEST(state_of("perm") == worker_state::stopped);
  BOOST_TEST(reports.total() == 4u);
}

CO_TEST_CASE(a_transient_worker_restarts_only_after_a_failure) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<duration> starts;
  auto options = on(clk, crew::backoff::constant(1s));
  options.restart = crew::restart::transient;
  crew::start_worker(
      ex, "trans",
      [&]() -> net::awaitable<void> {
        starts.push_back(clk.now() - t0);
        co_await yield_once();
        if (starts.size() <= 2) throw test_error(static_cast<int>(starts.size()));
      },
      options);
  for (int i = 0; i < 2; ++i) {
    co_await yield_until([&] { return clk.pending() == 1; });
    clk.advance_to_next();
  }
  co_await until_state("trans", worker_state::finished);
  BOOST_TEST((starts == std::vector<duration>{0s, 1s, 2s}));
  auto const status = crew::worker_status("trans");
  BOOST_TEST(status.restarts == 2u);
  BOOST_TEST(error_number(status.last_error) == 2);  // the most recent failure stays
  BOOST_TEST(clk.pending() == 0u);
  co_await yield_once();
  BOOST_TEST(starts.size() == 3u);
}

CO_TEST_CASE(a_temporary_worker_never_restarts) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  auto options = on(clk, crew::backoff::constant(1s));
  options.restart = crew::restart::temporary;
  int failing_runs = 0, returning_runs = 0;
  crew::start_worker(
      ex, "temp-fails",
      [&]() -> net::awaitable<void> {
        ++failing_runs;
        co_await yield_once();
        throw test_error(1);
      },
      options);
  crew::start_worker(
      ex, "temp-returns",
      [&]() -> net::awaitable<void> {
        ++returning_runs;
        co_return;
      },
      options);
  co_await until_state("temp-fails", worker_state::failed);
  co_await until_state("temp-returns", worker_state::finished);
  co_await crew_test::yield_n(10);
  BOOST_TEST(failing_runs == 1);
  BOOST_TEST(returning_runs == 1);
  BOOST_TEST(clk.pending() == 0u);
  BOOST_TEST(crew::worker_status("temp-fails").restarts == 0u);
  BOOST_TEST(error_number(crew::worker_status("temp-fails").last_error) == 1);
  BOOST_TEST(!crew::worker_status("temp-returns").last_error);
  BOOST_TEST(reports.count(1) == 1);
}

CO_TEST_CASE(max_restarts_ends_a_failing_worker_as_failed) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  auto options = on(clk, crew::backoff::constant(1s));
  options.max_restarts = 2;
  int runs = 0;
  crew::start_worker(
      ex, "max-fail",
      [&]() -> net::awaitable<void> {
        ++runs;
        co_await yield_once();
        throw test_error(runs);
      },
      options);
  for (int i = 0; i < 2; ++i) {
    co_await yield_until([&] { return clk.pending() == 1; });
    clk.advance_to_next();
  }
  co_await until_state("max-fail", worker_state::failed);
  auto const status = crew::worker_status("max-fail");
  BOOST_TEST(runs == 3);
  BOOST_TEST(status.restarts == 2u);
  BOOST_TEST(error_number(status.last_error) == 3);
  BOOST_TEST(clk.pending() == 0u);
  BOOST_TEST(reports.total() == 3u);

  // A worker whose last run returned normally ends as finished.
  options.max_restarts = 1;
  int returns = 0;
  crew::start_worker(
      ex, "max-return",
      [&]() -> net::awaitable<void> {
        ++returns;
        co_return;
      },
      options);
  co_await yield_until([&] { return clk.pending() == 1; });
  clk.advance_to_next();
  co_await until_state("max-return", worker_state::finished);
  BOOST_TEST(returns == 2);
  BOOST_TEST(crew::worker_status("max-return").restarts == 1u);

  // No restart at all.
  options.max_restarts = 0;
  crew::start_worker(
      ex, "max-zero",
      []() -> net::awaitable<void> {
        co_await yield_once();
        throw test_error(7);
      },
      options);
  co_await until_state("max-zero", worker_state::failed);
  BOOST_TEST(crew::worker_status("max-zero").restarts == 0u);
  BOOST_TEST(clk.pending() == 0u);
}

CO_TEST_CASE(the_failure_path_sees_every_failed_run) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  int runs = 0;
  crew::start_worker(
      ex, "reported",
      [&]() -> net::awaitable<void> {
        ++runs;
        co_await yield_once();
        if (runs <= 3) throw test_error(runs);
      },
      no_backoff(crew::restart::transient));
  co_await until_state("reported", worker_state::finished);
  BOOST_TEST(runs == 4);
  BOOST_REQUIRE_EQUAL(reports.total(), 3u);
  for (int n = 1; n <= 3; ++n) BOOST_TEST(reports.count(n) == 1);
  for (auto const& r : reports.reports()) {
    BOOST_TEST(std::string(r.owner_kind) == "background worker");
    BOOST_TEST(r.owner_name == "reported");
    BOOST_REQUIRE_EQUAL(r.failures.size(), 1u);
    BOOST_TEST(r.failures[0].name == "reported");  // each run is a task named after it
    BOOST_TEST(r.failures[0].id != 0u);
  }

  // A returned error code and a throwing factory are failed runs too.
  crew::start_worker(
      ex, "reported-code",
      []() -> net::awaitable<boost::system::error_code> {
        co_return net::error::connection_refused;
      },
      no_backoff(crew::restart::temporary));
  co_await until_state("reported-code", worker_state::failed);
  BOOST_TEST(crew_test::code_of(crew::worker_status("reported-code").last_error) ==
             net::error::connection_refused);
  crew::start_worker(
      ex, "reported-factory", []() -> net::awaitable<void> { throw test_error(9); },
      no_backoff(crew::restart::temporary));
  co_await until_state("reported-factory", worker_state::failed);
  BOOST_TEST(error_number(crew::worker_status("reported-factory").last_error) == 9);
  BOOST_TEST(reports.total() == 5u);
  BOOST_TEST(reports.count(9) == 1);
}

// ---------------------------------------------------------------- stopping

CO_TEST_CASE(stopping_a_running_worker_cancels_its_run) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  int runs = 0, aborted = 0;
  crew::start_worker(ex, "stop-run", sleeper{&runs, &aborted});
  co_await yield_until([&] { return runs == 1; });
  co_await crew_test::yield_n(5);
  BOOST_TEST(state_of("stop-run") == worker_state::running);
  auto op = crew::async_stop_worker("stop-run", net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(aborted == 1);
  auto const status = crew::worker_status("stop-run");
  BOOST_TEST(status.state == worker_state::stopped);
  BOOST_TEST(status.restarts == 0u);
  BOOST_TEST(!status.last_error);  // a cancelled run is no failure
  BOOST_TEST(reports.total() == 0u);
  co_await crew_test::yield_n(10);
  BOOST_TEST(runs == 1);
}

CO_TEST_CASE(stopping_a_waiting_worker_aborts_its_wait) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  int runs = 0;
  crew::start_worker(
      ex, "stop-wait",
      [&]() -> net::awaitable<void> {
        ++runs;
        co_await yield_once();
        throw test_error(1);
      },
      on(clk, crew::backoff::constant(1h)));
  co_await yield_until([&] { return clk.pending() == 1; });
  BOOST_TEST(state_of("stop-wait") == worker_state::waiting);
  auto op = crew::async_stop_worker("stop-wait", net::use_awaitable);
  co_await std::move(op);  // without moving the clock
  BOOST_TEST(state_of("stop-wait") == worker_state::stopped);
  BOOST_TEST(clk.pending() == 0u);
  BOOST_TEST(runs == 1);
  BOOST_TEST(error_number(crew::worker_status("stop-wait").last_error) == 1);
}

CO_TEST_CASE(a_stop_with_a_callback_completes_on_the_workers_executor_never_inline) {
  auto ex = co_await net::this_coro::executor;
  int runs = 0, aborted = 0;
  crew::start_worker(ex, "stop-cb", sleeper{&runs, &aborted});
  co_await yield_until([&] { return runs == 1; });
  std::optional<std::exception_ptr> result;
  bool on_worker_executor = false;
  auto const* io = ex.target<net::io_context::executor_type>();
  BOOST_REQUIRE(io);
  crew::async_stop_worker("stop-cb", [&](std::exception_ptr e) {
    on_worker_executor = io->running_in_this_thread();
    result = e;
  });
  BOOST_TEST(!result);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!*result);
  BOOST_TEST(on_worker_executor);
  BOOST_TEST(aborted == 1);

  // A worker that already ended: at once, but still never inside the call.
  result.reset();
  crew::async_stop_worker("stop-cb", [&](std::exception_ptr e) { result = e; });
  BOOST_TEST(!result);
  co_await yield_once();
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!*result);
  BOOST_TEST(state_of("stop-cb") == worker_state::stopped);
}

CO_TEST_CASE(concurrent_stops_of_one_worker_all_complete) {
  auto ex = co_await net::this_coro::executor;
  int interrupted = 0;
  bool release = false;
  crew::start_worker(ex, "stop-many", stubborn{&interrupted, &release});
  co_await crew_test::yield_n(5);
  std::optional<std::exception_ptr> first, second;
  crew::async_stop_worker("stop-many", [&](std::exception_ptr e) { first = e; });
  crew::async_stop_worker("stop-many", [&](std::exception_ptr e) { second = e; });
  auto fut = crew::async_stop_worker("stop-many", net::use_future);
  co_await yield_until([&] { return interrupted == 1; });
  co_await crew_test::yield_n(20);
  // The run goes on after its cancellation: nobody completes yet.
  BOOST_TEST(!first);
  BOOST_TEST(!second);
  BOOST_TEST(!ready(fut));
  BOOST_TEST(state_of("stop-many") == worker_state::running);
  release = true;
  co_await yield_until([&] { return first && second && ready(fut); });
  BOOST_TEST(!*first);
  BOOST_TEST(!*second);
  BOOST_TEST(!crew_test::outcome(fut));
  BOOST_TEST(state_of("stop-many") == worker_state::stopped);
}

CO_TEST_CASE(a_worker_may_stop_itself) {
  auto ex = co_await net::this_coro::executor;
  std::optional<std::exception_ptr> result;
  int aborted = 0;
  crew::start_worker(ex, "stop-self", [&]() -> net::awaitable<void> {
    crew::async_stop_worker("stop-self", [&](std::exception_ptr e) { result = e; });
    try {
      co_await crew_test::sleep_for(1h);
    } catch (boost::system::system_error const&) {
      ++aborted;
      throw;
    }
  });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!*result);
  BOOST_TEST(aborted == 1);
  BOOST_TEST(state_of("stop-self") == worker_state::stopped);
}

CO_TEST_CASE(stop_all_stops_every_live_worker) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  int runs = 0, aborted = 0, finished_runs = 0;
  crew::start_worker(ex, "all-running", sleeper{&runs, &aborted});
  crew::start_worker(
      ex, "all-waiting",
      []() -> net::awaitable<void> {
        co_await yield_once();
        throw test_error(1);
      },
      on(clk, crew::backoff::constant(1h)));
  crew::worker_options temporary;
  temporary.restart = crew::restart::temporary;
  crew::start_worker(
      ex, "all-finished",
      [&]() -> net::awaitable<void> {
        ++finished_runs;
        co_return;
      },
      temporary);
  co_await yield_until([&] {
    return runs == 1 && clk.pending() == 1 && state_of("all-finished") == worker_state::finished;
  });
  auto op = crew::async_stop_all_workers(net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(state_of("all-running") == worker_state::stopped);
  BOOST_TEST(state_of("all-waiting") == worker_state::stopped);
  BOOST_TEST(state_of("all-finished") == worker_state::finished);  // it had ended
  BOOST_TEST(aborted == 1);
  BOOST_TEST(clk.pending() == 0u);
  BOOST_TEST(finished_runs == 1);

  // None live: at once, never inside the call; a callback has no executor of a worker.
  std::promise<std::exception_ptr> none;
  auto fut = none.get_future();
  crew::async_stop_all_workers([&](std::exception_ptr e) { none.set_value(e); });
  co_await yield_until([&] { return ready(fut); });
  BOOST_TEST(!fut.get());
}

// ---------------------------------------------------------------- completion tokens

BOOST_AUTO_TEST_CASE(use_future_with_the_context_on_another_thread,
                     *boost::unit_test::timeout(120)) {
  net::io_context ctx;
  auto guard = net::make_work_guard(ctx);
  std::thread io([&] { ctx.run(); });
  std::atomic<int> runs{0};
  crew::start_worker(ctx.get_executor(), "future", [&]() -> net::awaitable<void> {
    ++runs;
    co_await crew_test::sleep_for(1h);
  });
  while (runs == 0) std::this_thread::yield();
  auto fut = crew::async_stop_worker("future", net::use_future);
  BOOST_REQUIRE(fut.wait_for(60s) == std::future_status::ready);
  BOOST_TEST(!crew_test::outcome(fut));
  BOOST_TEST(state_of("future") == worker_state::stopped);
  // An ended worker's stop completes at once; stop_all with none live too.
  auto again = crew::async_stop_worker("future", net::use_future);
  BOOST_REQUIRE(again.wait_for(60s) == std::future_status::ready);
  BOOST_TEST(!crew_test::outcome(again));
  auto all = crew::async_stop_all_workers(net::use_future);
  BOOST_REQUIRE(all.wait_for(60s) == std::future_status::ready);
  BOOST_TEST(!crew_test::outcome(all));
  guard.reset();
  io.join();
  BOOST_TEST(runs == 1);
}

CO_TEST_CASE(a_cancelled_stop_completes_at_once_and_the_worker_still_stops) {
  auto ex = co_await net::this_coro::executor;
  int interrupted = 0;
  bool release = false;
  crew::start_worker(ex, "cancel-stop", stubborn{&interrupted, &release});
  co_await crew_test::yield_n(5);

  // A callback bound to a cancellation slot.
  net::cancellation_signal signal;
  std::optional<std::exception_ptr> cancelled, waited;
  crew::async_stop_worker(
      "cancel-stop", net::bind_cancellation_slot(signal.slot(), [&](auto e) { cancelled = e; }));
  crew::async_stop_worker("cancel-stop", [&](std::exception_ptr e) { waited = e; });
  co_await yield_until([&] { return interrupted == 1; });
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return cancelled.has_value(); });
  BOOST_TEST(is_aborted(*cancelled));
  BOOST_TEST(!waited);
  BOOST_TEST(state_of("cancel-stop") == worker_state::running);

  // An awaited stop cancelled by its coroutine's cancellation (a lost race).
  using namespace net::experimental::awaitable_operators;
  auto op = crew::async_stop_worker("cancel-stop", net::use_awaitable);
  auto winner = co_await (std::move(op) || crew_test::yield_n(20));
  BOOST_TEST(winner.index() == 1u);
  BOOST_TEST(state_of("cancel-stop") == worker_state::running);

  // Every kind of cancellation counts.
  for (auto type : {net::cancellation_type::partial, net::cancellation_type::total}) {
    net::cancellation_signal s;
    std::optional<std::exception_ptr> r;
    crew::async_stop_worker("cancel-stop",
                            net::bind_cancellation_slot(s.slot(), [&](auto e) { r = e; }));
    s.emit(type);
    co_await yield_until([&] { return r.has_value(); });
    BOOST_TEST(is_aborted(*r));
  }

  // stop_all is cancellable in the same way.
  net::cancellation_signal all_signal;
  std::promise<std::exception_ptr> all;
  auto all_fut = all.get_future();
  crew::async_stop_all_workers(
      net::bind_cancellation_slot(all_signal.slot(), [&](auto e) { all.set_value(e); }));
  all_signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return ready(all_fut); });
  BOOST_TEST(is_aborted(all_fut.get()));

  // The worker stops all the same; a later emission does nothing.
  release = true;
  co_await yield_until([&] { return waited.has_value(); });
  BOOST_TEST(!*waited);
  BOOST_TEST(state_of("cancel-stop") == worker_state::stopped);
  signal.emit(net::cancellation_type::terminal);
  co_await crew_test::yield_n(5);
}

// ---------------------------------------------------------------- names and options

CO_TEST_CASE(a_name_in_use_is_refused_while_its_worker_runs_or_waits) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  crew::manual_clock clk;
  int runs = 0, aborted = 0;
  crew::start_worker(ex, "dup", sleeper{&runs, &aborted});
  auto const m = message_of([&] { crew::start_worker(ex, "dup", sleeper{&runs, &aborted}); });
  BOOST_TEST(contains(m, "crew::start_worker: a worker named 'dup' is already running"), m);

  crew::start_worker(
      ex, "dup-waiting",
      []() -> net::awaitable<void> {
        co_await yield_once();
        throw test_error(1);
      },
      on(clk, crew::backoff::constant(1h)));
  co_await yield_until([&] { return clk.pending() == 1; });
  auto const w = message_of([&] {
    crew::start_worker(ex, "dup-waiting", sleeper{&runs, &aborted});
  });
  BOOST_TEST(contains(w, "'dup-waiting' is already running (waiting to run again)"), w);

  co_await yield_until([&] { return runs == 1; });
  auto op = crew::async_stop_all_workers(net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(runs == 1);  // the refused starts never ran
}

CO_TEST_CASE(a_stopped_finished_or_failed_worker_is_replaced) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  int runs = 0, aborted = 0;
  crew::start_worker(ex, "replace", sleeper{&runs, &aborted});
  co_await yield_until([&] { return runs == 1; });
  auto op = crew::async_stop_worker("replace", net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(state_of("replace") == worker_state::stopped);

  int second_runs = 0;
  crew::start_worker(ex, "replace", sleeper{&second_runs, &aborted});
  BOOST_TEST(state_of("replace") == worker_state::running);
  co_await yield_until([&] { return second_runs == 1; });
  auto op2 = crew::async_stop_worker("replace", net::use_awaitable);
  co_await std::move(op2);
  BOOST_TEST(runs == 1);
  BOOST_TEST(aborted == 2);

  // finished, then failed, then replaced again: the status is the new worker's.
  crew::start_worker(
      ex, "replace", []() -> net::awaitable<void> { co_return; },
      no_backoff(crew::restart::temporary));
  co_await until_state("replace", worker_state::finished);
  crew::start_worker(
      ex, "replace", []() -> net::awaitable<void> { throw test_error(4); },
      no_backoff(crew::restart::temporary));
  co_await until_state("replace", worker_state::failed);
  BOOST_TEST(error_number(crew::worker_status("replace").last_error) == 4);
  crew::start_worker(
      ex, "replace", []() -> net::awaitable<void> { co_return; },
      no_backoff(crew::restart::temporary));
  BOOST_TEST(!crew::worker_status("replace").last_error);
  co_await until_state("replace", worker_state::finished);
}

CO_TEST_CASE(unknown_names_are_refused_with_the_name) {
  auto m = message_of([] { (void)crew::worker_status("no-such-worker"); });
  BOOST_TEST(m == "crew::worker_status: no worker named 'no-such-worker'");
  bool called = false;
  m = message_of([&] {
    crew::async_stop_worker("no-such-worker", [&](std::exception_ptr) { called = true; });
  });
  BOOST_TEST(m == "crew::async_stop_worker: no worker named 'no-such-worker'");
  BOOST_CHECK_THROW(crew::async_stop_worker("no-such-worker", net::use_future),
                    std::invalid_argument);
  // With use_awaitable the check is made in the awaiting coroutine, never inside Asio's
  // initiation, where the exception would escape io_context::run().
  bool thrown = false;
  try {
    co_await crew::async_stop_worker("no-such-worker", net::use_awaitable);
  } catch (std::invalid_argument const&) {
    thrown = true;
  }
  BOOST_TEST(thrown);
  co_await crew_test::yield_n(5);
  BOOST_TEST(!called);
}

CO_TEST_CASE(bad_names_and_options_are_refused) {
  auto ex = co_await net::this_coro::executor;
  auto const body = []() -> net::awaitable<void> { co_return; };
  auto m = message_of([&] { crew::start_worker(ex, "", body); });
  BOOST_TEST(m == "crew::start_worker: name is empty");

  crew::worker_options options;
  options.restart = static_cast<crew::restart>(7);
  m = message_of([&] { crew::start_worker(ex, "bad-restart", body, options); });
  BOOST_TEST(m ==
             "crew::start_worker: options.restart of worker 'bad-restart' is not a "
             "crew::restart: 7");

  std::function<net::awaitable<void>()> empty;
  m = message_of([&] { crew::start_worker(ex, "bad-factory", empty); });
  BOOST_TEST(contains(m, "crew::start_worker"), m);

  // A bad backoff never reaches a worker: the backoff refuses it, naming the field.
  m = message_of([&] {
    crew::worker_options o;
    o.backoff = crew::exponential_backoff{100ms, 0.5, 1s, 0.0};
  });
  BOOST_TEST(contains(m, "multiplier"), m);

  // Nothing was registered.
  for (auto name : {"bad-restart", "bad-factory"})
    BOOST_TEST(contains(message_of([&] { (void)crew::worker_status(name); }), "no worker named"));
  co_return;
}

// ---------------------------------------------------------------- threads

CO_TEST_CASE_MT(workers_start_and_stop_concurrently_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  constexpr int n = 40;
  std::array<std::atomic<int>, n> runs{};
  std::atomic<int> done{0}, errors{0}, stopped_one{0};
  for (int i = 0; i < n; ++i) {
    net::co_spawn(
        ex,
        [&, i]() -> net::awaitable<void> {
          auto const name = "mt-" + std::to_string(i);
          crew::start_worker(
              ex, name,
              [&runs, i]() -> net::awaitable<void> {
                auto const k = ++runs[i];
                co_await yield_once();
                if (k % 3 == 0) throw test_error(i);
              },
              no_backoff(crew::restart::permanent));
          co_await yield_until([&] { return runs[i] >= 5; });
          (void)crew::worker_status(name);
          if (i % 2 == 0) {
            auto op = crew::async_stop_worker(name, net::use_awaitable);
            co_await std::move(op);
            ++stopped_one;
          }
        },
        [&](std::exception_ptr e) {
          if (e) ++errors;
          ++done;
        });
  }
  co_await yield_until([&] { return done == n; });
  auto op = crew::async_stop_all_workers(net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(errors == 0);
  BOOST_TEST(stopped_one == n / 2);
  for (int i = 0; i < n; ++i) {
    auto const s = crew::worker_status("mt-" + std::to_string(i));
    BOOST_TEST(s.state == worker_state::stopped);
    BOOST_TEST(s.restarts + 1 >= 5u);
  }
  int const total = [&] {
    int t = 0;
    for (auto const& r : runs) t += r;
    return t;
  }();
  co_await crew_test::yield_n(20);
  int after = 0;
  for (auto const& r : runs) after += r;
  BOOST_TEST(after == total);  // nothing runs once stopped
}

// ---------------------------------------------------------------- the context destroyed

BOOST_AUTO_TEST_CASE(destroying_the_context_stops_its_running_and_waiting_workers,
                     *boost::unit_test::timeout(120)) {
  crew_test::captured_reports reports;
  int runs = 0, aborted = 0;
  {
    net::io_context ctx;
    crew::manual_clock clk;  // destroyed first: its pending wait is aborted into ctx
    crew::start_worker(ctx.get_executor(), "gone-running", sleeper{&runs, &aborted});
    crew::start_worker(
        ctx.get_executor(), "gone-waiting", []() -> net::awaitable<void> { throw test_error(1); },
        on(clk, crew::backoff::constant(1h)));
    crew::worker_options steady;
    steady.backoff = crew::backoff::constant(1h);
    crew::start_worker(
        ctx.get_executor(), "gone-waiting-steady",
        []() -> net::awaitable<void> { throw test_error(2); }, steady);
    ctx.poll();
    crew::start_worker(ctx.get_executor(), "gone-never-started", sleeper{&runs, &aborted});
    BOOST_TEST(state_of("gone-running") == worker_state::running);
    BOOST_TEST(state_of("gone-waiting") == worker_state::waiting);
    BOOST_TEST(state_of("gone-waiting-steady") == worker_state::waiting);
    BOOST_TEST(clk.pending() == 1u);
  }
  BOOST_TEST(runs == 1);     // the last one never started
  BOOST_TEST(aborted == 0);  // the run was destroyed, not resumed
  for (auto name : {"gone-running", "gone-waiting", "gone-waiting-steady", "gone-never-started"})
    BOOST_TEST(state_of(name) == worker_state::stopped, name);

  // A later stop completes, on no dead executor; a callback runs on the system executor.
  auto fut = crew::async_stop_worker("gone-running", net::use_future);
  BOOST_REQUIRE(fut.wait_for(60s) == std::future_status::ready);
  BOOST_TEST(!crew_test::outcome(fut));
  std::promise<std::exception_ptr> called;
  auto called_fut = called.get_future();
  crew::async_stop_worker("gone-waiting", [&](std::exception_ptr e) { called.set_value(e); });
  BOOST_REQUIRE(called_fut.wait_for(60s) == std::future_status::ready);
  BOOST_TEST(!called_fut.get());
  auto all = crew::async_stop_all_workers(net::use_future);
  BOOST_REQUIRE(all.wait_for(60s) == std::future_status::ready);

  // The name can be used again on another context.
  net::io_context next;
  int next_runs = 0;
  crew::start_worker(next.get_executor(), "gone-running", sleeper{&next_runs, &aborted});
  next.poll();
  BOOST_TEST(next_runs == 1);
  std::optional<std::exception_ptr> stopped;
  crew::async_stop_worker("gone-running", [&](std::exception_ptr e) { stopped = e; });
  next.run();
  BOOST_REQUIRE(stopped.has_value());
  BOOST_TEST(!*stopped);
  BOOST_TEST(aborted == 1);
}
