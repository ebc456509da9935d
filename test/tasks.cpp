//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The provided tasks (crew::tasks), with the behaviours of goasync's own suite
// (tasks/*_test.go): stages pass through, repeatable and repeat_timer go on despite
// failures, interruptible reloads on a signal, force_stop gives up after its grace.
// Each test runs a provided task's execute() as a crew task of a task_group and cancels
// the group; waits run in virtual time on a crew::manual_clock wherever timers matter.
//
#define BOOST_TEST_MODULE crew_tasks
#include <crew/detail/failure.hpp>
#include <crew/task_group.hpp>
#include <crew/task_manager.hpp>
#include <crew/tasks.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::captured_reports;
using crew_test::code_of;
using crew_test::error_number;
using crew_test::invalid_argument_of;
using crew_test::is_aborted;
using crew_test::test_error;
using crew_test::what_of;
using crew_test::yield_n;
using crew_test::yield_once;
using crew_test::yield_until;
using duration = crew::clock::duration;

// Every provided task is a managed task, and move-only.
static_assert(crew::managed_task<crew::tasks::repeatable_task>);
static_assert(crew::managed_task<crew::tasks::repeat_timer_task>);
static_assert(crew::managed_task<crew::tasks::interruptible_task>);
static_assert(crew::managed_task<crew::tasks::force_stop_task>);
static_assert(std::is_nothrow_move_constructible_v<crew::tasks::force_stop_task>);
static_assert(!std::is_copy_constructible_v<crew::tasks::repeatable_task>);
static_assert(!std::is_copy_constructible_v<crew::tasks::repeat_timer_task>);
static_assert(!std::is_copy_constructible_v<crew::tasks::interruptible_task>);
static_assert(!std::is_copy_constructible_v<crew::tasks::force_stop_task>);
static_assert(std::is_move_assignable_v<crew::tasks::repeatable_task>);

namespace {

/// A managed task that counts its stages (goasync's FakeTask). Its execute() runs
/// `body` with the execute's number (from 1), or waits until cancelled without one.
struct counting_task {
  std::atomic<int> initializes{0};
  std::atomic<int> executes{0};
  std::atomic<int> cleanups{0};
  std::function<net::awaitable<void>(int)> body;
  std::function<void(int)> on_initialize;  // may throw
  std::function<net::awaitable<void>(int)> on_cleanup;

  net::awaitable<void> initialize() {
    int const n = ++initializes;
    if (on_initialize) on_initialize(n);
    co_return;
  }

  net::awaitable<void> execute() {
    int const n = ++executes;
    if (body) {
      auto op = body(n);
      co_await std::move(op);
    } else {
      co_await crew_test::sleep_for(1h);
    }
  }

  net::awaitable<void> cleanup() {
    int const n = ++cleanups;
    if (on_cleanup) {
      auto op = on_cleanup(n);
      co_await std::move(op);
    }
  }
};

/// What an execute() ended with; safe to poll from another thread.
struct result_box {
  std::atomic<bool> ready{false};
  std::exception_ptr error;

