//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE worker_pool
#include <crew/detail/failure.hpp>
#include <crew/runtime.hpp>
#include <crew/worker_pool.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::captured_reports;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_once;
using crew_test::yield_until;

namespace {

std::vector<crew::task_failure> failures_of(std::exception_ptr const& e) {
  if (!e) return {};
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE_MESSAGE(errors, "the result is not a crew::task_errors");
  return errors->failures();
}

bool is_code(std::exception_ptr const& e, boost::system::error_code code) {
  auto const* se = crew::detail::exception_cast<boost::system::system_error>(e);
  return se && se->code() == code;
}

/// A gate that tasks wait on until the test opens it (one thread).
struct gate {
  explicit gate(net::any_io_executor ex) : timer(ex, net::steady_timer::time_point::max()) {}
  void open() {
    opened = true;
    timer.cancel();
  }
  /// Waits until opened; a cancelled task leaves with operation_aborted.
  net::awaitable<void> pass() {
    while (!opened) {
      co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      auto cs = co_await net::this_coro::cancellation_state;
      if (!opened && cs.cancelled() != net::cancellation_type::none)
        throw boost::system::system_error(net::error::operation_aborted);
    }
  }
  net::steady_timer timer;
  bool opened = false;
};

/// Counts the tasks that ran, and the most that ran at once.
struct tally {
  std::atomic<int> ran{0};
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  std::atomic<int> alive{0};  // task frames made and not yet destroyed

  struct alive_ref {
    tally* t;
    explicit alive_ref(tally* x) : t(x) { t->alive.fetch_add(1); }
    alive_ref(alive_ref&& o) noexcept : t(std::exchange(o.t, nullptr)) {}
    ~alive_ref() {
      if (t) t->alive.fetch_sub(1);
    }
  };

  net::awaitable<void> job(int yields) {
    alive_ref keep(this);
    int const n = now.fetch_add(1) + 1;
    for (int p = peak.load(); n > p && !peak.compare_exchange_weak(p, n);) {
    }
    co_await yield_n(yields);
    now.fetch_sub(1);
    ran.fetch_add(1);
  }

  net::awaitable<void> job_at(gate& g) {
    alive_ref keep(this);
    now.fetch_add(1);
    co_await g.pass();
    now.fetch_sub(1);
    ran.fetch_add(1);
  }
};

net::awaitable<void> fail_with(int n) {
  co_await yield_once();
  throw test_error(n);
}

}  // namespace

// ============================================================ running

BOOST_AUTO_TEST_SUITE(running)

CO_TEST_CASE(runs_every_task_with_at_most_workers_at_once) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 3, 100};
  tally t;
  for (int i = 0; i < 50; ++i) {
    auto op = pool.async_submit(t.job(i % 4), net::use_awaitable);
    co_await std::move(op);
  }
  co_await pool.wait();
  BOOST_TEST(t.ran == 50);
  BOOST_TEST(t.peak == 3);
  auto const s = pool.stats();
  BOOST_TEST(s.submitted == 50u);
  BOOST_TEST(s.succeeded == 50u);
  BOOST_TEST(s.failed == 0u);
  BOOST_TEST(s.running == 0u);
  BOOST_TEST(s.queued == 0u);
}

