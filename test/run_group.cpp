//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE crew_run_group
#include <crew/run_group.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <csignal>
#include <future>
#include <string>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::error_number;
using crew_test::is_aborted;
using crew_test::outcome;
using crew_test::ready;
using crew_test::test_error;

namespace {

/// An actor body that waits until it is cancelled.
net::awaitable<void> park() {
  co_await crew_test::sleep_for(1h);
}

std::exception_ptr error(int n) {
  return std::make_exception_ptr(test_error(n));
}

}  // namespace

// ---------------------------------------------------------------- oklog/run's checks

CO_TEST_CASE(an_empty_group_completes_at_once) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  // oklog/run: Run on an empty group returns within 100 ms.
  using namespace net::experimental::awaitable_operators;
  auto run = rg.async_run(net::as_tuple(net::use_awaitable));
  auto r = co_await (std::move(run) || crew_test::sleep_for(100ms));
  BOOST_TEST_REQUIRE(r.index() == 0u);
  BOOST_TEST(!std::get<0>(std::get<0>(r)));
}

BOOST_AUTO_TEST_CASE(an_empty_group_completes_through_the_executor_without_a_timer) {
  net::io_context ctx;
  crew::run_group rg{ctx};
  bool done = false;
  rg.async_run([&](std::exception_ptr e) {
    BOOST_TEST(!e);
    done = true;
  });
  BOOST_TEST(!done);  // never inside the call
  BOOST_TEST(ctx.poll() == 1u);
  BOOST_TEST(done);
  BOOST_TEST(ctx.stopped());  // nothing left behind
}

CO_TEST_CASE(a_single_erroring_actor_is_the_result) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  rg.add(crew::execute([]() -> net::awaitable<void> { throw test_error(1); }));
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(error_number(e) == 1);
}

CO_TEST_CASE(the_first_error_wins_and_unblocks_the_other_actor) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  bool unblocked = false;
  rg.add(crew::execute([]() -> net::awaitable<void> {
    co_await crew_test::yield_once();
    throw test_error(1);
  }));
  int later = 0;
  rg.add(crew::execute([&]() -> net::awaitable<void> {
           try {
             co_await park();
           } catch (boost::system::system_error const&) {
             unblocked = true;
             throw test_error(2);  // a later error never replaces the cause...
           }
         }),
         crew::on_failure([&](std::exception_ptr e) { later = error_number(e); }));
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(error_number(e) == 1);
  BOOST_TEST(unblocked);
  BOOST_TEST(later == 2);  // ...and is not lost either
}

CO_TEST_CASE(every_interrupt_receives_the_same_cause_in_reverse_order_of_add) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  std::vector<int> order;
  std::vector<std::exception_ptr> causes;
  for (int i = 1; i <= 3; ++i) {
    rg.add(crew::execute(park), crew::interrupt([&, i](std::exception_ptr cause) {
             order.push_back(i);
             causes.push_back(cause);
           }));
  }
  rg.add(crew::execute([]() -> net::awaitable<void> {
           co_await crew_test::yield_n(3);
           throw test_error(7);
         }),
         crew::interrupt([&](std::exception_ptr cause) {
           order.push_back(4);
           causes.push_back(cause);
         }));
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(error_number(e) == 7);
  BOOST_TEST(order == std::vector<int>({4, 3, 2, 1}));
  BOOST_TEST_REQUIRE(causes.size() == 4u);
  for (auto const& c : causes) BOOST_TEST((c == e));  // the very same exception
}

CO_TEST_CASE(an_actor_returning_normally_interrupts_with_a_null_cause) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  std::exception_ptr seen = error(0);
  rg.add(crew::execute(park), crew::interrupt([&](std::exception_ptr c) { seen = c; }));
  rg.add(crew::execute([]() -> net::awaitable<void> { co_return; }));
  co_await rg.run();  // a null cause: run() does not throw
  BOOST_TEST(!seen);
}