  void set(std::exception_ptr e) {
    error = std::move(e);
    ready.store(true, std::memory_order_release);
  }
  bool done() const { return ready.load(std::memory_order_acquire); }
};

template <class T>
net::awaitable<void> execute_into(T& t, result_box& box) {
  try {
    auto op = t.execute();
    co_await std::move(op);
    box.set(nullptr);
  } catch (...) {
    box.set(std::current_exception());
  }
}

/// Runs `t.execute()` as a crew task named `name` of `g` (as a task manager's stage
/// would); `box` gets what it ended with.
template <class T>
void start_execute(crew::task_group& g, T& t, result_box& box, std::string name = "db") {
  crew::spawn_options o;
  o.name = std::move(name);
  g.spawn(execute_into(t, box), std::move(o));
}

/// Moves `clk` to its next deadline whenever a wait is pending, until `done()` holds.
template <class Pred>
net::awaitable<void> step_until(crew::manual_clock& clk, Pred done) {
  for (int i = 0; !done(); ++i) {
    if (i == 1000000) throw std::runtime_error("step_until: the condition never held");
    if (clk.pending() > 0) clk.advance_to_next();
    co_await yield_once();
  }
}

void (*disposition(int signo))(int) {
  struct sigaction sa {};
  ::sigaction(signo, nullptr, &sa);
  return sa.sa_handler;
}

/// The interruptible tests check that SIGHUP's disposition is restored to the default;
/// a process started under nohup inherits SIG_IGN, so they start from the default.
struct default_sighup {
  default_sighup() { ::signal(SIGHUP, SIG_DFL); }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(default_sighup);

// ---------------------------------------------------------------- stages pass through

template <class T>
net::awaitable<void> check_pass_through(T t, counting_task& task) {
  auto init = t.initialize();
  co_await std::move(init);
  BOOST_TEST(task.initializes == 1);
  BOOST_TEST(task.cleanups == 0);
  auto clean = t.cleanup();
  co_await std::move(clean);
  BOOST_TEST(task.cleanups == 1);
  BOOST_TEST(task.executes == 0);
}

CO_TEST_CASE(initialize_and_cleanup_pass_through_for_every_provided_task) {
  {
    counting_task task;
    auto op = check_pass_through(crew::tasks::repeatable(std::ref(task)), task);
    co_await std::move(op);
  }
  {
    counting_task task;
    auto op = check_pass_through(crew::tasks::repeat_timer(1s, std::ref(task)), task);
    co_await std::move(op);
  }
  {
    counting_task task;
    auto op = check_pass_through(crew::tasks::interruptible({SIGHUP}, std::ref(task)), task);
    co_await std::move(op);
  }
  {
    counting_task task;
    auto op = check_pass_through(crew::tasks::force_stop(1s, std::ref(task)), task);
    co_await std::move(op);
  }
  {  // nested, by shared_ptr and unique_ptr
    auto task = std::make_shared<counting_task>();
    auto nested = crew::tasks::repeatable(
        crew::tasks::force_stop(1s, std::make_unique<crew::tasks::interruptible_task>(
                                        crew::tasks::interruptible({SIGHUP}, task))));
    auto op = check_pass_through(std::move(nested), *task);
    co_await std::move(op);
  }
}

CO_TEST_CASE(a_failing_initialize_or_cleanup_passes_through_unchanged) {
  counting_task task;
  task.on_initialize = [](int) { throw test_error(1); };
  task.on_cleanup = [](int) -> net::awaitable<void> {
    throw test_error(2);
    co_return;
  };
  auto t = crew::tasks::force_stop(1s, std::ref(task));
  try {
    auto op = t.initialize();
    co_await std::move(op);
    BOOST_FAIL("initialize must fail");
  } catch (test_error const& e) {
    BOOST_TEST(e.n == 1);
  }
  try {
    auto op = t.cleanup();
    co_await std::move(op);
    BOOST_FAIL("cleanup must fail");
  } catch (test_error const& e) {
    BOOST_TEST(e.n == 2);
  }
}

// ---------------------------------------------------------------- repeatable

CO_TEST_CASE(repeatable_executes_again_and_again_despite_failures_with_a_backoff) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  counting_task task;
  std::vector<duration> starts;
  task.body = [&](int n) -> net::awaitable<void> {
    starts.push_back(clk.now() - t0);
    throw test_error(n);
    co_return;
  };
  std::vector<int> failures;
  crew::tasks::repeatable_options o;
  o.on_failure = [&](std::exception_ptr e) { failures.push_back(error_number(e)); };
  o.clock = &clk;
  auto t = crew::tasks::repeatable(std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await step_until(clk, [&] { return task.executes >= 5; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST_REQUIRE(box.done());
  BOOST_TEST(!box.error);  // a cancelled repeatable is a clean stop
  BOOST_TEST(task.executes == 5);
  BOOST_TEST((failures == std::vector<int>{1, 2, 3, 4, 5}));  // every one, in order
  // The default backoff (100 ms, doubling) after consecutive failures: it never spins.
  BOOST_TEST((starts == std::vector<duration>{0ms, 100ms, 300ms, 700ms, 1500ms}));
  BOOST_TEST(clk.pending() == 0u);  // the backoff wait was aborted
  BOOST_TEST(task.initializes == 0);
  BOOST_TEST(task.cleanups == 0);
}

CO_TEST_CASE(repeatable_restarts_at_once_after_a_normal_return) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.body = [](int) -> net::awaitable<void> { co_return; };
  crew::tasks::repeatable_options o;
  o.clock = &clk;
  auto t = crew::tasks::repeatable(std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes >= 20; });
  BOOST_TEST(clk.pending() == 0u);  // no wait between normal returns
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
}

CO_TEST_CASE(repeatable_without_on_failure_reports_to_the_failure_path) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.body = [](int n) -> net::awaitable<void> {
    throw test_error(n);
    co_return;
  };
  crew::tasks::repeatable_options o;
  o.clock = &clk;
  auto t = crew::tasks::repeatable(std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box, "poller");
  co_await step_until(clk, [&] { return reports.total() >= 3; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  auto const r = reports.reports();
  BOOST_TEST_REQUIRE(r.size() == 3u);
  BOOST_TEST(std::string(r[0].owner_kind) == "repeatable");
  BOOST_TEST(r[0].owner_name == "poller");
  BOOST_TEST(r[0].failures[0].name == "poller");  // each run is a task named after it
  BOOST_TEST(r[0].failures[0].id != 0u);
  BOOST_TEST(error_number(r[2].failures[0].exception) == 3);
}

CO_TEST_CASE(a_throwing_on_failure_is_reported_as_a_handler_failure) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.body = [](int n) -> net::awaitable<void> {
    throw test_error(n);
    co_return;
  };
  crew::tasks::repeatable_options o;
  o.clock = &clk;
  o.on_failure = [](std::exception_ptr) { throw test_error(99); };
  auto t = crew::tasks::repeatable(std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await step_until(clk, [&] { return reports.total() >= 1; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  auto const r = reports.reports();
  BOOST_TEST_REQUIRE(!r.empty());
  BOOST_TEST(error_number(r[0].failures[0].exception) == 99);
  BOOST_TEST((r[0].failures[0].stage == crew::task_stage::handler));
}

CO_TEST_CASE(cancelling_a_repeatable_cancels_the_run_in_flight) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;  // its execute waits until cancelled
  int aborted = 0;
  task.body = [&](int) { return crew_test::sleep_counting_aborts(1h, aborted); };
  auto t = crew::tasks::repeatable(std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  co_await yield_n(3);
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST(aborted == 1);
  BOOST_TEST(task.executes == 1);  // not restarted once cancelled
}

// ---------------------------------------------------------------- repeat_timer

/// Runs a repeat_timer of `period` over `task` in virtual time until `runs` executes
/// started, then cancels it.
net::awaitable<void> ticks_of(duration period, counting_task& task, crew::manual_clock& clk,
                              int runs) {
  auto ex = co_await net::this_coro::executor;
  crew::tasks::repeat_timer_options o;
  o.clock = &clk;
  auto t = crew::tasks::repeat_timer(period, std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await step_until(clk, [&] { return task.executes >= runs; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST(box.done());
  BOOST_TEST(!box.error);  // a cancelled repeat_timer is a clean stop
  BOOST_TEST(clk.pending() == 0u);
}

CO_TEST_CASE(repeat_timer_runs_at_once_then_on_every_tick) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  counting_task task;
  std::vector<duration> starts;
  task.body = [&](int) -> net::awaitable<void> {
    starts.push_back(clk.now() - t0);
    co_return;
  };
  auto op = ticks_of(10s, task, clk, 5);
  co_await std::move(op);
  BOOST_TEST((starts == std::vector<duration>{0s, 10s, 20s, 30s, 40s}));
}

CO_TEST_CASE(repeat_timer_never_overlaps_and_skips_the_ticks_a_run_missed) {
  crew::manual_clock clk;
  auto const t0 = clk.now();
  counting_task task;
  std::vector<duration> starts;
  int running = 0;
  int most_running = 0;
  task.body = [&](int n) -> net::awaitable<void> {
    starts.push_back(clk.now() - t0);
    most_running = std::max(most_running, ++running);
    auto ex = co_await net::this_coro::executor;
    // Run 1 overruns two ticks and a half; run 2 takes one period exactly.
    duration const takes = n == 1 ? 25s : n == 2 ? 10s : 0s;
    if (takes > 0s) {
      auto w = clk.async_wait_for(ex, takes, net::use_awaitable);
      co_await std::move(w);
    }
    --running;
  };
  auto op = ticks_of(10s, task, clk, 6);
  co_await std::move(op);
  // Ticks 10 s and 20 s were missed by run 1 (ended at 25 s): skipped, not queued. Run 2
  // ended at 40 s, a tick: run 3 starts then.
  BOOST_TEST((starts == std::vector<duration>{0s, 30s, 40s, 50s, 60s, 70s}));
  BOOST_TEST(most_running == 1);
}

CO_TEST_CASE(repeat_timer_goes_on_despite_failures) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  counting_task task;
  std::vector<duration> starts;
  task.body = [&](int n) -> net::awaitable<void> {
    starts.push_back(clk.now() - t0);
    throw test_error(n);
    co_return;
  };
  std::vector<int> failures;
  crew::tasks::repeat_timer_options o;
  o.clock = &clk;
  o.on_failure = [&](std::exception_ptr e) { failures.push_back(error_number(e)); };
  auto t = crew::tasks::repeat_timer(1ns, std::ref(task), o);  // goasync's test: 1 ns
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await step_until(clk, [&] { return task.executes >= 5; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST((failures == std::vector<int>{1, 2, 3, 4, 5}));
  // Failures change nothing: no backoff, the ticks go on.
  BOOST_TEST((starts == std::vector<duration>{0ns, 1ns, 2ns, 3ns, 4ns}));
}

CO_TEST_CASE(repeat_timer_without_on_failure_reports_to_the_failure_path) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.body = [](int n) -> net::awaitable<void> {
    throw test_error(n);
    co_return;
  };
  crew::tasks::repeat_timer_options o;
  o.clock = &clk;
  auto t = crew::tasks::repeat_timer(1s, std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box, "sweeper");
  co_await step_until(clk, [&] { return reports.total() >= 2; });
  g.cancel();
  co_await g.wait();
  auto const r = reports.reports();
  BOOST_TEST_REQUIRE(r.size() == 2u);
  BOOST_TEST(std::string(r[0].owner_kind) == "repeat timer");
  BOOST_TEST(r[0].owner_name == "sweeper");
  BOOST_TEST(r[1].failures[0].name == "sweeper");
  BOOST_TEST(error_number(r[1].failures[0].exception) == 2);
}

CO_TEST_CASE(a_period_of_duration_max_runs_once_then_waits_until_cancelled) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.body = [](int) -> net::awaitable<void> { co_return; };
  crew::tasks::repeat_timer_options o;
  o.clock = &clk;
  auto t = crew::tasks::repeat_timer(duration::max(), std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return clk.pending() == 1; });
  BOOST_TEST(task.executes == 1);
  BOOST_TEST((clk.next_deadline() == crew::clock::time_point::max()));
  clk.advance(24h * 365 * 200);
  co_await yield_n(100);
  BOOST_TEST(task.executes == 1);
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST(clk.pending() == 0u);
}

CO_TEST_CASE(a_huge_period_on_a_late_clock_never_overflows) {
  auto ex = co_await net::this_coro::executor;
  // Near the end of time: start + k * period is past time_point::max() at once.
  crew::manual_clock clk(crew::clock::time_point::max() - 1h);
  counting_task task;
  task.body = [](int) -> net::awaitable<void> { co_return; };
  crew::tasks::repeat_timer_options o;
  o.clock = &clk;
  auto t = crew::tasks::repeat_timer(2h, std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return clk.pending() == 1; });
  BOOST_TEST(task.executes == 1);
  BOOST_TEST((clk.next_deadline() == crew::clock::time_point::max()));
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
}

CO_TEST_CASE(cancelling_a_repeat_timer_cancels_the_run_in_flight) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  int aborted = 0;
  task.body = [&](int) { return crew_test::sleep_counting_aborts(1h, aborted); };
  auto t = crew::tasks::repeat_timer(1ms, std::ref(task));  // the steady clock
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  co_await yield_n(3);
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST(aborted == 1);
  BOOST_TEST(task.executes == 1);
}

// ---------------------------------------------------------------- interruptible

CO_TEST_CASE(interruptible_reloads_the_task_on_a_signal) {
  BOOST_TEST_REQUIRE((disposition(SIGHUP) == SIG_DFL));
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  int registered_while_executing = 0;
  int aborted = 0;
  task.body = [&](int) {
    if (disposition(SIGHUP) != SIG_DFL) ++registered_while_executing;
    return crew_test::sleep_counting_aborts(1h, aborted);
  };
  auto t = crew::tasks::interruptible({SIGHUP}, std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  co_await yield_n(5);
  BOOST_TEST(task.cleanups == 0);
  BOOST_TEST(task.initializes == 0);
  std::raise(SIGHUP);  // a configuration reload
  co_await yield_until([&] { return task.executes == 2; });
  co_await yield_n(5);
  BOOST_TEST(task.executes == 2);
  BOOST_TEST(task.cleanups == 1);
  BOOST_TEST(task.initializes == 1);
  g.cancel();
  co_await g.wait();
  BOOST_TEST_REQUIRE(box.done());
  BOOST_TEST(!box.error);  // cancelled: a clean stop
  BOOST_TEST(task.executes == 2);
  BOOST_TEST(task.cleanups == 1);
  BOOST_TEST(task.initializes == 1);
  BOOST_TEST(aborted == 2);  // the signal's, then the cancellation's
  BOOST_TEST(registered_while_executing == 2);
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));  // released when execute ended
}

CO_TEST_CASE(a_signal_during_a_reload_is_followed_by_another_reload) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.on_cleanup = [&](int) -> net::awaitable<void> {  // takes a second of virtual time
    auto cex = co_await net::this_coro::executor;
    auto w = clk.async_wait_for(cex, 1s, net::use_awaitable);
    co_await std::move(w);
  };
  auto t = crew::tasks::interruptible({SIGHUP}, std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  std::raise(SIGHUP);
  co_await yield_until([&] { return clk.pending() == 1; });  // in the reload's cleanup
  {
    // A second set for SIGHUP hears the signal in the same delivery as the task's.
    net::signal_set probe(ex, SIGHUP);
    bool heard = false;
    probe.async_wait([&](boost::system::error_code ec, int) { heard = !ec; });
    std::raise(SIGHUP);
    co_await yield_until([&] { return heard; });
    co_await yield_n(5);
  }
  BOOST_TEST(task.cleanups == 1);
  co_await step_until(clk, [&] { return task.executes == 2; });
  co_await yield_n(5);
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST(task.executes == 2);
  BOOST_TEST(task.cleanups == 2);  // reloaded twice
  BOOST_TEST(task.initializes == 2);
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));
}