CO_TEST_CASE(queued_tasks_start_in_submission_order) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 10};
  std::vector<int> order;
  auto record = [&order](int i) -> net::awaitable<void> {
    order.push_back(i);
    co_await yield_once();
  };
  for (int i = 0; i < 10; ++i) BOOST_TEST(pool.try_submit(record(i)));
  co_await pool.wait();
  BOOST_TEST(order == (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(set_workers_starts_queued_tasks_at_once) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 10};
  gate g(ex);
  tally t;
  for (int i = 0; i < 4; ++i) BOOST_TEST(pool.try_submit(t.job_at(g)));
  co_await yield_n(3);
  BOOST_TEST(t.now == 1);
  pool.set_workers(3);
  BOOST_TEST(pool.workers() == 3u);
  co_await yield_n(3);
  BOOST_TEST(t.now == 3);
  g.open();
  co_await pool.wait();
  BOOST_TEST(t.ran == 4);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ back-pressure

BOOST_AUTO_TEST_SUITE(back_pressure)

CO_TEST_CASE(a_submitter_is_suspended_while_the_queue_is_full) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 2};
  gate g(ex);
  tally t;
  // One runs, two wait in the queue: all three are accepted at once.
  for (int i = 0; i < 3; ++i) {
    auto op = pool.async_submit(t.job_at(g), net::use_awaitable);
    co_await std::move(op);
  }
  BOOST_TEST(pool.stats().queued == 2u);
  // The fourth waits for room.
  bool accepted = false;
  pool.async_submit(t.job_at(g), [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    accepted = true;
  });
  co_await yield_n(10);
  BOOST_TEST(!accepted);
  BOOST_TEST(pool.stats().waiting == 1u);
  BOOST_TEST(!pool.try_submit(t.job(0)));  // full: refused, and not waiting either
  g.open();
  co_await yield_until([&] { return accepted; });
  co_await pool.wait();
  BOOST_TEST(t.ran == 4);
  BOOST_TEST(pool.stats().submitted == 4u);
}

CO_TEST_CASE(try_submit_leaves_a_refused_task_with_the_caller) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 1};
  gate g(ex);
  tally t;
  BOOST_TEST(pool.try_submit(t.job_at(g)));  // runs
  BOOST_TEST(pool.try_submit(t.job_at(g)));  // queued
  int ran = 0;
  auto counted = [&ran]() -> net::awaitable<void> {
    ++ran;
    co_return;
  };
  auto task = counted();
  BOOST_TEST(!pool.try_submit(std::move(task)));
  g.open();
  co_await pool.wait();
  // Still the caller's, and still runnable.
  auto op = pool.async_submit(std::move(task), net::use_awaitable);
  co_await std::move(op);
  co_await pool.wait();
  BOOST_TEST(ran == 1);
}

CO_TEST_CASE(a_producer_far_faster_than_the_workers_stays_bounded_by_the_queue) {
  auto ex = co_await net::this_coro::executor;
  constexpr std::size_t workers = 2, capacity = 8;
  crew::worker_pool pool{ex, workers, capacity};
  tally t;
  int most_alive = 0;
  std::size_t most_queued = 0;
  for (int i = 0; i < 2000; ++i) {
    auto op = pool.async_submit(t.job(100), net::use_awaitable);  // 100 yields per task
    co_await std::move(op);
    most_alive = std::max(most_alive, t.alive.load());
    most_queued = std::max(most_queued, pool.stats().queued);
  }
  co_await pool.wait();
  BOOST_TEST(t.ran == 2000);
  BOOST_TEST(most_queued <= capacity);
  // Task frames alive: the running ones, the queued ones (not started: no frame of
  // theirs counts yet), and none beyond.
  BOOST_TEST(most_alive <= static_cast<int>(workers));
  BOOST_TEST(t.alive == 0);
}

CO_TEST_CASE(cancelling_a_waiting_submission_drops_its_task) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 1};
  gate g(ex);
  tally t;
  BOOST_TEST(pool.try_submit(t.job_at(g)));
  BOOST_TEST(pool.try_submit(t.job_at(g)));
  net::cancellation_signal sig;
  boost::system::error_code result;
  bool done = false;
  pool.async_submit(t.job_at(g), net::bind_cancellation_slot(sig.slot(), [&](auto ec) {
                      result = ec;
                      done = true;
                    }));
  co_await yield_n(3);
  BOOST_TEST(!done);
  sig.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return done; });
  BOOST_TEST(result == net::error::operation_aborted);
  BOOST_TEST(pool.stats().waiting == 0u);
  g.open();
  co_await pool.wait();
  BOOST_TEST(t.ran == 2);
  BOOST_TEST(t.alive == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ waiting

BOOST_AUTO_TEST_SUITE(waiting)

CO_TEST_CASE(an_empty_pool_s_wait_completes_at_once) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 4, 4};
  auto [e] = co_await pool.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
}