CO_TEST_CASE(a_cancelled_run_ends_the_signal_actor) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  rg.add(crew::signals({SIGUSR1}));
  net::cancellation_signal cancel;
  auto fut = rg.async_run(net::bind_cancellation_slot(cancel.slot(), net::use_future));
  co_await crew_test::yield_n(3);
  cancel.emit(net::cancellation_type::terminal);
  co_await crew_test::yield_until([&] { return ready(fut); });
  BOOST_TEST(is_aborted(outcome(fut)));
}

CO_TEST_CASE(signal_received_is_testable_by_catch_and_by_code) {
  crew::signal_received const s(SIGTERM);
  BOOST_TEST(s.signo() == SIGTERM);
  BOOST_TEST((s.code() == crew::error::signal_received));
  auto e = std::make_exception_ptr(s);
  try {
    std::rethrow_exception(e);
  } catch (crew::signal_received const& r) {
    BOOST_TEST(r.signo() == SIGTERM);
  }
  co_return;
}

// ---------------------------------------------------------------- real signals

CO_TEST_CASE(raising_sigterm_ends_the_run_with_signal_received) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  bool server_interrupted = false;
  rg.add(crew::execute(park), crew::name("server"),
         crew::interrupt([&](std::exception_ptr) { server_interrupted = true; }));
  rg.add(crew::signals(crew::default_signals()));
  auto fut = rg.async_run(net::use_future);
  co_await crew_test::yield_until([] {  // until the signal actor has registered
    struct sigaction sa {};
    ::sigaction(SIGTERM, nullptr, &sa);
    return sa.sa_handler != SIG_DFL;
  });
  std::raise(SIGTERM);
  co_await crew_test::yield_until([&] { return ready(fut); });
  try {
    fut.get();
    BOOST_FAIL("the run must end with the signal");
  } catch (crew::signal_received const& s) {
    BOOST_TEST(s.signo() == SIGTERM);
  }
  BOOST_TEST(server_interrupted);
}

CO_TEST_CASE(the_signal_registration_is_released_when_the_actor_ends) {
  auto disposition = [] {
    struct sigaction sa {};
    ::sigaction(SIGUSR2, nullptr, &sa);
    return sa.sa_handler;
  };
  BOOST_TEST_REQUIRE((disposition() == SIG_DFL));
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  bool registered = false;
  rg.add(crew::signals({SIGUSR2}));
  rg.add(crew::execute([&]() -> net::awaitable<void> {
    co_await crew_test::yield_n(5);
    registered = disposition() != SIG_DFL;
  }));
  co_await rg.run();
  BOOST_TEST(registered);
  BOOST_TEST((disposition() == SIG_DFL));
}

BOOST_AUTO_TEST_CASE(the_signal_actor_registers_when_the_run_starts) {
  auto disposition = [] {
    struct sigaction sa {};
    ::sigaction(SIGUSR1, nullptr, &sa);
    return sa.sa_handler;
  };
  net::io_context ctx;
  crew::run_group rg{ctx};
  rg.add(crew::signals({SIGUSR1}));
  BOOST_TEST((disposition() == SIG_DFL));
  std::exception_ptr result;
  rg.async_run([&](std::exception_ptr e) { result = e; });
  // Registered inside async_run, before any handler ran: a signal sent by whoever
  // learns that the daemon is up is never fatal.
  BOOST_TEST((disposition() != SIG_DFL));
  std::raise(SIGUSR1);
  ctx.run();
  try {
    std::rethrow_exception(result);
  } catch (crew::signal_received const& s) {
    BOOST_TEST(s.signo() == SIGUSR1);
  }
  BOOST_TEST((disposition() == SIG_DFL));
}

BOOST_AUTO_TEST_CASE(an_actor_whose_factory_throws_returns_at_once_with_it) {
  net::io_context ctx;
  crew::run_group rg{ctx};
  bool other_interrupted = false;
  rg.add(crew::execute(park),
         crew::interrupt([&](std::exception_ptr) { other_interrupted = true; }));
  crew::actor a;
  a.name = "factory";
  a.execute = []() -> net::awaitable<void> {
    throw test_error(13);  // no co_await: not a coroutine, execute() itself throws
  };
  rg.add(std::move(a));
  std::exception_ptr result;
  rg.async_run([&](std::exception_ptr e) { result = e; });
  ctx.run();
  BOOST_TEST(error_number(result) == 13);
  BOOST_TEST(other_interrupted);
}