CO_TEST_CASE(interruptible_ends_with_the_failure_of_the_task) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  task.body = [](int) -> net::awaitable<void> {
    throw test_error(3);
    co_return;
  };
  auto t = crew::tasks::interruptible({SIGUSR1, SIGUSR2}, std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return box.done(); });
  co_await g.wait();
  BOOST_TEST(error_number(box.error) == 3);
  BOOST_TEST(task.cleanups == 0);
  BOOST_TEST((disposition(SIGUSR1) == SIG_DFL));
  BOOST_TEST((disposition(SIGUSR2) == SIG_DFL));
}

CO_TEST_CASE(interruptible_ends_with_a_failure_of_the_reload) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  task.on_initialize = [](int) { throw test_error(4); };
  auto t = crew::tasks::interruptible({SIGHUP}, std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  std::raise(SIGHUP);
  co_await yield_until([&] { return box.done(); });
  co_await g.wait();
  BOOST_TEST(error_number(box.error) == 4);
  BOOST_TEST(task.cleanups == 1);
  BOOST_TEST(task.initializes == 1);
  BOOST_TEST(task.executes == 1);  // not executed again after a failed reload
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));
}

CO_TEST_CASE(an_interruptible_task_that_returns_on_its_own_stopped_unexpectedly) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  task.body = [](int) -> net::awaitable<void> { co_return; };
  auto t = crew::tasks::interruptible({SIGHUP}, std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return box.done(); });
  co_await g.wait();
  BOOST_TEST((code_of(box.error) == crew::error::task_stopped_unexpectedly));
  BOOST_TEST(what_of(box.error).find("crew::tasks::interruptible") != std::string::npos);
  BOOST_TEST(task.executes == 1);
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));
}

