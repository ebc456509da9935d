//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE scheduler
#include <crew/clock.hpp>
#include <crew/detail/failure.hpp>
#include <crew/runtime.hpp>
#include <crew/scheduler.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::captured_reports;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_until;

namespace {

using sys_time = std::chrono::system_clock::time_point;

/// 2026-01-01 00:00:00 UTC, where the calendar tests start their wall clock.
sys_time const new_year_2026 = sys_time(std::chrono::seconds(1767225600));

/// Lets the posted steps of ticks and runs happen.
net::awaitable<void> settle() {
  co_await yield_n(50);
}

/// Runs that wait until the test opens the gate (one io thread).
struct gate {
  explicit gate(net::any_io_executor ex) : timer(ex, net::steady_timer::time_point::max()) {}
  net::awaitable<void> wait() {
    if (open_) co_return;
    boost::system::error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  void open() {
    open_ = true;
    timer.cancel();
  }
  net::steady_timer timer;
  bool open_ = false;
};

crew::scheduler_options virtual_time(crew::manual_clock& clk) {
  crew::scheduler_options o;
  o.clock = &clk;
  return o;
}

crew::scheduler_entry entry_of(crew::scheduler const& s, std::string const& name) {
  auto e = s.entry(name);
  BOOST_TEST_REQUIRE(e.has_value());
  return *e;
}

}  // namespace

// ---------------------------------------------------------------- every

CO_TEST_CASE(every_runs_at_fixed_intervals) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  int runs = 0;
  s.every("tick", 10s, [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  co_await settle();
  BOOST_TEST(runs == 0);  // the first run is one period away
  auto e = entry_of(s, "tick");
  BOOST_TEST(e.spec == "@every 10 s");
  BOOST_TEST((e.next_run == clk.system_now() + 10s));
  for (int i = 1; i <= 5; ++i) {
    clk.advance(10s);
    co_await settle();
    BOOST_TEST(runs == i);
  }
  e = entry_of(s, "tick");
  BOOST_TEST(e.runs == 5u);
  BOOST_TEST(e.last_outcome == crew::job_outcome::succeeded);
  BOOST_TEST((e.next_run == clk.system_now() + 10s));
  co_await s.stop();
}

CO_TEST_CASE(every_with_duration_max_never_runs) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  int runs = 0;
  s.every("never", crew::clock::duration::max(), [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  co_await settle();
  clk.advance(24h * 365 * 100);
  co_await settle();
  BOOST_TEST(runs == 0);
  BOOST_TEST(!entry_of(s, "never").next_run.has_value());
  co_await s.stop();
}

CO_TEST_CASE(a_late_clock_skips_the_missed_due_times) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  int runs = 0;
  s.every("tick", 1s, [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  co_await settle();
  clk.advance(1h);  // one wait completes, 3,599 due times passed with it
  co_await settle();
  BOOST_TEST(runs == 1);
  auto const e = entry_of(s, "tick");
  BOOST_TEST(e.skipped == 3599u);
  BOOST_TEST((e.next_run == clk.system_now() + 1s));
  co_await s.stop();
}

// ---------------------------------------------------------------- overlap

CO_TEST_CASE(skip_ten_runs_on_rapid_fire) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  gate g(ex);
  int started = 0;
  s.every("slow", 1s, [&]() -> net::awaitable<void> {
    ++started;
    co_await g.wait();
  });
  co_await settle();
  clk.advance(1s);
  co_await settle();
  BOOST_TEST(started == 1);
  for (int i = 0; i < 10; ++i) {
    clk.advance(1s);
    co_await settle();
  }
  auto e = entry_of(s, "slow");
  BOOST_TEST(started == 1);
  BOOST_TEST(e.skipped == 10u);
  BOOST_TEST(e.running == 1u);
  g.open();
  co_await settle();
  clk.advance(1s);
  co_await settle();
  BOOST_TEST(started == 2);  // the schedule goes on
  e = entry_of(s, "slow");
  BOOST_TEST(e.runs == 2u);
  BOOST_TEST(e.running == 0u);
  co_await s.stop();
}

CO_TEST_CASE(queue_runs_each_due_time_after_the_previous_run) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  gate g(ex);
  int started = 0, ended = 0, max_at_once = 0, at_once = 0;
  crew::job_options o;
  o.overlap = crew::overlap_policy::queue;
  s.every(
      "queued", 1s,
      [&]() -> net::awaitable<void> {
        ++started;
        max_at_once = std::max(max_at_once, ++at_once);
        co_await g.wait();
        --at_once;
        ++ended;
      },
      o);
  co_await settle();
  for (int i = 0; i < 4; ++i) {
    clk.advance(1s);
    co_await settle();
  }
  auto e = entry_of(s, "queued");
  BOOST_TEST(started == 1);
  BOOST_TEST(e.queued == 3u);
  BOOST_TEST(e.skipped == 0u);
  g.open();
  co_await settle();
  BOOST_TEST(ended == 4);
  BOOST_TEST(max_at_once == 1);
  e = entry_of(s, "queued");
  BOOST_TEST(e.queued == 0u);
  BOOST_TEST(e.runs == 4u);
  co_await s.stop();
}

CO_TEST_CASE(allow_runs_beside_the_previous_run) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  gate g(ex);
  int at_once = 0, max_at_once = 0;
  crew::job_options o;
  o.overlap = crew::overlap_policy::allow;
  s.every(
      "parallel", 1s,
      [&]() -> net::awaitable<void> {
        max_at_once = std::max(max_at_once, ++at_once);
        co_await g.wait();
        --at_once;
      },
      o);
  co_await settle();
  for (int i = 0; i < 4; ++i) {
    clk.advance(1s);
    co_await settle();
  }
  BOOST_TEST(max_at_once == 4);
  BOOST_TEST(entry_of(s, "parallel").running == 4u);
  g.open();
  co_await s.stop();
  BOOST_TEST(at_once == 0);
}

// ---------------------------------------------------------------- failures

CO_TEST_CASE(a_failing_job_is_recorded_handled_and_rescheduled) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto o = virtual_time(clk);
  std::vector<crew::task_failure> seen;
  o.on_failure = [&](crew::task_failure const& f) { seen.push_back(f); };
  o.name = "jobs";
  crew::scheduler s(ex, o);
  int runs = 0;
  s.every("flaky", 1min, [&]() -> net::awaitable<void> {
    ++runs;
    if (runs % 2 == 1) throw test_error(runs);
    co_return;
  });
  co_await settle();
  for (int i = 0; i < 4; ++i) {
    clk.advance(1min);
    co_await settle();
  }
  BOOST_TEST(runs == 4);
  BOOST_TEST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(seen[0].name == "flaky");
  BOOST_TEST(seen[0].as<test_error>()->n == 1);
  BOOST_TEST(!seen[0].trace.empty());  // where it threw
  BOOST_TEST(seen[1].as<test_error>()->n == 3);
  auto const e = entry_of(s, "flaky");
  BOOST_TEST(e.failures == 2u);
  BOOST_TEST(e.last_outcome == crew::job_outcome::succeeded);
  // The stop does not report them again: they were handled.
  auto op = s.async_stop(net::as_tuple(net::use_awaitable));
  auto [ec] = co_await std::move(op);
  BOOST_TEST(!ec);
  BOOST_TEST(seen.size() == 2u);
}