BOOST_AUTO_TEST_CASE(signals_rejects_bad_numbers) {
  BOOST_CHECK_THROW(crew::signals(std::vector<int>{}), std::invalid_argument);
  BOOST_CHECK_EXCEPTION(crew::signals({0}), std::invalid_argument, [](auto const& e) {
    return std::string(e.what()).find("0") != std::string::npos;
  });
  BOOST_CHECK_THROW(crew::signals({SIGKILL}), std::invalid_argument);
  BOOST_CHECK_THROW(crew::signals({NSIG}), std::invalid_argument);
  BOOST_TEST(crew::default_signals() == std::vector<int>({SIGINT, SIGTERM}));
}

// ---------------------------------------------------------------- misbehaving actors

CO_TEST_CASE(an_interrupt_that_throws_never_stops_the_others) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  std::vector<int> order;
  rg.add(crew::execute(park), crew::name("first"),
         crew::interrupt([&](std::exception_ptr) { order.push_back(1); }));
  rg.add(crew::execute(park), crew::name("thrower"), crew::interrupt([&](std::exception_ptr) {
           order.push_back(2);
           throw test_error(99);
         }));
  rg.add(crew::execute([]() -> net::awaitable<void> { throw test_error(3); }), crew::name("last"),
         crew::interrupt([&](std::exception_ptr) { order.push_back(3); }));
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(order == std::vector<int>({3, 2, 1}));
  try {
    std::rethrow_exception(e);
  } catch (crew::task_errors const& errors) {
    BOOST_TEST_REQUIRE(errors.size() == 2u);
    BOOST_TEST(errors.first().name == "last");  // the cause comes first
    BOOST_TEST(error_number(errors.first().exception) == 3);
    BOOST_TEST(errors.failures()[1].name == "thrower");
    BOOST_TEST((errors.failures()[1].stage == crew::task_stage::handler));
    BOOST_TEST(error_number(errors.failures()[1].exception) == 99);
  }
}

// Ignores the first cancellation: catches it, and waits again with a fresh state.
net::awaitable<void> stubborn(int& cancellations) {
  try {
    co_await park();
  } catch (boost::system::system_error const&) {
    ++cancellations;
  }
  co_await net::this_coro::reset_cancellation_state();
  try {
    co_await park();
  } catch (boost::system::system_error const&) {
    ++cancellations;
    throw;
  }
}

CO_TEST_CASE(an_actor_that_ignores_cancellation_is_named_when_the_grace_runs_out) {
  auto ex = co_await net::this_coro::executor;
  //[run_group_virtual_time
  crew::manual_clock clk;  // stands still until the test advances it
  crew::run_group_options options;
  options.shutdown_grace = 10s;
  options.clock = &clk;
  crew::run_group rg{ex, options};
  //]
  int cancellations = 0;
  std::vector<std::string> reported;
  rg.add(crew::execute([&] { return stubborn(cancellations); }), crew::name("stubborn"),
         crew::on_failure([&](std::exception_ptr e) {
           try {
             std::rethrow_exception(e);
           } catch (boost::system::system_error const& se) {
             reported.push_back(se.what());
           }
         }));
  rg.add(crew::execute([]() -> net::awaitable<void> {
           co_await crew_test::yield_once();
           throw test_error(5);
         }),
         crew::name("failing"));
  auto fut = rg.async_run(net::use_future);
  co_await crew_test::yield_until([&] { return clk.pending() == 1; });
  co_await crew_test::yield_n(5);
  BOOST_TEST(cancellations == 1);  // interrupted once, and still running
  auto const t0 = clk.now();
  clk.advance(9s);
  co_await crew_test::yield_n(5);
  BOOST_TEST(cancellations == 1);
  BOOST_TEST(!ready(fut));
  clk.advance(1s);  // the grace runs out: cancelled again (terminal), and named
  co_await crew_test::yield_until([&] { return ready(fut); });
  BOOST_TEST(cancellations == 2);
  BOOST_TEST((clk.now() == t0 + 10s));
  try {
    fut.get();
    BOOST_FAIL("the run must report the late actor");
  } catch (crew::task_errors const& errors) {
    BOOST_TEST_REQUIRE(errors.size() == 2u);
    BOOST_TEST(errors.first().name == "failing");
    BOOST_TEST(error_number(errors.first().exception) == 5);
    auto const& late = errors.failures()[1];
    BOOST_TEST(late.name == "stubborn");
    auto const* se = late.as<boost::system::system_error>();
    BOOST_TEST_REQUIRE(se);
    BOOST_TEST((se->code() == crew::error::timed_out));
    BOOST_TEST(std::string(se->what()).find("'stubborn'") != std::string::npos);
    BOOST_TEST(std::string(errors.what()).find("stubborn") != std::string::npos);
  }
  // on_failure heard about it when the grace ran out, not only at the end.
  BOOST_TEST_REQUIRE(reported.size() == 1u);
  BOOST_TEST(reported[0].find("shutdown grace of 10 s") != std::string::npos);
}