CO_TEST_CASE(a_wait_is_a_barrier_later_tasks_do_not_hold_it_up) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 2, 10};
  gate first(ex), later(ex);
  tally t;
  BOOST_TEST(pool.try_submit(t.job_at(first)));
  BOOST_TEST(pool.try_submit(t.job_at(first)));
  BOOST_TEST(pool.try_submit(t.job_at(first)));  // queued
  bool waited = false;
  pool.async_wait([&](std::exception_ptr e) {
    BOOST_TEST(!e);
    waited = true;
  });
  // Accepted after the wait: never finishes until the end of the test.
  BOOST_TEST(pool.try_submit(t.job_at(later)));
  BOOST_TEST(pool.try_submit(t.job_at(later)));
  co_await yield_n(5);
  BOOST_TEST(!waited);
  first.open();
  co_await yield_until([&] { return waited; });
  BOOST_TEST(t.ran == 3);
  BOOST_TEST(pool.stats().running == 2u);
  later.open();
  co_await pool.wait();
  BOOST_TEST(t.ran == 5);
}

CO_TEST_CASE(failures_name_their_submission_number_and_reach_the_handler) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::size_t> seen;
  crew::worker_pool pool{
      ex, 2, 16,
      crew::worker_pool_options{
          .on_failure = [&](crew::task_failure const& f) { seen.push_back(f.index.value_or(999)); },
          .name = "importer"}};
  for (int i = 0; i < 10; ++i) {
    if (i % 3 == 0)
      BOOST_TEST(pool.try_submit(fail_with(i), crew::spawn_options{.name = "row"}));
    else
      BOOST_TEST(pool.try_submit(yield_n(2)));
  }
  auto [e] = co_await pool.async_wait(net::as_tuple(net::use_awaitable));
  auto failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 4u);
  std::vector<std::size_t> indexes;
  for (auto const& f : failures) {
    BOOST_REQUIRE(f.index.has_value());
    BOOST_TEST(static_cast<std::size_t>(f.as<test_error>()->n) == *f.index);
    BOOST_TEST(f.name == "row");
    BOOST_TEST(crew::to_string(f).find("item " + std::to_string(*f.index)) != std::string::npos);
    indexes.push_back(*f.index);
  }
  std::sort(indexes.begin(), indexes.end());
  BOOST_TEST(indexes == (std::vector<std::size_t>{0, 3, 6, 9}), boost::test_tools::per_element());
  std::sort(seen.begin(), seen.end());
  BOOST_TEST(seen == indexes, boost::test_tools::per_element());
  BOOST_TEST(pool.stats().failed == 4u);
  BOOST_TEST(pool.stats().succeeded == 6u);
  // Handed to one wait only.
  auto [again] = co_await pool.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!again);
}

CO_TEST_CASE(a_barrier_waits_for_the_failure_handlers_of_its_tasks) {
  auto ex = co_await net::this_coro::executor;
  int handled = 0;
  crew::worker_pool pool{
      ex, 2, 4,
      crew::worker_pool_options{.on_failure = [&](crew::task_failure const&) { ++handled; }}};
  BOOST_TEST(pool.try_submit(fail_with(1)));
  BOOST_TEST(pool.try_submit(fail_with(2)));
  auto [e] = co_await pool.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(failures_of(e).size() == 2u);
  BOOST_TEST(handled == 2);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ shutdown and cancel

BOOST_AUTO_TEST_SUITE(shutdown_and_cancel)

CO_TEST_CASE(shutdown_drains_the_queue_then_refuses_work) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 2, 20};
  tally t;
  for (int i = 0; i < 20; ++i) BOOST_TEST(pool.try_submit(t.job(3)));
  co_await pool.shutdown();
  BOOST_TEST(t.ran == 20);
  auto [ec] = co_await pool.async_submit(t.job(0), net::as_tuple(net::use_awaitable));
  BOOST_TEST(ec == make_error_code(crew::error::shut_down));
  BOOST_CHECK_EXCEPTION(pool.try_submit(t.job(0)), boost::system::system_error,
                        [](auto const& e) { return e.code() == crew::error::shut_down; });
  BOOST_TEST(t.alive == 0);
}