CO_TEST_CASE(failures_without_a_handler_reach_the_failure_path) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  s.every("bad", 1s, []() -> net::awaitable<boost::system::error_code> {
    co_return make_error_code(boost::system::errc::io_error);
  });
  co_await settle();
  clk.advance(1s);
  co_await settle();
  clk.advance(1s);
  co_await settle();
  BOOST_TEST(reports.total() == 2u);
  BOOST_TEST(reports.saw("had a failed run"));
  auto const e = entry_of(s, "bad");
  BOOST_TEST(e.last_outcome == crew::job_outcome::failed);
  BOOST_TEST(e.last_error.find("Input/output error") != std::string::npos);
  s.cancel("bad");
}

// ---------------------------------------------------------------- once, cancel

CO_TEST_CASE(once_runs_once_and_leaves) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  int runs = 0;
  s.once("later", 5s, [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  co_await settle();
  BOOST_TEST(entry_of(s, "later").spec == "@once 5 s");
  clk.advance(4s);
  co_await settle();
  BOOST_TEST(runs == 0);
  clk.advance(1s);
  co_await settle();
  BOOST_TEST(runs == 1);
  BOOST_TEST(!s.entry("later").has_value());
  clk.advance(1h);
  co_await settle();
  BOOST_TEST(runs == 1);
  // The name is free again.
  s.once("later", 0s, [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  co_await settle();
  BOOST_TEST(runs == 2);
  co_await s.stop();
}

CO_TEST_CASE(cancel_removes_the_entry_and_cancels_its_runs) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  gate g(ex);
  bool aborted = false;
  int started = 0;
  s.every("slow", 1s, [&]() -> net::awaitable<void> {
    ++started;
    auto t = net::steady_timer(co_await net::this_coro::executor, 1h);
    try {
      co_await t.async_wait(net::use_awaitable);
    } catch (boost::system::system_error const& e) {
      aborted = e.code() == net::error::operation_aborted;
      throw;
    }
  });
  co_await settle();
  clk.advance(1s);
  co_await settle();
  BOOST_TEST(started == 1);
  BOOST_TEST(s.cancel("slow"));
  co_await settle();
  BOOST_TEST(aborted);
  BOOST_TEST(!s.entry("slow").has_value());
  BOOST_TEST(!s.cancel("slow"));
  BOOST_TEST(!s.cancel("unknown"));
  clk.advance(1h);
  co_await settle();
  BOOST_TEST(started == 1);
  co_await s.stop();  // a cancelled run is no failure
}

// ---------------------------------------------------------------- stop

//[scheduler_stop
/// Runs the jobs until SIGTERM, then lets the runs in flight finish, for at most 30 s.
net::awaitable<void> serve_until_sigterm(crew::scheduler& jobs) {
  auto ex = co_await net::this_coro::executor;
  net::signal_set signals(ex, SIGTERM);
  co_await signals.async_wait(net::use_awaitable);

  net::cancellation_signal give_up;
  net::steady_timer deadline(ex, std::chrono::seconds(30));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (!ec) give_up.emit(net::cancellation_type::terminal);  // cancels the runs
  });
  auto op = jobs.async_stop(net::bind_cancellation_slot(give_up.slot(), net::use_awaitable));
  co_await std::move(op);  // throws operation_aborted if the deadline cut runs short
  deadline.cancel();
}
//]