CO_TEST_CASE(actors_that_stop_in_time_leave_no_grace_timer_behind) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::run_group_options options;
  options.shutdown_grace = 10s;
  options.clock = &clk;
  crew::run_group rg{ex, options};
  rg.add(crew::execute(park));
  rg.add(crew::execute([]() -> net::awaitable<void> { co_return; }));
  co_await rg.run();
  co_await crew_test::yield_once();
  BOOST_TEST(clk.pending() == 0u);  // the grace wait was aborted when the run ended
}

// ---------------------------------------------------------------- failures

CO_TEST_CASE(on_failure_sees_every_failed_actor) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  std::vector<int> seen;
  auto record = [&](std::exception_ptr e) { seen.push_back(error_number(e)); };
  rg.add(crew::execute([]() -> net::awaitable<void> { throw test_error(1); }),
         crew::on_failure(record));
  rg.add(crew::execute([]() -> net::awaitable<void> {
           try {
             co_await park();
           } catch (...) {
           }
           throw test_error(2);  // fails while stopping: a real failure
         }),
         crew::on_failure(record));
  rg.add(crew::execute(park), crew::on_failure(record));  // cancelled: not a failure
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(error_number(e) == 1);
  BOOST_TEST(seen == std::vector<int>({1, 2}));
}

CO_TEST_CASE(an_actor_returning_an_error_code_fails_with_it) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  rg.add(crew::execute([]() -> net::awaitable<boost::system::error_code> {
    co_return net::error::connection_reset;
  }));
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  try {
    std::rethrow_exception(e);
  } catch (boost::system::system_error const& se) {
    BOOST_TEST((se.code() == net::error::connection_reset));
  }
}

// ---------------------------------------------------------------- tokens and cancellation

BOOST_AUTO_TEST_CASE(run_with_a_callback) {
  net::io_context ctx;
  crew::run_group rg{ctx};
  rg.add(crew::execute([]() -> net::awaitable<void> { throw test_error(4); }));
  std::exception_ptr result;
  bool done = false;
  rg.async_run([&](std::exception_ptr e) {
    result = e;
    done = true;
  });
  ctx.run();
  BOOST_TEST(done);
  BOOST_TEST(error_number(result) == 4);
}

BOOST_AUTO_TEST_CASE(run_with_use_future) {
  net::io_context ctx;
  crew::run_group rg{ctx};
  rg.add(crew::execute([]() -> net::awaitable<void> { co_return; }));
  auto fut = rg.async_run(net::use_future);
  ctx.run();
  fut.get();
}

CO_TEST_CASE(run_with_use_awaitable_rethrows_the_cause) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  rg.add(crew::execute([]() -> net::awaitable<void> { throw test_error(8); }));
  BOOST_CHECK_THROW(co_await rg.run(), test_error);
}

