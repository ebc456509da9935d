//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE crew_loop
#include <crew/loop.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <signal.h>

#include <atomic>
#include <csignal>
#include <future>
#include <string>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::is_aborted;
using crew_test::outcome;
using crew_test::ready;
using crew_test::test_error;

namespace {

crew::loop_options virtual_time(crew::manual_clock& clk) {
  crew::loop_options o;
  o.clock = &clk;
  return o;
}

}  // namespace

CO_TEST_CASE(the_loop_restarts_an_actor_each_time_it_returns) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto options = virtual_time(clk);
  options.restart_delay = 1s;
  crew::loop lp{ex, options};
  std::vector<crew::clock::duration> starts;
  auto const t0 = clk.now();
  lp.add(crew::execute([&]() -> net::awaitable<void> {
    starts.push_back(clk.now() - t0);
    co_return;
  }));
  auto fut = lp.async_run(net::use_future);
  for (int i = 0; i < 3; ++i) {
    co_await crew_test::yield_until([&] { return clk.pending() == 1; });
    clk.advance_to_next();
  }
  co_await crew_test::yield_until([&] { return starts.size() == 4; });
  lp.stop();
  co_await crew_test::yield_until([&] { return ready(fut); });
  fut.get();  // stopped: no error
  BOOST_TEST((starts == std::vector<crew::clock::duration>({0s, 1s, 2s, 3s})));
}

CO_TEST_CASE(backoff_holds_on_consecutive_failures_in_virtual_time) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto options = virtual_time(clk);
  options.backoff = crew::exponential_backoff{100ms, 2.0, 1s, 0.0};
  crew::loop lp{ex, options};
  auto const t0 = clk.now();
  std::vector<crew::clock::duration> starts;
  int failures_seen = 0;
  lp.add(crew::execute([&]() -> net::awaitable<void> {
           starts.push_back(clk.now() - t0);
           // Fails five times, succeeds once, then fails again.
           if (starts.size() != 6) throw test_error(static_cast<int>(starts.size()));
           co_return;
         }),
         crew::on_failure([&](std::exception_ptr) { ++failures_seen; }));
  auto fut = lp.async_run(net::use_future);
  while (starts.size() < 8) {
    co_await crew_test::yield_until([&] { return clk.pending() == 1 || starts.size() >= 8; });
    if (starts.size() >= 8) break;
    clk.advance_to_next();
    co_await crew_test::yield_once();
  }
  lp.stop();
  co_await crew_test::yield_until([&] { return ready(fut); });
  fut.get();
  using ms = std::chrono::milliseconds;
  std::vector<crew::clock::duration> expected = {
      ms(0),
      ms(100),          // after failure 1
      ms(100 + 200),    // 2
      ms(300 + 400),    // 3
      ms(700 + 800),    // 4
      ms(1500 + 1000),  // 5: capped at max
      ms(2500),         // the sixth start succeeded: restarted at once (yield only)
      ms(2500 + 100)};  // the backoff starts over after a success
  BOOST_TEST((starts == expected));
  BOOST_TEST(failures_seen == 7);  // on_failure saw every failed iteration
}

net::awaitable<void> poll_queue(std::atomic<int>& polls) {
  co_await crew_test::yield_once();
  ++polls;
}

CO_TEST_CASE(a_loop_as_the_docs_show_it) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> polls{0};
  std::atomic<int> logged{0};
  auto log = [&](std::exception_ptr) { ++logged; };
  //[loop_basic
  crew::loop_options options;
  options.restart_delay = 10ms;                                       // after a return
  options.backoff = crew::exponential_backoff{100ms, 2.0, 30s, 0.2};  // after failures
  crew::loop workers{ex, options};
  workers.add(crew::execute([&] { return poll_queue(polls); }), crew::name("poller"),
              crew::on_failure([&](std::exception_ptr e) { log(e); }));
  auto done = workers.async_run(net::use_future);
  // ... later, from any thread:
  workers.stop();
  //]
  co_await crew_test::yield_until([&] { return ready(done); });
  done.get();
  BOOST_TEST(logged.load() == 0);
}