CO_TEST_CASE(docs_stop_on_sigterm) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler jobs(ex, virtual_time(clk));
  bool finished = false;
  jobs.every("work", 1s, [&]() -> net::awaitable<void> {
    co_await crew_test::sleep_for(1ms);
    finished = true;
  });
  co_await settle();
  clk.advance(1s);
  co_await settle();
  net::post(ex, [] { ::raise(SIGTERM); });
  co_await serve_until_sigterm(jobs);
  BOOST_TEST(finished);
}

CO_TEST_CASE(async_stop_waits_for_a_slow_job) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  gate g(ex);
  bool finished = false;
  s.every("slow", 1s, [&]() -> net::awaitable<void> {
    co_await g.wait();
    finished = true;
  });
  co_await settle();
  clk.advance(1s);
  co_await settle();
  bool stopped = false;
  boost::system::error_code result = net::error::would_block;
  s.async_stop([&](boost::system::error_code ec) {
    stopped = true;
    result = ec;
  });
  co_await settle();
  BOOST_TEST(!stopped);  // the run goes on
  BOOST_TEST(!finished);
  BOOST_TEST(entry_of(s, "slow").running == 1u);
  BOOST_TEST(!entry_of(s, "slow").next_run.has_value());
  g.open();
  co_await yield_until([&] { return stopped; });
  BOOST_TEST(finished);
  BOOST_TEST(!result);  // the run ended on its own
  // Stopped for good.
  BOOST_CHECK_THROW(s.every("more", 1s, []() -> net::awaitable<void> { co_return; }),
                    boost::system::system_error);
}