CO_TEST_CASE(cancelling_the_run_interrupts_everything_with_operation_aborted) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  std::vector<std::exception_ptr> causes;
  int aborted = 0;
  for (int i = 0; i < 2; ++i)
    rg.add(crew::execute([&] { return crew_test::sleep_counting_aborts(1h, aborted); }),
           crew::interrupt([&](std::exception_ptr c) { causes.push_back(c); }));
  net::cancellation_signal cancel;
  std::exception_ptr result;
  bool done = false;
  rg.async_run(net::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
    result = e;
    done = true;
  }));
  co_await crew_test::yield_n(3);
  cancel.emit(net::cancellation_type::terminal);
  co_await crew_test::yield_until([&] { return done; });
  BOOST_TEST(is_aborted(result));
  BOOST_TEST(aborted == 2);
  BOOST_TEST_REQUIRE(causes.size() == 2u);
  BOOST_TEST(is_aborted(causes[0]));
}

CO_TEST_CASE(run_groups_nest) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group inner{ex};
  bool inner_interrupted = false;
  inner.add(crew::execute(park),
            crew::interrupt([&](std::exception_ptr) { inner_interrupted = true; }));
  //[run_group_nest
  crew::run_group outer{ex};
  outer.add(crew::execute([&] { return inner.run(); }), crew::name("inner"));
  //]
  outer.add(crew::execute([]() -> net::awaitable<void> {
    co_await crew_test::yield_n(3);
    throw test_error(6);
  }));
  auto [e] = co_await outer.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(error_number(e) == 6);
  BOOST_TEST(inner_interrupted);  // the outer interrupt cancelled the inner run
}

CO_TEST_CASE(interrupt_stops_a_run_and_is_remembered_before_one) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  rg.add(crew::execute(park));
  rg.interrupt();  // no run yet: the next run stops as soon as it started
  co_await rg.run();
  auto fut = rg.async_run(net::use_future);
  co_await crew_test::yield_n(3);
  BOOST_TEST(!ready(fut));
  rg.interrupt();
  co_await crew_test::yield_until([&] { return ready(fut); });
  fut.get();
}

CO_TEST_CASE(adding_or_running_twice_while_running_is_refused) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  rg.add(crew::execute([]() -> net::awaitable<void> { co_await crew_test::yield_n(5); }));
  auto fut = rg.async_run(net::use_future);
  BOOST_CHECK_EXCEPTION(rg.add(crew::execute(park)), boost::system::system_error,
                        [](auto const& e) { return e.code() == crew::error::already_running; });
  auto [second] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  try {
    std::rethrow_exception(second);
  } catch (boost::system::system_error const& se) {
    BOOST_TEST((se.code() == crew::error::already_running));
  }
  co_await crew_test::yield_until([&] { return ready(fut); });
  fut.get();
  co_await rg.run();  // runs again once the first run is over
  BOOST_TEST(rg.size() == 1u);
}

CO_TEST_CASE(destroying_a_running_group_interrupts_it_with_shut_down) {
  auto ex = co_await net::this_coro::executor;
  std::exception_ptr cause;
  std::future<void> fut;
  {
    crew::run_group rg{ex};
    rg.add(crew::execute(park), crew::interrupt([&](std::exception_ptr c) { cause = c; }));
    fut = rg.async_run(net::use_future);
    co_await crew_test::yield_n(2);
  }
  co_await crew_test::yield_until([&] { return ready(fut); });
  try {
    fut.get();
    BOOST_FAIL("the run must end with shut_down");
  } catch (boost::system::system_error const& se) {
    BOOST_TEST((se.code() == crew::error::shut_down));
  }
  BOOST_TEST(static_cast<bool>(cause));
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_with_a_clear_error) {
  net::io_context ctx;
  crew::run_group_options options;
  options.shutdown_grace = -1s;
  BOOST_CHECK_EXCEPTION((crew::run_group{ctx.get_executor(), options}), std::invalid_argument,
                        [](auto const& e) {
                          return std::string(e.what()).find("shutdown_grace") != std::string::npos;
                        });
  crew::run_group rg{ctx};
  BOOST_CHECK_THROW(rg.add(crew::actor{}), std::invalid_argument);
}