// ---------------------------------------------------------------- force_stop

CO_TEST_CASE(force_stop_passes_the_result_of_the_task_through) {
  auto ex = co_await net::this_coro::executor;
  for (bool fail : {false, true}) {
    counting_task task;
    task.body = [fail](int) -> net::awaitable<void> {
      co_await yield_n(3);
      if (fail) throw test_error(4);
    };
    auto t = crew::tasks::force_stop(5s, std::ref(task));
    crew::task_group g{ex};
    result_box box;
    start_execute(g, t, box);
    co_await g.wait();
    BOOST_TEST_REQUIRE(box.done());
    BOOST_TEST(error_number(box.error) == (fail ? 4 : -1));
    BOOST_TEST(task.executes == 1);
  }
}

CO_TEST_CASE(cancelled_within_its_grace_force_stop_passes_the_abort_through) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;  // waits until cancelled
  crew::tasks::force_stop_options o;
  o.clock = &clk;
  auto t = crew::tasks::force_stop(5s, std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST(is_aborted(box.error));
  BOOST_TEST(clk.pending() == 0u);  // the grace wait was aborted
}

CO_TEST_CASE(cancelled_within_its_grace_force_stop_passes_a_normal_return_through) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  task.body = [&](int) -> net::awaitable<void> {
    try {
      co_await crew_test::sleep_for(1h);
    } catch (...) {
    }
    co_await net::this_coro::reset_cancellation_state();
    auto cex = co_await net::this_coro::executor;
    auto w = clk.async_wait_for(cex, 4s, net::use_awaitable);  // stops within the grace
    co_await std::move(w);
  };
  crew::tasks::force_stop_options o;
  o.clock = &clk;
  auto t = crew::tasks::force_stop(5s, std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return task.executes == 1; });
  g.cancel();
  co_await yield_until([&] { return clk.pending() == 2; });  // the grace and the task's 4 s
  clk.advance_to_next();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST(clk.pending() == 0u);
}