CO_TEST_CASE(stop_interrupts_the_actors_and_waits_for_them) {
  auto ex = co_await net::this_coro::executor;
  crew::loop lp{ex};
  int aborted = 0;
  std::vector<std::exception_ptr> causes;
  bool stopped_cleanly = false;
  lp.add(crew::execute([&] { return crew_test::sleep_counting_aborts(1h, aborted); }),
         crew::interrupt([&](std::exception_ptr c) { causes.push_back(c); }));
  lp.add(crew::execute([&]() -> net::awaitable<void> {
           try {
             co_await crew_test::sleep_for(1h);
           } catch (...) {
             stopped_cleanly = true;  // returns normally: not restarted once stopped
           }
         }),
         crew::interrupt([&](std::exception_ptr c) { causes.push_back(c); }));
  auto fut = lp.async_run(net::use_future);
  co_await crew_test::yield_n(3);
  BOOST_TEST(!ready(fut));
  lp.stop();
  co_await crew_test::yield_until([&] { return ready(fut); });
  fut.get();
  BOOST_TEST(aborted == 1);
  BOOST_TEST(stopped_cleanly);
  BOOST_TEST_REQUIRE(causes.size() == 2u);
  BOOST_TEST(!causes[0]);  // stop() is a normal cause
}

CO_TEST_CASE(cancelling_the_run_stops_the_loop_with_operation_aborted) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto options = virtual_time(clk);
  options.restart_delay = 1h;
  crew::loop lp{ex, options};
  int starts = 0;
  lp.add(crew::execute([&]() -> net::awaitable<void> {
    ++starts;
    co_return;
  }));
  net::cancellation_signal cancel;
  std::exception_ptr result;
  bool done = false;
  lp.async_run(net::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
    result = e;
    done = true;
  }));
  co_await crew_test::yield_until([&] { return clk.pending() == 1; });  // in its restart delay
  cancel.emit(net::cancellation_type::terminal);
  co_await crew_test::yield_until([&] { return done; });
  BOOST_TEST(is_aborted(result));
  BOOST_TEST(starts == 1);
  BOOST_TEST(clk.pending() == 0u);  // the delay was aborted at once
}

CO_TEST_CASE(run_with_use_awaitable_and_a_stop_made_before_it) {
  auto ex = co_await net::this_coro::executor;
  crew::loop lp{ex};
  lp.add(crew::execute([]() -> net::awaitable<void> { co_await crew_test::sleep_for(1h); }));
  lp.stop();  // remembered: the next run stops as soon as it started
  co_await lp.run();
  BOOST_TEST(lp.size() == 1u);
}

BOOST_AUTO_TEST_CASE(run_with_a_callback_and_an_empty_loop) {
  net::io_context ctx;
  crew::loop lp{ctx};
  bool done = false;
  lp.async_run([&](std::exception_ptr e) {
    BOOST_TEST(!e);
    done = true;
  });
  ctx.run();
  BOOST_TEST(done);
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused_with_the_field_named) {
  net::io_context ctx;
  auto names = [](char const* field) {
    return [field](std::invalid_argument const& e) {
      return std::string(e.what()).find(field) != std::string::npos;
    };
  };
  crew::loop_options o;
  o.restart_delay = -1ms;
  BOOST_CHECK_EXCEPTION((crew::loop{ctx.get_executor(), o}), std::invalid_argument,
                        names("restart_delay"));
  o = {};
  o.shutdown_grace = -1ms;
  BOOST_CHECK_EXCEPTION((crew::loop{ctx.get_executor(), o}), std::invalid_argument,
                        names("shutdown_grace"));
  BOOST_CHECK_EXCEPTION(o.backoff = (crew::exponential_backoff{100ms, 0.5, 1s, 0.0}),
                        std::invalid_argument, names("multiplier"));
  BOOST_CHECK_EXCEPTION(o.backoff = (crew::exponential_backoff{100ms, 2.0, 1s, 1.5}),
                        std::invalid_argument, names("jitter"));
  BOOST_CHECK_EXCEPTION(o.backoff = (crew::exponential_backoff{-1ms, 2.0, 1s, 0.0}),
                        std::invalid_argument, names("initial"));
}