CO_TEST_CASE(shutdown_refuses_the_submissions_waiting_for_room) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 1};
  gate g(ex);
  tally t;
  BOOST_TEST(pool.try_submit(t.job_at(g)));
  BOOST_TEST(pool.try_submit(t.job_at(g)));
  boost::system::error_code refused;
  bool done = false;
  pool.async_submit(t.job_at(g), [&](auto ec) {
    refused = ec;
    done = true;
  });
  bool shut = false;
  pool.async_shutdown([&](std::exception_ptr e) {
    BOOST_TEST(!e);
    shut = true;
  });
  co_await yield_until([&] { return done; });
  BOOST_TEST(refused == make_error_code(crew::error::shut_down));
  BOOST_TEST(!shut);
  g.open();
  co_await yield_until([&] { return shut; });
  BOOST_TEST(t.ran == 2);
}

CO_TEST_CASE(cancel_drops_the_queue_cancels_the_running_and_reports_them_cancelled) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 2, 3};
  gate g(ex);  // never opened
  tally t;
  for (int i = 0; i < 5; ++i) BOOST_TEST(pool.try_submit(t.job_at(g)));
  boost::system::error_code refused;
  pool.async_submit(t.job_at(g), [&](auto ec) { refused = ec; });
  co_await yield_n(3);
  auto const before = crew::runtime::global().stats();
  pool.cancel();
  co_await pool.wait();  // null: cancelled tasks are not failures
  auto const s = pool.stats();
  BOOST_TEST(refused == net::error::operation_aborted);
  BOOST_TEST(s.submitted == 5u);
  BOOST_TEST(s.dropped == 3u);
  BOOST_TEST(s.cancelled == 5u);  // 2 running + 3 dropped
  BOOST_TEST(s.succeeded == 0u);
  BOOST_TEST(t.ran == 0);
  BOOST_TEST(t.alive == 0);
  // The runtime saw every one of them end cancelled, the refused submission's task too.
  BOOST_TEST(crew::runtime::global().stats().cancelled - before.cancelled == 6u);
  // One-shot: later work runs.
  BOOST_TEST(pool.try_submit(t.job(1)));
  co_await pool.wait();
  BOOST_TEST(t.ran == 1);
}

CO_TEST_CASE(cancelling_a_wait_cancels_the_work) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 4};
  gate g(ex);
  tally t;
  for (int i = 0; i < 3; ++i) BOOST_TEST(pool.try_submit(t.job_at(g)));
  net::cancellation_signal sig;
  std::exception_ptr result;
  bool done = false;
  pool.async_wait(net::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
    result = e;
    done = true;
  }));
  co_await yield_n(2);
  sig.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return done; });
  BOOST_TEST(is_code(result, net::error::operation_aborted));
  BOOST_TEST(pool.stats().dropped == 2u);
  BOOST_TEST(t.alive == 0);
}

CO_TEST_CASE(cancelling_a_shutdown_stops_the_drain) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 4};
  gate g(ex);
  tally t;
  for (int i = 0; i < 4; ++i) BOOST_TEST(pool.try_submit(t.job_at(g)));
  net::cancellation_signal sig;
  std::exception_ptr result;
  bool done = false;
  pool.async_shutdown(net::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
    result = e;
    done = true;
  }));
  co_await yield_n(2);
  BOOST_TEST(!done);
  sig.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return done; });
  BOOST_TEST(is_code(result, net::error::operation_aborted));
  BOOST_TEST(pool.stats().dropped == 3u);
  BOOST_TEST(t.ran == 0);
}