/// A managed task's execute that ignores cancellation, waits `takes` on `clk`, then
/// fails with test_error(5).
net::awaitable<void> stubborn(crew::manual_clock& clk, duration takes, std::atomic<bool>& ended) {
  co_await net::this_coro::reset_cancellation_state(
      [](net::cancellation_type) { return net::cancellation_type::none; });
  auto ex = co_await net::this_coro::executor;
  auto w = clk.async_wait_for(ex, takes, net::use_awaitable);
  co_await std::move(w);
  ended = true;
  throw test_error(5);
}

CO_TEST_CASE(force_stop_gives_up_after_its_grace_and_keeps_the_task_tracked) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  std::atomic<bool> ended{false};
  auto task = std::make_shared<counting_task>();
  task->body = [&](int) { return stubborn(clk, 1min, ended); };
  std::weak_ptr<counting_task> alive = task;
  crew::tasks::force_stop_options o;
  o.clock = &clk;
  auto t = crew::tasks::force_stop(5s, std::move(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box, "db");
  co_await yield_until([&] { return clk.pending() == 1; });  // the task's minute
  g.cancel();
  co_await yield_until([&] { return clk.pending() == 2; });  // and the grace
  clk.advance(5s);
  co_await g.wait();
  BOOST_TEST((code_of(box.error) == crew::error::timed_out));
  BOOST_TEST(what_of(box.error).find(
                 "task 'db' did not return within the grace of 5 s after cancellation") == 0u);
  // Given up on, not abandoned: the task is still running, and alive.
  BOOST_TEST(!ended);
  BOOST_TEST(!alive.expired());
  BOOST_TEST(clk.pending() == 1u);
  BOOST_TEST(reports.total() == 0u);
  t = crew::tasks::force_stop(5s, std::make_shared<counting_task>());  // the first is gone
  BOOST_TEST(!alive.expired());                                        // the run holds it
  clk.advance(1min);
  co_await yield_until([&] { return reports.total() == 1; });
  BOOST_TEST(ended);
  auto const r = reports.reports();
  BOOST_TEST(std::string(r[0].owner_kind) == "force stop");
  BOOST_TEST(r[0].owner_name == "db");
  BOOST_TEST(r[0].failures[0].name == "db");
  BOOST_TEST(r[0].failures[0].id != 0u);
  BOOST_TEST(error_number(r[0].failures[0].exception) == 5);
  co_await yield_until([&] { return alive.expired(); });
}

CO_TEST_CASE(a_task_given_up_on_that_ends_with_the_abort_is_not_reported) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  counting_task task;
  // Ignores the first cancellation for a minute, then ends with its abort.
  task.body = [&](int) -> net::awaitable<void> {
    co_await net::this_coro::reset_cancellation_state(
        [](net::cancellation_type) { return net::cancellation_type::none; });
    auto cex = co_await net::this_coro::executor;
    auto w = clk.async_wait_for(cex, 1min, net::use_awaitable);
    co_await std::move(w);
    throw boost::system::system_error(net::error::operation_aborted);
  };
  crew::tasks::force_stop_options o;
  o.clock = &clk;
  auto t = crew::tasks::force_stop(0s, std::ref(task), o);  // no grace at all
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return clk.pending() == 1; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST((code_of(box.error) == crew::error::timed_out));
  BOOST_TEST(what_of(box.error).find("within the grace of 0 s") != std::string::npos);
  clk.advance(1min);
  co_await yield_n(20);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(a_grace_of_duration_max_never_gives_up) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  std::atomic<bool> ended{false};
  counting_task task;
  task.body = [&](int) { return stubborn(clk, 1h, ended); };
  crew::tasks::force_stop_options o;
  o.clock = &clk;
  auto t = crew::tasks::force_stop(duration::max(), std::ref(task), o);
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  co_await yield_until([&] { return clk.pending() == 1; });
  g.cancel();
  co_await yield_n(20);
  BOOST_TEST(clk.pending() == 1u);  // no grace wait: only the task's hour
  BOOST_TEST(!box.done());
  clk.advance(1h);
  co_await g.wait();
  BOOST_TEST(ended);
  BOOST_TEST(error_number(box.error) == 5);  // its result, however late
}