CO_TEST_CASE(async_stop_with_use_future_and_cancellation) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  bool aborted = false;
  s.every("slow", 1s, [&]() -> net::awaitable<void> {
    auto t = net::steady_timer(co_await net::this_coro::executor, 1h);
    boost::system::error_code ec;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    aborted = ec == net::error::operation_aborted;
  });
  co_await settle();
  clk.advance(1s);
  co_await settle();
  net::cancellation_signal sig;
  auto f = s.async_stop(net::bind_cancellation_slot(sig.slot(), net::use_future));
  co_await settle();
  BOOST_TEST(!crew_test::ready(f));
  sig.emit(net::cancellation_type::terminal);  // a bounded drain: cancel the runs
  co_await yield_until([&] { return crew_test::ready(f); });
  BOOST_TEST(aborted);
  BOOST_TEST(crew_test::is_aborted(crew_test::outcome(f)));
}

BOOST_AUTO_TEST_CASE(async_stop_from_another_thread_with_use_future) {
  net::io_context io;
  auto work = net::make_work_guard(io);
  std::thread t([&] { io.run(); });
  crew::scheduler s(io);
  std::atomic<int> runs{0};
  s.every("fast", 1ms, [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  while (runs < 3) std::this_thread::sleep_for(1ms);
  auto f = s.async_stop(net::use_future);
  BOOST_CHECK_NO_THROW(f.get());
  work.reset();
  t.join();
}

// ---------------------------------------------------------------- cron

CO_TEST_CASE(cron_spans_months_in_virtual_time) {
  auto ex = co_await net::this_coro::executor;
  //[scheduler_virtual_time
  // 2026-01-01 00:00 UTC on the wall, and no wall-clock checks: only the due times wake
  // the scheduler.
  crew::manual_clock clk(crew::clock::time_point(std::chrono::hours(1)), new_year_2026);
  crew::scheduler_options o;
  o.clock = &clk;
  o.wall_clock_check = crew::clock::duration::max();
  crew::scheduler s(ex, o);

  std::vector<std::chrono::system_clock::time_point> at;
  s.cron("monthly", "CRON_TZ=UTC 0 0 1 * *", [&]() -> net::awaitable<void> {
    at.push_back(clk.system_now());
    co_return;
  });
  co_await settle();  // the entry arms its first wait
  for (int i = 0; i < 6 && clk.advance_to_next(); ++i) co_await settle();
  //]
  BOOST_TEST_REQUIRE(at.size() == 6u);
  BOOST_TEST((at[0] == new_year_2026 + 24h * 31));                             // 2026-02-01
  BOOST_TEST((at[1] == new_year_2026 + 24h * (31 + 28)));                      // 2026-03-01
  BOOST_TEST((at[5] == new_year_2026 + 24h * (31 + 28 + 31 + 30 + 31 + 30)));  // 2026-07-01
  co_await s.stop();
}

CO_TEST_CASE(cron_checks_the_wall_clock_while_it_waits) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk(crew::clock::time_point(1h), new_year_2026);
  crew::scheduler s(ex, virtual_time(clk));  // checks every minute
  int runs = 0;
  s.cron("daily", "CRON_TZ=UTC 30 4 * * *", [&]() -> net::awaitable<void> {
    ++runs;
    co_return;
  });
  co_await settle();
  int ticks = 0;
  while (runs < 2 && clk.advance_to_next()) {
    ++ticks;
    co_await yield_n(20);
  }
  BOOST_TEST(runs == 2);
  // 04:30 on Jan 1, then on Jan 2: one wake-up a minute until each.
  BOOST_TEST(ticks == 270 + 1440);
  BOOST_TEST((clk.system_now() == new_year_2026 + 24h + 4h + 30min));
  co_await s.stop();
}

CO_TEST_CASE(a_cron_spec_that_never_matches_never_runs) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk(crew::clock::time_point(1h), new_year_2026);
  crew::scheduler s(ex, virtual_time(clk));
  s.cron("feb30", "0 0 30 2 *", []() -> net::awaitable<void> { co_return; });
  co_await settle();
  // The entry ends at once: there is no next run.
  BOOST_TEST(!s.entry("feb30").has_value());
  BOOST_TEST(clk.pending() == 0u);
  co_await s.stop();
}