CO_TEST_CASE(a_failure_during_a_cancelled_shutdown_is_still_reported) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 4};
  auto fails_when_cancelled = []() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    net::steady_timer timer(ex, 1h);
    co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    throw test_error(7);
  };
  BOOST_TEST(pool.try_submit(fails_when_cancelled()));
  net::cancellation_signal sig;
  std::exception_ptr result;
  pool.async_shutdown(
      net::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) { result = e; }));
  co_await yield_n(2);
  sig.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result != nullptr; });
  BOOST_TEST(failures_of(result).size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ every form of every op

BOOST_AUTO_TEST_SUITE(completion_tokens)

BOOST_AUTO_TEST_CASE(with_callbacks) {
  net::io_context ctx;
  crew::worker_pool pool{ctx, 1, 1};
  std::vector<std::string> events;
  pool.async_submit(yield_n(2), [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    events.push_back("submitted");
  });
  pool.async_wait([&](std::exception_ptr e) {
    BOOST_TEST(!e);
    events.push_back("waited");
  });
  ctx.run();
  ctx.restart();
  pool.async_submit(fail_with(1), [&](auto) { events.push_back("submitted"); });
  pool.async_shutdown([&](std::exception_ptr e) {
    BOOST_TEST(failures_of(e).size() == 1u);
    events.push_back("shut down");
  });
  ctx.run();
  BOOST_TEST(events == (std::vector<std::string>{"submitted", "waited", "submitted", "shut down"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(with_use_future) {
  net::io_context ctx;
  crew::worker_pool pool{ctx, 1, 1};
  auto work = net::make_work_guard(ctx);
  std::thread runner([&] { ctx.run(); });
  std::future<void> submitted = pool.async_submit(yield_n(2), net::use_future);
  submitted.get();
  std::future<void> waited = pool.async_wait(net::use_future);
  waited.get();
  std::future<void> failing = pool.async_submit(fail_with(3), net::use_future);
  failing.get();
  std::future<void> shut = pool.async_shutdown(net::use_future);
  BOOST_CHECK_THROW(shut.get(), crew::task_errors);
  std::future<void> refused = pool.async_submit(yield_n(1), net::use_future);
  BOOST_CHECK_EXCEPTION(refused.get(), boost::system::system_error,
                        [](auto const& e) { return e.code() == crew::error::shut_down; });
  work.reset();
  runner.join();
}

CO_TEST_CASE(with_use_awaitable) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 2, 2};
  auto op = pool.async_submit(fail_with(5), net::use_awaitable);
  co_await std::move(op);
  BOOST_CHECK_THROW(co_await pool.wait(), crew::task_errors);
  co_await pool.shutdown();
}

CO_TEST_CASE(use_awaitable_with_room_goes_on_without_suspending) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 1};
  gate g(ex);
  tally t;
  bool other_ran = false;
  net::post(ex, [&] { other_ran = true; });
  // A free worker, then a place in the queue: both accepted without a trip through
  // the scheduler, so the handler posted before them has not run yet.
  for (int i = 0; i < 2; ++i) {
    auto op = pool.async_submit(t.job_at(g), net::use_awaitable);
    co_await std::move(op);
  }
  BOOST_TEST(!other_ran);
  BOOST_TEST(pool.stats().queued == 1u);
  // Full: this one suspends until the queue has room.
  auto full = pool.async_submit(t.job_at(g), net::use_awaitable);
  g.open();
  co_await std::move(full);
  BOOST_TEST(other_ran);
  co_await pool.wait();
  BOOST_TEST(t.ran == 3);
}

CO_TEST_CASE(use_awaitable_from_a_cancelled_caller_is_aborted_even_with_room) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 2, 2};
  tally t;
  net::cancellation_signal signal;
  auto caller = [&]() -> net::awaitable<void> {
    co_await yield_once();  // cancelled meanwhile
    auto op = pool.async_submit(t.job(1), net::use_awaitable);
    co_await std::move(op);
  };
  auto done =
      net::co_spawn(ex, caller(), net::bind_cancellation_slot(signal.slot(), net::use_future));
  signal.emit(net::cancellation_type::terminal);
  co_await yield_n(5);
  BOOST_CHECK_EXCEPTION(done.get(), boost::system::system_error,
                        [](auto const& e) { return e.code() == net::error::operation_aborted; });
  co_await pool.wait();
  BOOST_TEST(t.ran == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ hostile input

BOOST_AUTO_TEST_SUITE(hostile)

BOOST_AUTO_TEST_CASE(zero_workers_or_zero_capacity_is_rejected_by_name) {
  net::io_context ctx;
  auto message_of = [&](auto make) {
    try {
      make();
    } catch (std::invalid_argument const& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  BOOST_TEST(message_of([&] { crew::worker_pool p(ctx, 0, 1); }) ==
             "crew::worker_pool: workers must be at least 1 or crew::unlimited, got 0");
  BOOST_TEST(message_of([&] { crew::worker_pool p(ctx, 1, 0); }) ==
             "crew::worker_pool: queue_capacity must be at least 1 or crew::unlimited, got 0");
  crew::worker_pool ok(ctx, crew::unlimited, crew::unlimited);
  BOOST_TEST(message_of([&] { ok.set_workers(0); }).find("workers must be at least 1") !=
             std::string::npos);
  BOOST_TEST(ok.workers() == crew::unlimited);
}

CO_TEST_CASE(a_moved_from_or_null_task_is_rejected_at_the_call) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 1, 1};
  auto task = yield_n(1);
  auto moved = std::move(task);
  BOOST_CHECK_THROW(pool.try_submit(std::move(task)), std::invalid_argument);
  BOOST_CHECK_THROW(pool.async_submit(std::move(task), net::detached), std::invalid_argument);
  net::awaitable<void> (*null_fn)() = nullptr;
  BOOST_CHECK_THROW(pool.try_submit(null_fn), std::invalid_argument);
  BOOST_TEST(pool.try_submit(std::move(moved)));
  co_await pool.wait();
}

BOOST_AUTO_TEST_CASE(a_moved_from_pool_says_so) {
  net::io_context ctx;
  crew::worker_pool a{ctx, 1, 1};
  crew::worker_pool b = std::move(a);
  BOOST_CHECK_THROW(a.try_submit(yield_n(1)), std::logic_error);
  BOOST_TEST(a.stats().submitted == 0u);
  BOOST_TEST(b.try_submit(yield_n(1)));
  ctx.run();
  BOOST_TEST(b.stats().succeeded == 1u);
}

BOOST_AUTO_TEST_CASE(destroying_the_pool_drops_the_queue_and_refuses_the_waiting) {
  net::io_context ctx;
  tally t;
  boost::system::error_code refused;
  gate g(ctx.get_executor());
  {
    crew::worker_pool pool{ctx, 1, 2};
    for (int i = 0; i < 3; ++i) BOOST_TEST(pool.try_submit(t.job_at(g)));
    pool.async_submit(t.job_at(g), [&](auto ec) { refused = ec; });
    ctx.poll();
  }
  ctx.run();
  BOOST_TEST(refused == make_error_code(crew::error::shut_down));
  BOOST_TEST(t.ran == 0);
  BOOST_TEST(t.alive == 0);
}

BOOST_AUTO_TEST_CASE(the_io_context_destroyed_first) {
  tally t;
  std::optional<crew::worker_pool> pool;
  {
    net::io_context ctx;
    pool.emplace(ctx, 1, 2);
    auto g = std::make_shared<gate>(ctx.get_executor());
    for (int i = 0; i < 3; ++i) BOOST_TEST(pool->try_submit(t.job_at(*g)));
    pool->async_submit(t.job_at(*g), [](auto) {});
    pool->async_wait([](std::exception_ptr) {});
    ctx.poll();
    // The gate's timer must go before its context; the tasks waiting on it are
    // destroyed with the context.
    ctx.stop();
    g.reset();
  }
  BOOST_TEST(t.alive == 0);
  pool.reset();
}

BOOST_AUTO_TEST_CASE(a_pool_never_waited_on_keeps_its_failures_bounded) {
  captured_reports reports;
  net::io_context ctx;
  crew::worker_pool pool{ctx, 4, 64, crew::worker_pool_options{.keep_failures = 16}};
  int submitted = 0;
  auto producer = [&]() -> net::awaitable<void> {
    for (int i = 0; i < 20000; ++i) {
      auto op = pool.async_submit(fail_with(i), net::use_awaitable);
      co_await std::move(op);
      ++submitted;
    }
  };
  net::co_spawn(ctx, producer(), net::detached);
  ctx.run();
  BOOST_TEST(submitted == 20000);
  BOOST_TEST(pool.failures().size() == 16u);
  BOOST_TEST(pool.stats().failed == 20000u);
  // Past the bound, each failure went to the failure path at once: none was lost.
  BOOST_TEST(reports.total() == 20000u - 16u);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ two threads

BOOST_AUTO_TEST_SUITE(two_threads, *boost::unit_test::label("concurrency"))

CO_TEST_CASE_MT(producers_on_two_threads_with_back_pressure, 2) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 3, 5};
  tally t;
  std::atomic<int> producers_done{0};
  auto producer = [&](int n) -> net::awaitable<void> {
    for (int i = 0; i < n; ++i) {
      if (i % 7 == 0 && pool.try_submit(t.job(i % 3))) continue;
      auto op = pool.async_submit(t.job(i % 3), net::use_awaitable);
      co_await std::move(op);
    }
    producers_done.fetch_add(1);
  };
  net::co_spawn(ex, producer(3000), net::detached);
  net::co_spawn(ex, producer(3000), net::detached);
  co_await yield_until([&] { return producers_done.load() == 2; });
  co_await pool.wait();
  BOOST_TEST(t.ran == 6000);
  BOOST_TEST(t.peak <= 3);
  auto const s = pool.stats();
  BOOST_TEST(s.submitted == 6000u);
  BOOST_TEST(s.succeeded == 6000u);
}