CO_TEST_CASE(force_stop_outside_any_crew_task_names_itself) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  std::atomic<bool> ended{false};
  counting_task task;
  task.body = [&](int) { return stubborn(clk, 1h, ended); };
  crew::tasks::force_stop_options o;
  o.clock = &clk;
  auto t = crew::tasks::force_stop(1s, std::ref(task), o);
  net::cancellation_signal cancel;
  result_box box;
  net::co_spawn(ex, execute_into(t, box),
                net::bind_cancellation_slot(cancel.slot(), net::detached));
  co_await yield_until([&] { return clk.pending() == 1; });
  cancel.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return clk.pending() == 2; });
  clk.advance(1s);
  co_await yield_until([&] { return box.done(); });
  BOOST_TEST(what_of(box.error).find("task 'force_stop' did not return within the grace of 1 s") ==
             0u);
  clk.advance(1h);
  co_await yield_until([&] { return reports.total() == 1; });
}

// ---------------------------------------------------------------- cancelled first

/// Awaits `t.execute()` in a coroutine that was cancelled already and turned
/// `throw_if_cancelled` off, so that the co_await itself does not throw.
template <class T>
net::awaitable<void> execute_when_cancelled(T& t, result_box& box) {
  co_await net::this_coro::throw_if_cancelled(false);
  try {
    co_await crew_test::sleep_for(1h);  // cancelled here
  } catch (...) {
  }
  co_await execute_into(t, box);
}

CO_TEST_CASE(a_provided_task_cancelled_before_it_began_runs_nothing) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  auto a = crew::tasks::repeatable(std::ref(task));
  auto b = crew::tasks::repeat_timer(1s, std::ref(task));
  auto c = crew::tasks::interruptible({SIGHUP}, std::ref(task));
  auto d = crew::tasks::force_stop(1s, std::ref(task));
  result_box ra, rb, rc, rd;
  crew::task_group g{ex};
  g.spawn(execute_when_cancelled(a, ra));
  g.spawn(execute_when_cancelled(b, rb));
  g.spawn(execute_when_cancelled(c, rc));
  g.spawn(execute_when_cancelled(d, rd));
  co_await yield_n(5);
  g.cancel();
  co_await g.wait();
  BOOST_TEST(task.executes == 0);
  BOOST_TEST(!ra.error);  // a clean stop, as when cancelled later
  BOOST_TEST(!rb.error);
  BOOST_TEST(!rc.error);
  BOOST_TEST(is_aborted(rd.error));  // force_stop: the abort the cancellation caused
}

// ---------------------------------------------------------------- hostile input

BOOST_AUTO_TEST_CASE(bad_arguments_are_refused_with_the_function_and_the_value_named) {
  counting_task task;
  BOOST_TEST(invalid_argument_of([&] { crew::tasks::repeat_timer(0s, std::ref(task)); }) ==
             "crew::tasks::repeat_timer: period is not positive (0 s)");
  BOOST_TEST(invalid_argument_of([&] { crew::tasks::repeat_timer(-1ns, std::ref(task)); }) ==
             "crew::tasks::repeat_timer: period is not positive (-1 ns)");
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::repeat_timer(duration::min(), std::ref(task), {});
             }) == "crew::tasks::repeat_timer: period is not positive (duration::min())");
  BOOST_TEST(invalid_argument_of([&] { crew::tasks::force_stop(-1ms, std::ref(task)); }) ==
             "crew::tasks::force_stop: grace is negative (-1 ms)");
  BOOST_TEST(invalid_argument_of([&] { crew::tasks::interruptible({}, std::ref(task)); }) ==
             "crew::tasks::interruptible: signos is empty");
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::interruptible(std::vector<int>{SIGHUP, 0}, std::ref(task));
             }) == "crew::tasks::interruptible: 0 is not a signal number");
  BOOST_TEST(invalid_argument_of([&] { crew::tasks::interruptible({99999}, std::ref(task)); }) ==
             "crew::tasks::interruptible: 99999 is not a signal number");
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::interruptible({SIGKILL}, std::ref(task));
             }).find("cannot be caught") != std::string::npos);
  // A null pointer, named by the function that got it.
  std::shared_ptr<counting_task> null;
  std::unique_ptr<counting_task> null_unique;
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::repeatable(null);
             }).find("crew::tasks::repeatable") != std::string::npos);
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::repeat_timer(1s, null);
             }).find("crew::tasks::repeat_timer") != std::string::npos);
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::interruptible({SIGHUP}, null);
             }).find("crew::tasks::interruptible") != std::string::npos);
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::force_stop(1s, std::move(null_unique));
             }).find("crew::tasks::force_stop") != std::string::npos);
  BOOST_TEST(invalid_argument_of([&] {
               crew::tasks::repeatable_task(nullptr, crew::tasks::repeatable_options{});
             }) == "crew::tasks::repeatable_task: task is null");
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));  // nothing registered by a refusal
}