CO_TEST_CASE(jitter_delays_each_run_within_its_bound) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  std::vector<crew::clock::time_point> at;
  auto const start = clk.now();
  crew::job_options o;
  o.jitter = 30s;
  s.every(
      "spread", 1min,
      [&]() -> net::awaitable<void> {
        at.push_back(clk.now());
        co_return;
      },
      o);
  co_await settle();
  while (at.size() < 20 && clk.advance_to_next()) co_await settle();
  BOOST_TEST_REQUIRE(at.size() == 20u);
  for (std::size_t k = 0; k < at.size(); ++k) {
    auto const due = start + 1min * (k + 1);
    BOOST_TEST((at[k] >= due && at[k] <= due + 30s));
  }
  co_await s.stop();
}

// ---------------------------------------------------------------- bad input

CO_TEST_CASE(bad_input_is_rejected_naming_it) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::scheduler s(ex, virtual_time(clk));
  auto job = []() -> net::awaitable<void> { co_return; };
  s.every("a", 1s, job);
  using crew_test::invalid_argument_of;
  BOOST_TEST(invalid_argument_of([&] { s.every("a", 1s, job); }).find("'a' exists") !=
             std::string::npos);
  BOOST_TEST(invalid_argument_of([&] { s.every("", 1s, job); }).find("name") != std::string::npos);
  BOOST_TEST(invalid_argument_of([&] { s.every("z", 0s, job); }).find("period") !=
             std::string::npos);
  BOOST_TEST(invalid_argument_of([&] { s.every("z", -5s, job); }).find("-5 s") !=
             std::string::npos);
  BOOST_TEST(invalid_argument_of([&] { s.once("z", -1ms, job); }).find("delay") !=
             std::string::npos);
  crew::job_options o;
  o.jitter = -1s;
  BOOST_TEST(invalid_argument_of([&] { s.every("z", 1s, job, o); }).find("jitter") !=
             std::string::npos);
  std::function<net::awaitable<void>()> empty;
  BOOST_CHECK_THROW(s.every("z", 1s, empty), std::invalid_argument);
  BOOST_CHECK_THROW(s.cron("z", "0 0 32 * *", job), crew::cron_error);
  BOOST_CHECK_THROW(s.cron("z", "", job), crew::cron_error);
  BOOST_TEST(!s.entry("z").has_value());
  crew::scheduler_options bad;
  bad.wall_clock_check = -1s;
  BOOST_TEST(invalid_argument_of([&] { crew::scheduler(ex, bad); }).find("wall_clock_check") !=
             std::string::npos);
  bad = {};
  bad.time_zone = "Nowhere/Atlantis";
  BOOST_CHECK_THROW(crew::scheduler(ex, bad), crew::cron_error);
  crew::scheduler moved(std::move(s));
  BOOST_CHECK_THROW(s.every("y", 1s, job), std::logic_error);
  BOOST_TEST(s.entries().empty());
  BOOST_TEST(moved.entries().size() == 1u);
  co_await moved.stop();
}

// ---------------------------------------------------------------- lifetime, threads

