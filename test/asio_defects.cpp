//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Regression tests for the Asio 1.26 (Boost 1.81) defects crew designs around
// (DESIGN.md §2). crew does not launch tasks with co_spawn: it builds the task's
// awaitable thread itself, with one entry frame that posts the task's first step,
// catches every exception, and records the outcome inline.
//
#define BOOST_TEST_MODULE asio_defects
#include <crew/task_group.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::sleep_for;
using crew_test::yield_n;
using crew_test::yield_once;

// co_spawn runs the child inline up to its first suspension when called from the
// io thread. crew's spawn never runs user code: the task's first step is posted.
CO_TEST_CASE(spawn_never_runs_the_task_inline) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  bool ran = false;
  g.spawn([&]() -> net::awaitable<void> {
    ran = true;
    co_return;
  });
  BOOST_TEST(!ran);
  co_await g.wait();
  BOOST_TEST(ran);
}

// co_spawn adds an extra post when a task finishes without suspending. A crew task
// that never suspends starts and ends in one scheduler step: a handler posted right
// after the spawn already sees it gone.
CO_TEST_CASE(a_task_that_never_suspends_ends_in_its_first_step) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  g.spawn([]() -> net::awaitable<void> { co_return; });
  std::size_t size_seen = 99;
  net::post(ex, [&] { size_seen = g.size(); });
  co_await yield_n(2);
  BOOST_TEST(size_seen == 0u);
}

// co_spawn may call its completion handler re-entrantly. crew never completes an
// operation inside the call that initiates or finishes it.
BOOST_AUTO_TEST_CASE(completions_are_never_reentrant) {
  net::io_context ctx;
  crew::task_group g{ctx};
  bool waited = false;
  g.async_wait([&](std::exception_ptr) { waited = true; });  // empty group: completes...
  BOOST_TEST(!waited);                                       // ...but not inside the call
  ctx.run();
  BOOST_TEST(waited);

  ctx.restart();
  bool spawned = false;
  g.async_spawn(yield_once(), [&](boost::system::error_code) { spawned = true; });
  BOOST_TEST(!spawned);
  ctx.run();
  BOOST_TEST(spawned);
}

// co_spawn does not propagate exceptions caused by cancellation. crew's entry frame
// catches everything, and a cancellation requested before a task's first step is
// emitted only once that step ran, so a cancelled task always ends and is counted.
BOOST_AUTO_TEST_CASE(a_task_cancelled_before_it_starts_ends_without_running) {
  net::io_context ctx;
  crew::task_group g{ctx};
  bool ran = false;
  g.spawn([&]() -> net::awaitable<void> {
    ran = true;
    co_return;
  });
  g.spawn(sleep_for(1h));
  g.cancel();  // before either task started
  std::optional<std::exception_ptr> result;
  g.async_wait([&](std::exception_ptr e) { result = e; });
  BOOST_CHECK_NO_THROW(ctx.run());
  BOOST_REQUIRE(result);
  BOOST_TEST(!*result);  // both ended, cancelled; neither is a failure
  BOOST_TEST(!ran);      // a task cancelled before its first step never runs its body
}

// An object-lifetime crash on co_spawn cancellation: a cancellation emitted while the
// coroutine ends on another thread. crew emits only between a task's steps, never
// after its last one; hammer that on two threads.
BOOST_AUTO_TEST_CASE(cancelling_tasks_while_they_end_on_two_threads) {
  net::thread_pool pool(2);
  for (int round = 0; round < 50; ++round) {
    crew::task_group g{pool.get_executor()};
    for (int i = 0; i < 100; ++i) g.spawn(yield_n(i % 4));
    g.cancel();
    g.cancel();
    g.async_wait(net::use_future).get();
  }
  pool.join();
}

// co_spawn(..., detached) discards the exception; crew records every failure and
// prints those nobody waited for (see task_group.cpp). When the io_context itself is
// destroyed with tasks suspended, the tasks count as cancelled and nothing leaks.
BOOST_AUTO_TEST_CASE(destroying_the_io_context_with_suspended_tasks_leaks_nothing) {
  auto alive = std::make_shared<int>(0);
  std::optional<std::exception_ptr> result;
  auto ctx = std::make_unique<net::io_context>();
  crew::task_group g{*ctx, {.limit = 2}};
  for (int i = 0; i < 5; ++i)
    g.spawn([alive]() -> net::awaitable<void> { co_await sleep_for(1h); });
  g.async_wait_for(1h, [&](std::exception_ptr e) { result = e; });
  ctx->run_for(5ms);
  BOOST_TEST(g.size() == 5u);
  ctx.reset();
  BOOST_TEST(alive.use_count() == 1);
  BOOST_TEST(g.size() == 0u);
}