BOOST_AUTO_TEST_CASE(a_moved_from_provided_task_refuses_to_run) {
  counting_task task;
  auto a = crew::tasks::repeatable(std::ref(task));
  auto b = std::move(a);
  BOOST_TEST(invalid_argument_of([&] { (void)a.execute(); }) ==  // NOLINT(bugprone-use-after-move)
             "crew::tasks::repeatable_task::execute: the task was moved from");
  auto c = crew::tasks::force_stop(1s, std::ref(task));
  auto d = std::move(c);
  BOOST_TEST(invalid_argument_of([&] { (void)c.initialize(); })  // NOLINT(bugprone-use-after-move)
                 .find("moved from") != std::string::npos);
  b = crew::tasks::repeatable(std::ref(task));  // move-assignable
}

// ---------------------------------------------------------------- in a task manager

/// The managed tasks of a task manager, on the heap: a coroutine frame holding them all
/// is large enough for g++ 12 at -O1 to warn falsely (-Wmismatched-new-delete) about
/// Asio's frame allocator.
struct managed_four {
  crew::manual_clock clk;
  counting_task poller, ticker, config, db;  // config and db wait until cancelled
  std::vector<duration> ticks;

  void add_to(crew::task_manager& tm) {
    poller.body = [](int n) -> net::awaitable<void> {
      co_await yield_once();
      if (n % 2) throw test_error(n);  // reported, and never stops it
    };
    ticker.body = [this, t0 = clk.now()](int) -> net::awaitable<void> {
      ticks.push_back(clk.now() - t0);
      co_return;
    };
    crew::tasks::repeatable_options ro;
    ro.clock = &clk;
    ro.backoff = crew::backoff::none();
    crew::tasks::repeat_timer_options to;
    to.clock = &clk;
    tm.add("poller", crew::tasks::repeatable(std::ref(poller), ro), crew::task_kind::strict);
    tm.add("ticker", crew::tasks::repeat_timer(1s, std::ref(ticker), to), crew::task_kind::strict);
    tm.add("config", crew::tasks::interruptible({SIGHUP}, std::ref(config)),
           crew::task_kind::strict);
    tm.add("db", crew::tasks::force_stop(5s, std::ref(db)), crew::task_kind::strict);
  }

  bool busy() const {
    return poller.executes >= 6 && ticker.executes >= 3 && config.executes == 1 && db.executes == 1;
  }
};

CO_TEST_CASE(the_provided_tasks_run_as_a_task_manager_runs_them) {
  captured_reports reports;
  auto ex = co_await net::this_coro::executor;
  auto m = std::make_unique<managed_four>();
  crew::task_manager tm{ex};
  m->add_to(tm);
  auto fut = tm.async_run(net::use_future);
  co_await step_until(m->clk, [&] { return m->busy(); });
  tm.stop();
  co_await yield_until([&] { return crew_test::ready(fut); });
  BOOST_TEST(!crew_test::outcome(fut));  // each provided task stops cleanly
  for (counting_task* t : {&m->poller, &m->ticker, &m->config, &m->db}) {
    BOOST_TEST(t->initializes == 1);
    BOOST_TEST(t->cleanups == 1);
  }
  BOOST_TEST((std::vector<duration>(m->ticks.begin(), m->ticks.begin() + 3) ==
              std::vector<duration>{0s, 1s, 2s}));
  auto const r = reports.reports();
  BOOST_TEST_REQUIRE(r.size() >= 3u);
  BOOST_TEST(r[0].owner_name == "poller");  // each run is named after its managed task
  BOOST_TEST(r[0].failures[0].name == "poller");
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));
}

// ---------------------------------------------------------------- two threads

// ---------------------------------------------------------------- the io_context dies first

BOOST_AUTO_TEST_CASE(provided_tasks_in_a_running_manager_die_with_their_io_context) {
  // Each mid-wait on the steady clock or a signal: a repeatable in its backoff, a
  // repeat_timer between ticks, an interruptible executing. LeakSanitizer checks that
  // everything went with the context, and the signal's disposition is back.
  auto failing = std::make_shared<counting_task>();
  failing->body = [](int) -> net::awaitable<void> {
    throw test_error(1);
    co_return;
  };
  auto ticking = std::make_shared<counting_task>();
  ticking->body = [](int) -> net::awaitable<void> { co_return; };
  auto parked = std::make_shared<counting_task>();
  auto ctx = std::make_unique<net::io_context>();
  bool reached = false;
  net::co_spawn(
      *ctx,
      [&]() -> net::awaitable<void> {
        crew::task_manager tm{co_await net::this_coro::executor};
        crew::tasks::repeatable_options quiet;
        quiet.on_failure = [](std::exception_ptr) {};
        tm.add("repeatable", crew::tasks::repeatable(failing, quiet), crew::task_kind::error);
        tm.add("timer", crew::tasks::repeat_timer(1h, ticking), crew::task_kind::error);
        tm.add("reloadable", crew::tasks::interruptible({SIGUSR2}, parked), crew::task_kind::error);
        reached = true;
        auto run = tm.run();
        co_await std::move(run);
      },
      net::detached);
  ctx->run_for(50ms);
  BOOST_TEST(reached);
  BOOST_TEST(failing->executes.load() >= 1);
  BOOST_TEST(ticking->executes.load() == 1);
  BOOST_TEST(parked->executes.load() == 1);
  BOOST_TEST((disposition(SIGUSR2) != SIG_DFL));
  ctx.reset();
  BOOST_TEST((disposition(SIGUSR2) == SIG_DFL));
  BOOST_TEST(failing.use_count() == 1);  // nothing of the run holds them any more
  BOOST_TEST(ticking.use_count() == 1);
  BOOST_TEST(parked.use_count() == 1);
}