BOOST_AUTO_TEST_CASE(destroying_the_scheduler_cancels_its_runs) {
  net::io_context io;
  crew::manual_clock clk;
  bool aborted = false;
  {
    crew::scheduler s(io, virtual_time(clk));
    s.every("slow", 1s, [&]() -> net::awaitable<void> {
      auto t = net::steady_timer(co_await net::this_coro::executor, 1h);
      boost::system::error_code ec;
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
      aborted = ec == net::error::operation_aborted;
    });
    io.poll();
    clk.advance(1s);
    io.poll();
  }
  io.run();  // ends: nothing is left waiting
  BOOST_TEST(aborted);
  BOOST_TEST(clk.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(io_context_destroyed_first) {
  // On the steady clock: a manual clock's waits are not tied to an io_context, and
  // must not outlive it (see crew::manual_clock).
  auto io = std::make_unique<net::io_context>();
  crew::scheduler s(*io);
  int started = 0;
  s.every("slow", 1ms, [&]() -> net::awaitable<void> {
    ++started;
    auto t = net::steady_timer(co_await net::this_coro::executor, 1h);
    co_await t.async_wait(net::use_awaitable);
  });
  s.every("idle", 1h, []() -> net::awaitable<void> { co_return; });
  while (started == 0) io->run_one();
  io.reset();  // with a run suspended, and entries waiting on timers
  BOOST_TEST(started == 1);
  BOOST_TEST(s.entries().size() <= 2u);
}

BOOST_AUTO_TEST_CASE(many_entries_on_two_threads) {
  net::thread_pool pool(2);
  crew::scheduler s(pool.get_executor());
  std::atomic<int> runs{0};
  for (int i = 0; i < 50; ++i) {
    crew::job_options o;
    o.overlap = static_cast<crew::overlap_policy>(i % 3);
    s.every(
        "job " + std::to_string(i), 1ms,
        [&]() -> net::awaitable<void> {
          ++runs;
          co_await net::post(co_await net::this_coro::executor, net::use_awaitable);
        },
        o);
  }
  while (runs < 1000) std::this_thread::sleep_for(1ms);
  // Read, cancel and stop while runs go on.
  BOOST_TEST(s.entries().size() == 50u);
  for (int i = 0; i < 50; i += 7) BOOST_TEST(s.cancel("job " + std::to_string(i)));
  auto f = s.async_stop(net::use_future);
  BOOST_CHECK_NO_THROW(f.get());
  for (auto const& e : s.entries()) BOOST_TEST(e.running == 0u);
  pool.join();
}

CO_TEST_CASE(entries_print_one_line_each) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk(crew::clock::time_point(1h), new_year_2026);
  crew::scheduler s(ex, virtual_time(clk));
  s.cron("report", "CRON_TZ=UTC 0 6 * * *", []() -> net::awaitable<void> { co_return; });
  co_await settle();
  std::ostringstream os;
  os << entry_of(s, "report");
  BOOST_TEST(os.str() ==
             "report  CRON_TZ=UTC 0 6 * * *  next 2026-01-01 06:00:00 UTC  runs 0, failures 0, "
             "skipped 0  last none");
  co_await s.stop();
}

// ---------------------------------------------------------------- docs

namespace {

struct store {
  int backups = 0;
  int pings = 0;
  net::awaitable<void> backup() {
    ++backups;
    co_return;
  }
  net::awaitable<boost::system::error_code> ping() {
    ++pings;
    co_return boost::system::error_code{};
  }
};

//[scheduler_maintenance
/// A service's periodic work: a nightly backup in the office's time zone, a health
/// check every 30 s (a late one is skipped, never stacked), and a cache warm-up once,
/// a minute after start.
void schedule_maintenance(crew::scheduler& jobs, store& db) {
  jobs.cron("backup", "CRON_TZ=Europe/Paris 0 3 * * *", [&db] { return db.backup(); });

  crew::job_options health;
  health.overlap = crew::overlap_policy::skip;
  health.jitter = std::chrono::seconds(2);  // spread the checks of many replicas
  jobs.every(
      "health", std::chrono::seconds(30), [&db] { return db.ping(); }, health);

  jobs.once("warm-up", std::chrono::minutes(1), [&db] { return db.backup(); });
}
//]

}  // namespace

CO_TEST_CASE(docs_maintenance_runs_in_virtual_time) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk(crew::clock::time_point(1h), new_year_2026);
  auto o = virtual_time(clk);
  o.wall_clock_check = crew::clock::duration::max();
  crew::scheduler jobs(ex, o);
  store db;
  schedule_maintenance(jobs, db);
  co_await settle();
  BOOST_TEST(jobs.entries().size() == 3u);
  // Two days: two backups at 03:00 Paris time (02:00 UTC), the warm-up once, a ping
  // every 30 s.
  auto const end = clk.now() + 48h;
  while (clk.next_deadline() <= end && clk.advance_to_next()) co_await yield_n(20);
  BOOST_TEST(db.backups == 2 + 1);
  BOOST_TEST(db.pings >= 48 * 120 - 1);
  BOOST_TEST(jobs.entries().size() == 2u);  // the warm-up left
  co_await jobs.stop();
}