// A place reserved by try_submit while the workers finish: the task must start even
// when no other task is left to retire (found by bench_worker_pool on 2 threads).
CO_TEST_CASE_MT(try_submit_races_with_workers_finishing, 2) {
  auto ex = co_await net::this_coro::executor;
  auto noop = []() -> net::awaitable<void> { co_return; };
  for (int round = 0; round < 20; ++round) {
    crew::worker_pool pool{ex, 4, 4};
    for (int i = 0; i < 2000; ++i) {
      auto t = noop();
      if (pool.try_submit(std::move(t))) continue;
      auto op = pool.async_submit(std::move(t), net::use_awaitable);
      co_await std::move(op);
    }
    co_await pool.shutdown();
    BOOST_TEST(pool.stats().succeeded == 2000u);
  }
}

CO_TEST_CASE_MT(cancel_and_barriers_race_with_submissions, 2) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 2, 4};
  tally t;
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::atomic<bool> producer_done{false};
  auto producer = [&]() -> net::awaitable<void> {
    while (!stop) {
      auto [ec] = co_await pool.async_submit(t.job(2), net::as_tuple(net::use_awaitable));
      if (ec) refused.fetch_add(1);
    }
    producer_done = true;
  };
  net::co_spawn(ex, producer(), net::detached);
  for (int round = 0; round < 50; ++round) {
    co_await yield_n(3);
    if (round % 5 == 0) pool.cancel();
    auto [e] = co_await pool.async_wait(net::as_tuple(net::use_awaitable));
    BOOST_TEST(!e);
  }
  stop = true;
  co_await pool.shutdown();
  // The pool must outlive the calls made on it from the other thread.
  co_await yield_until([&] { return producer_done.load(); });
  auto const s = pool.stats();
  BOOST_TEST(s.submitted == s.succeeded + s.cancelled);
  BOOST_TEST(t.alive == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ docs

namespace doc {

struct database {
  std::atomic<int> rows{0};
  net::awaitable<void> insert(std::string row) {
    co_await yield_once();
    if (row.empty()) throw std::invalid_argument("empty row");
    rows.fetch_add(1);
  }
};

//[worker_pool_import
/// Imports every row, 8 at a time, with at most 64 more waiting: reading the input
/// never runs further ahead than that.
net::awaitable<void> import_all(std::vector<std::string> rows, database& db) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, 8, 64};
  for (auto& row : rows) {
    // Waits while the queue is full: back-pressure on the reader.
    auto op = pool.async_submit(db.insert(std::move(row)), net::use_awaitable);
    co_await std::move(op);
  }
  co_await pool.shutdown();  // drains the queue; throws crew::task_errors if a row failed
}
//]

}  // namespace doc

CO_TEST_CASE(the_docs_importer_imports_and_reports_the_bad_row) {
  doc::database db;
  std::vector<std::string> rows(1000, "row");
  rows[500].clear();
  try {
    co_await doc::import_all(std::move(rows), db);
    BOOST_FAIL("the bad row was not reported");
  } catch (crew::task_errors const& e) {
    BOOST_REQUIRE_EQUAL(e.size(), 1u);
    BOOST_TEST(e.first().index.value() == 500u);
  }
  BOOST_TEST(db.rows == 999);
}