BOOST_AUTO_TEST_CASE(a_force_stop_in_its_grace_dies_with_its_io_context) {
  auto stubborn_task = std::make_shared<counting_task>();
  stubborn_task->body = [](int) -> net::awaitable<void> {
    co_await net::this_coro::reset_cancellation_state(
        [](net::cancellation_type) { return net::cancellation_type::none; });
    co_await crew_test::sleep_for(1h);
  };
  auto ctx = std::make_unique<net::io_context>();
  auto t =
      std::make_unique<crew::tasks::force_stop_task>(crew::tasks::force_stop(1h, stubborn_task));
  auto g = std::make_unique<crew::task_group>(*ctx);
  g->spawn([&t] { return t->execute(); });
  ctx->run_for(20ms);
  BOOST_TEST(stubborn_task->executes.load() == 1);
  g->cancel();  // the grace of an hour begins
  ctx->run_for(20ms);
  BOOST_TEST(g->size() == 1u);
  ctx.reset();
  g.reset();
  t.reset();
  BOOST_TEST(stubborn_task.use_count() == 1);
}

CO_TEST_CASE_MT(repeatable_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  for (int round = 0; round < 10; ++round) {
    counting_task task;
    std::atomic<int> failures{0};
    task.body = [](int n) -> net::awaitable<void> {
      co_await yield_n(n % 3);
      if (n % 2) throw test_error(n);
    };
    crew::tasks::repeatable_options o;
    o.backoff = crew::backoff::none();
    o.on_failure = [&](std::exception_ptr) { ++failures; };
    auto t = crew::tasks::repeatable(std::ref(task), o);
    crew::task_group g{ex};
    result_box box;
    start_execute(g, t, box);
    co_await yield_until([&] { return task.executes.load() >= 40; });
    g.cancel();
    co_await g.wait();
    BOOST_TEST(!box.error);
    BOOST_TEST(failures.load() >= 19);
  }
}

CO_TEST_CASE_MT(repeat_timer_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  for (int round = 0; round < 5; ++round) {
    crew::manual_clock clk;
    auto const t0 = clk.now();
    counting_task task;
    std::atomic<int> off_tick{0};
    std::atomic<int> running{0};
    std::atomic<int> overlaps{0};
    task.body = [&](int n) -> net::awaitable<void> {
      if ((clk.now() - t0) % 1s != 0s) ++off_tick;
      if (++running > 1) ++overlaps;
      co_await yield_n(n % 3);
      --running;
      if (n % 2) throw test_error(n);
    };
    crew::tasks::repeat_timer_options o;
    o.clock = &clk;
    o.on_failure = [](std::exception_ptr) {};
    auto t = crew::tasks::repeat_timer(1s, std::ref(task), o);
    crew::task_group g{ex};
    result_box box;
    start_execute(g, t, box);
    co_await step_until(clk, [&] { return task.executes.load() >= 20; });
    g.cancel();
    co_await g.wait();
    BOOST_TEST(!box.error);
    BOOST_TEST(off_tick.load() == 0);
    BOOST_TEST(overlaps.load() == 0);
  }
}

CO_TEST_CASE_MT(interruptible_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  counting_task task;
  auto t = crew::tasks::interruptible({SIGHUP}, std::ref(task));
  crew::task_group g{ex};
  result_box box;
  start_execute(g, t, box);
  for (int i = 1; i <= 10; ++i) {
    co_await yield_until([&] { return task.executes.load() == i; });
    std::raise(SIGHUP);
  }
  co_await yield_until([&] { return task.executes.load() == 11; });
  g.cancel();
  co_await g.wait();
  BOOST_TEST(!box.error);
  BOOST_TEST(task.executes.load() == 11);
  BOOST_TEST(task.cleanups.load() == 10);
  BOOST_TEST(task.initializes.load() == 10);
  BOOST_TEST((disposition(SIGHUP) == SIG_DFL));
}

CO_TEST_CASE_MT(force_stop_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  crew::manual_clock clk;
  std::atomic<bool> ended{false};
  for (int round = 0; round < 10; ++round) {
    counting_task task;
    bool const forced = round % 2 == 1;
    if (forced) task.body = [&](int) { return stubborn(clk, 1min, ended); };
    crew::tasks::force_stop_options o;
    o.clock = &clk;
    auto t = crew::tasks::force_stop(1s, std::ref(task), o);
    crew::task_group g{ex};
    result_box box;
    start_execute(g, t, box);
    co_await yield_until([&] { return task.executes.load() == 1; });
    co_await yield_n(round % 4);
    g.cancel();
    if (forced) {
      co_await yield_until([&] { return clk.pending() == 2; });
      clk.advance(1s);
    }
    co_await g.wait();
    if (forced) {
      BOOST_TEST((code_of(box.error) == crew::error::timed_out));
      clk.advance(1min);  // the task given up on ends, and is reported
      co_await yield_until(
          [&] { return reports.total() == static_cast<std::size_t>(round / 2 + 1); });
    } else {
      BOOST_TEST(is_aborted(box.error));
    }
  }
}