// ---------------------------------------------------------------- two threads

CO_TEST_CASE_MT(many_actors_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  for (int round = 0; round < 50; ++round) {
    crew::run_group rg{ex};
    std::atomic<int> interrupts{0};
    std::atomic<int> failures{0};
    for (int i = 0; i < 8; ++i)
      rg.add(crew::execute([i]() -> net::awaitable<void> {
               if (i == 5) {
                 co_await crew_test::yield_n(2);
                 throw test_error(i);
               }
               co_await park();
             }),
             crew::interrupt([&](std::exception_ptr) { ++interrupts; }),
             crew::on_failure([&](std::exception_ptr) { ++failures; }));
    auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
    BOOST_TEST(error_number(e) == 5);
    BOOST_TEST(interrupts.load() == 8);
    BOOST_TEST(failures.load() == 1);
  }
}

CO_TEST_CASE_MT(interrupting_from_another_thread_while_actors_end, 2) {
  auto ex = co_await net::this_coro::executor;
  for (int round = 0; round < 100; ++round) {
    crew::run_group rg{ex};
    for (int i = 0; i < 4; ++i)
      rg.add(crew::execute([i]() -> net::awaitable<void> { co_await crew_test::yield_n(i); }));
    std::atomic<bool> interrupted{false};
    auto op = rg.async_run(net::as_tuple(net::use_awaitable));
    net::post(ex, [&] {
      rg.interrupt();
      interrupted = true;
    });
    auto [e] = co_await std::move(op);
    BOOST_TEST(!e);
    co_await crew_test::yield_until([&] { return interrupted.load(); });
  }
}

// ---------------------------------------------------------------- huge durations

CO_TEST_CASE(a_shutdown_grace_just_below_duration_max_never_runs_out) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  crew::run_group_options options;
  options.shutdown_grace = crew::clock::duration::max() - 1ns;
  options.clock = &clk;
  crew::run_group rg{ex, options};
  int cancellations = 0;
  bool release = false;
  rg.add(crew::execute([&]() -> net::awaitable<void> {
           try {
             co_await park();
           } catch (boost::system::system_error const&) {
             ++cancellations;
           }
           co_await net::this_coro::reset_cancellation_state();
           co_await crew_test::yield_until([&] { return release; });
         }),
         crew::name("slow"));
  rg.add(crew::execute([]() -> net::awaitable<void> {
    co_await crew_test::yield_once();
    throw test_error(1);
  }));
  auto fut = rg.async_run(net::use_future);
  co_await crew_test::yield_until([&] { return cancellations == 1; });
  co_await crew_test::yield_n(1000);
  // The grace used to run out at once: now() + grace overflowed into the past.
  BOOST_TEST(!ready(fut));
  BOOST_TEST(cancellations == 1);
  BOOST_TEST(clk.pending() == 1u);
  BOOST_TEST((clk.next_deadline() == crew::clock::time_point::max()));
  clk.advance(24h * 365 * 200);
  co_await crew_test::yield_n(100);
  BOOST_TEST(!ready(fut));
  release = true;
  co_await crew_test::yield_until([&] { return ready(fut); });
  BOOST_TEST(error_number(outcome(fut)) == 1);  // the cause alone: nobody was late
  BOOST_TEST(clk.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(a_negative_shutdown_grace_is_reported_as_given) {
  net::io_context ctx;
  crew::run_group_options options;
  options.shutdown_grace = -1ns;  // used to read "(0 ms)"
  BOOST_CHECK_EXCEPTION((crew::run_group{ctx.get_executor(), options}), std::invalid_argument,
                        [](auto const& e) {
                          BOOST_TEST_INFO(e.what());
                          return std::string(e.what()) ==
                                 "crew::run_group: options.shutdown_grace is negative (-1 ns)";
                        });
}