CO_TEST_CASE_MT(loops_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  for (int round = 0; round < 20; ++round) {
    crew::loop_options options;
    options.backoff = crew::backoff::none();
    crew::loop lp{ex, options};
    std::atomic<int> starts{0};
    std::atomic<int> failures{0};
    for (int i = 0; i < 4; ++i)
      lp.add(crew::execute([&, i]() -> net::awaitable<void> {
               ++starts;
               co_await crew_test::yield_n(i);
               if (i % 2) throw test_error(i);
             }),
             crew::on_failure([&](std::exception_ptr) { ++failures; }));
    auto fut = lp.async_run(net::use_future);
    co_await crew_test::yield_until([&] { return starts.load() >= 40; });
    lp.stop();
    co_await crew_test::yield_until([&] { return ready(fut); });
    BOOST_TEST(!outcome(fut));
    BOOST_TEST(failures.load() > 0);
  }
}

// ---------------------------------------------------------------- huge durations

CO_TEST_CASE(a_restart_delay_of_duration_max_starts_the_actor_once_then_waits) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto options = virtual_time(clk);
  options.restart_delay = crew::clock::duration::max();
  crew::loop lp{ex, options};
  int starts = 0;
  lp.add(crew::execute([&]() -> net::awaitable<void> {
    ++starts;
    co_return;
  }));
  auto fut = lp.async_run(net::use_future);
  co_await crew_test::yield_n(3000);
  BOOST_TEST(starts == 1);  // used to start again at once, thousands of times
  BOOST_TEST(clk.pending() == 1u);
  BOOST_TEST((clk.next_deadline() == crew::clock::time_point::max()));
  clk.advance(24h * 365 * 200);
  co_await crew_test::yield_n(100);
  BOOST_TEST(starts == 1);
  lp.stop();
  co_await crew_test::yield_until([&] { return ready(fut); });
  BOOST_TEST(!outcome(fut));
  BOOST_TEST(clk.pending() == 0u);
}

CO_TEST_CASE(a_backoff_of_duration_max_on_the_steady_clock_waits_after_a_failure) {
  auto ex = co_await net::this_coro::executor;
  crew::loop_options options;
  options.backoff = crew::backoff::constant(crew::clock::duration::max());
  crew::loop lp{ex, options};
  int starts = 0;
  int failures = 0;
  lp.add(crew::execute([&]() -> net::awaitable<void> {
           ++starts;
           throw test_error(1);
           co_return;
         }),
         crew::on_failure([&](std::exception_ptr) { ++failures; }));
  auto fut = lp.async_run(net::use_future);
  co_await crew_test::yield_n(3000);
  BOOST_TEST(starts == 1);
  BOOST_TEST(failures == 1);
  lp.stop();
  co_await crew_test::yield_until([&] { return ready(fut); });
  BOOST_TEST(!outcome(fut));
}

BOOST_AUTO_TEST_CASE(a_negative_shutdown_grace_is_reported_as_given) {
  net::io_context ctx;
  crew::loop_options o;
  o.shutdown_grace = -1ns;  // used to read "(0 ms)"
  BOOST_CHECK_EXCEPTION((crew::loop{ctx.get_executor(), o}), std::invalid_argument,
                        [](std::invalid_argument const& e) {
                          BOOST_TEST_INFO(e.what());
                          return std::string(e.what()) ==
                                 "crew::loop: options.shutdown_grace is negative (-1 ns)";
                        });
}

// ---------------------------------------------------------------- signals

BOOST_AUTO_TEST_CASE(a_signals_actor_in_a_loop_registers_when_the_run_starts) {
  auto disposition = [] {
    struct sigaction sa {};
    ::sigaction(SIGUSR1, nullptr, &sa);
    return sa.sa_handler;
  };
  net::io_context ctx;
  crew::loop lp{ctx};
  int caught = 0;
  auto signals = crew::signals({SIGUSR1});
  signals.on_failure = [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (crew::signal_received const& s) {
      if (s.signo() == SIGUSR1) ++caught;
    }
    lp.stop();
  };
  lp.add(std::move(signals));
  BOOST_TEST((disposition() == SIG_DFL));
  auto fut = lp.async_run(net::use_future);
  // Registered inside async_run, before any handler ran: the signal is never fatal.
  BOOST_TEST((disposition() != SIG_DFL));
  std::raise(SIGUSR1);
  ctx.run();
  BOOST_TEST(!outcome(fut));
  BOOST_TEST(caught == 1);
  BOOST_TEST((disposition() == SIG_DFL));  // released when the loop stopped
}
