//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// crew::io_pool: N io_contexts, one thread each, that crew tasks are placed on. Also
// the task memory that recycles a task's blocks across threads and bursts.
//
#define BOOST_TEST_MODULE crew_io_pool
#include <crew/crew.hpp>
#include <crew/detail/task.hpp>
#include <crew/detail/task_memory.hpp>

#include "test_util.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::test_error;

namespace {

/// Runs `body(pool)` on the pool's executor until it ends, then stops the pool; fails
/// the test if it does not end within a minute.
template <class Body>
void run_on_pool(crew::io_pool& pool, Body body) {
  std::exception_ptr failure;
  std::atomic<bool> done{false};
  net::co_spawn(pool.get_executor(), body(pool), [&](std::exception_ptr e) {
    failure = e;
    done = true;
    pool.stop();
  });
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  std::thread watchdog([&] {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 60s, [&] { return finished; })) pool.stop();
  });
  pool.run();
  {
    std::lock_guard lock(m);
    finished = true;
  }
  cv.notify_one();
  watchdog.join();
  BOOST_REQUIRE_MESSAGE(done, "the test body never finished");
  if (failure) std::rethrow_exception(failure);
}

/// The index of the pool's context that runs on this thread, or -1.
int context_index(crew::io_pool& pool) {
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (pool.context(i).get_executor().running_in_this_thread()) return static_cast<int>(i);
  return -1;
}

struct placements {
  std::mutex mutex;
  std::vector<int> seen;
  void add(int i) {
    std::lock_guard lock(mutex);
    seen.push_back(i);
  }
  std::size_t count(int i) {
    std::lock_guard lock(mutex);
    return static_cast<std::size_t>(std::count(seen.begin(), seen.end(), i));
  }
};

}  // namespace

// ---------------------------------------------------------------- docs

BOOST_AUTO_TEST_CASE(a_group_on_the_pool_as_the_docs_show_it) {
  std::atomic<int> done{0};
  //[io_pool_run
  crew::io_pool pool(2);  // two io_contexts, one thread each
  crew::task_group group(pool.get_executor());
  for (int i = 0; i < 1000; ++i)
    group.spawn([&done]() -> net::awaitable<void> {
      // The pool placed this task on one of its contexts: it stays there, and so
      // does what it makes from its executor.
      auto ex = co_await net::this_coro::executor;
      net::steady_timer timer(ex, 1ms);
      co_await timer.async_wait(net::use_awaitable);
      ++done;
    });
  group.async_wait([&pool](std::exception_ptr) { pool.stop(); });
  pool.run();  // the first context on this thread, the other on a thread of its own
  //]
  BOOST_TEST(done == 1000);
}

// ---------------------------------------------------------------- bad input

BOOST_AUTO_TEST_CASE(zero_or_too_many_threads_name_the_parameter) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1025}}) {
    try {
      crew::io_pool pool(n);
      BOOST_FAIL("no exception");
    } catch (std::invalid_argument const& e) {
      BOOST_TEST(std::string(e.what()) ==
                 "crew::io_pool: threads is " + std::to_string(n) + "; it must be 1 to 1024");
    }
  }
}

BOOST_AUTO_TEST_CASE(a_context_index_out_of_range_names_it) {
  crew::io_pool pool(2);
  BOOST_TEST(pool.size() == 2u);
  try {
    pool.context(2);
    BOOST_FAIL("no exception");
  } catch (std::out_of_range const& e) {
    BOOST_TEST(std::string(e.what()) == "crew::io_pool::context: i is 2; the pool has 2 contexts");
  }
}

BOOST_AUTO_TEST_CASE(run_while_running_is_a_logic_error) {
  crew::io_pool pool(2);
  std::optional<std::string> error;
  net::post(pool.context(0), [&] {
    try {
      pool.run();
    } catch (std::logic_error const& e) {
      error = e.what();
    }
    pool.stop();
  });
  pool.run();
  BOOST_REQUIRE(error);
  BOOST_TEST(*error == "crew::io_pool::run: the pool is running already");
}

// ---------------------------------------------------------------- the executor

BOOST_AUTO_TEST_CASE(the_executor_is_an_asio_executor) {
  static_assert(net::execution::is_executor<crew::io_pool::executor_type>::value);
  crew::io_pool pool(2);
  net::any_io_executor ex = pool.get_executor();
  BOOST_TEST((ex == net::any_io_executor(pool.get_executor())));
  BOOST_TEST(
      (pool.get_executor() != net::require(pool.get_executor(), net::execution::blocking.never)));
  // From outside the pool its context is the first; posts go round-robin.
  BOOST_TEST(&net::query(pool.get_executor(), net::execution::context) == &pool.context(0));
  placements where;
  std::atomic<int> left{4};
  for (int i = 0; i < 4; ++i)
    net::post(ex, [&] {
      where.add(context_index(pool));
      if (--left == 0) pool.stop();
    });
  pool.run();
  BOOST_TEST(where.count(0) == 2u);
  BOOST_TEST(where.count(1) == 2u);
}

BOOST_AUTO_TEST_CASE(on_a_pool_thread_work_stays_on_its_context_and_dispatch_is_inline) {
  crew::io_pool pool(2);
  bool inline_ran = false, checked = false;
  net::post(pool.context(1), [&] {
    BOOST_TEST(&net::query(pool.get_executor(), net::execution::context) == &pool.context(1));
    net::dispatch(pool.get_executor(), [&] { inline_ran = true; });
    BOOST_TEST(inline_ran);
    net::post(pool.get_executor(), [&] {
      checked = context_index(pool) == 1;
      pool.stop();
    });
  });
  pool.run();
  BOOST_TEST(checked);
}

BOOST_AUTO_TEST_CASE(a_burst_cut_by_stop_then_run_again_finishes) {
  // The first run stops inside a burst, with its end-of-handler note and batches still
  // queued; the second run must not touch the first run's placement state.
  crew::io_pool pool(2);
  crew::task_group group(pool.get_executor());
  std::atomic<int> ran{0};
  net::post(pool.context(0), [&] {
    for (int i = 0; i < 500; ++i)
      group.spawn([&]() -> net::awaitable<void> {
        ++ran;
        co_return;
      });
    pool.stop();
  });
  pool.run();
  pool.restart();
  auto done = group.async_wait(net::use_future);
  std::thread stopper([&] {
    done.get();
    pool.stop();
  });
  pool.run();
  stopper.join();
  BOOST_TEST(ran == 500);
}

BOOST_AUTO_TEST_CASE(stop_then_restart_runs_again) {
  crew::io_pool pool(2);
  net::post(pool.context(1), [&] { pool.stop(); });
  pool.run();
  BOOST_TEST(pool.stopped());
  pool.restart();
  BOOST_TEST(!pool.stopped());
  bool ran = false;
  net::post(pool.context(1), [&] {
    ran = true;
    pool.stop();
  });
  pool.run();
  BOOST_TEST(ran);
}

// ---------------------------------------------------------------- placement

BOOST_AUTO_TEST_CASE(tasks_spawned_from_outside_go_round_robin) {
  crew::io_pool pool(3);
  crew::task_group group(pool.get_executor());
  placements where;
  for (int i = 0; i < 6; ++i)
    group.spawn([&]() -> net::awaitable<void> {
      where.add(context_index(pool));
      co_return;
    });
  auto done = group.async_wait(net::use_future);
  std::thread stopper([&] {
    done.get();
    pool.stop();
  });
  pool.run();
  stopper.join();
  for (int i = 0; i < 3; ++i) BOOST_TEST(where.count(i) == 2u);
}

BOOST_AUTO_TEST_CASE(a_burst_spreads_and_every_task_stays_on_its_context) {
  crew::io_pool pool(2);
  constexpr int n = 2000;
  placements where;
  std::atomic<int> moved{0}, wrong_executor{0};
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group group(p.get_executor());
    for (int i = 0; i < n; ++i)
      group.spawn([&]() -> net::awaitable<void> {
        int const here = context_index(pool);
        where.add(here);
        // The task's own executor is its context's: it resumes there, and so does
        // a timer made from it.
        auto ex = co_await net::this_coro::executor;
        if (crew::detail::plain_executor(ex) !=
            net::any_io_executor(pool.context(static_cast<std::size_t>(here)).get_executor()))
          ++wrong_executor;
        co_await crew_test::yield_n(3);
        net::steady_timer t(ex, 0ms);
        co_await t.async_wait(net::use_awaitable);
        if (context_index(pool) != here) ++moved;
      });
    co_await group.async_wait(net::use_awaitable);
  });
  BOOST_TEST(moved == 0);
  BOOST_TEST(wrong_executor == 0);
  BOOST_TEST(where.count(0) + where.count(1) == std::size_t{n});
  // A burst from one handler sends most of its tasks to the other context.
  BOOST_TEST(where.count(0) > 0u);
  BOOST_TEST(where.count(1) > 0u);
}

BOOST_AUTO_TEST_CASE(one_context_runs_everything_on_it) {
  crew::io_pool pool(1);
  std::atomic<int> ran{0};
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group group(p.get_executor());
    for (int i = 0; i < 100; ++i)
      group.spawn([&]() -> net::awaitable<void> {
        BOOST_TEST(context_index(pool) == 0);
        ++ran;
        co_return;
      });
    co_await group.async_wait(net::use_awaitable);
  });
  BOOST_TEST(ran == 100);
}

BOOST_AUTO_TEST_CASE(nested_groups_on_a_tasks_executor_stay_on_its_context) {
  crew::io_pool pool(2);
  std::atomic<int> strays{0}, ran{0};
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group outer(p.get_executor());
    for (int i = 0; i < 50; ++i)
      outer.spawn([&]() -> net::awaitable<void> {
        int const here = context_index(pool);
        auto ex = co_await net::this_coro::executor;
        crew::task_group inner(ex);
        for (int j = 0; j < 10; ++j)
          inner.spawn([&, here]() -> net::awaitable<void> {
            if (context_index(pool) != here) ++strays;
            ++ran;
            co_return;
          });
        co_await inner.async_wait(net::use_awaitable);
      });
    co_await outer.async_wait(net::use_awaitable);
  });
  BOOST_TEST(ran == 500);
  BOOST_TEST(strays == 0);
}

// ---------------------------------------------------------------- the task group on it

BOOST_AUTO_TEST_CASE(a_burst_of_100000_tasks_all_end_and_are_counted) {
  crew::io_pool pool(2);
  constexpr std::size_t n = 100000;
  std::atomic<std::size_t> ran{0};
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group group(p.get_executor());
    for (std::size_t i = 0; i < n; ++i)
      group.spawn([&]() -> net::awaitable<void> {
        ran.fetch_add(1, std::memory_order_relaxed);
        co_return;
      });
    co_await group.async_wait(net::use_awaitable);
    BOOST_TEST(group.size() == 0u);
  });
  BOOST_TEST(ran == n);
}

BOOST_AUTO_TEST_CASE(every_failure_on_every_context_is_kept) {
  crew::io_pool pool(2);
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group_options options;
    options.keep_failures = crew::unlimited;
    crew::task_group group(p.get_executor(), options);
    for (int i = 0; i < 1000; ++i)
      group.spawn([i]() -> net::awaitable<void> {
        co_await crew_test::yield_once();
        if (i % 10 == 0) throw test_error(i);
      });
    try {
      co_await group.async_wait(net::use_awaitable);
      BOOST_FAIL("no failures");
    } catch (crew::task_errors const& e) {
      BOOST_TEST(e.failures().size() == 100u);
      std::set<std::string> messages;
      for (auto const& f : e.failures()) messages.insert(f.what());
      BOOST_TEST(messages.size() == 100u);
    }
  });
}

BOOST_AUTO_TEST_CASE(cancel_reaches_parked_tasks_on_every_context) {
  crew::io_pool pool(2);
  std::atomic<int> cancelled{0};
  placements where;
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group group(p.get_executor());
    std::atomic<int> parked{0};
    for (int i = 0; i < 200; ++i)
      group.spawn([&]() -> net::awaitable<void> {
        where.add(context_index(pool));
        ++parked;
        try {
          co_await crew_test::sleep_for(1h);
        } catch (boost::system::system_error const& e) {
          if (e.code() == net::error::operation_aborted) ++cancelled;
          throw;
        }
      });
    co_await crew_test::yield_until([&] { return parked == 200; });
    group.cancel();
    co_await group.async_wait(net::use_awaitable);
  });
  BOOST_TEST(cancelled == 200);
  BOOST_TEST(where.count(0) > 0u);
  BOOST_TEST(where.count(1) > 0u);
}

BOOST_AUTO_TEST_CASE(a_limited_group_and_async_spawn_work_across_contexts) {
  crew::io_pool pool(2);
  std::atomic<int> running{0}, peak{0}, ran{0};
  run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
    crew::task_group_options options;
    options.limit = 8;
    crew::task_group group(p.get_executor(), options);
    for (int i = 0; i < 2000; ++i) {
      auto op = group.async_spawn(
          [&]() -> net::awaitable<void> {
            int const now = ++running;
            for (int seen = peak; now > seen && !peak.compare_exchange_weak(seen, now);) {
            }
            co_await crew_test::yield_once();
            --running;
            ++ran;
          },
          net::use_awaitable);
      co_await std::move(op);
    }
    co_await group.async_wait(net::use_awaitable);
  });
  BOOST_TEST(ran == 2000);
  BOOST_TEST(peak <= 8);
}

BOOST_AUTO_TEST_CASE(the_pool_destroyed_with_tasks_parked_abandons_them) {
  auto& rt = crew::runtime::global();
  auto const before = rt.stats();
  std::atomic<int> parked{0};
  {
    auto pool = std::make_unique<crew::io_pool>(2);
    crew::task_group group(pool->get_executor());
    net::post(pool->context(0), [&] {
      for (int i = 0; i < 100; ++i)
        group.spawn([&]() -> net::awaitable<void> {
          ++parked;
          co_await crew_test::sleep_for(1h);
        });
    });
    std::thread stopper([&] {
      while (parked != 100) std::this_thread::sleep_for(1ms);
      pool->stop();
    });
    pool->run();
    stopper.join();
    pool.reset();  // before the group: every task ends abandoned
    BOOST_TEST(group.size() == 0u);
  }
  auto const after = rt.stats();
  BOOST_TEST(after.cancelled - before.cancelled >= 100u);
}

BOOST_AUTO_TEST_CASE(starts_still_in_a_batch_when_the_pool_stops_end_abandoned) {
  std::atomic<int> ran{0};
  std::size_t left = 1;
  {
    auto pool = std::make_unique<crew::io_pool>(2);
    crew::task_group group(pool->get_executor());
    net::post(pool->context(0), [&] {
      // A burst: past the first few, its starts wait in batches for the other
      // context, and the pool stops before the handler returns.
      for (int i = 0; i < 1000; ++i)
        group.spawn([&]() -> net::awaitable<void> {
          ++ran;
          co_return;
        });
      pool->stop();
    });
    pool->run();
    pool.reset();
    left = group.size();
  }
  BOOST_TEST(left == 0u);
  BOOST_TEST(ran < 1000);
}

// ---------------------------------------------------------------- async ops

BOOST_AUTO_TEST_CASE(wait_with_a_callback_use_future_and_cancellation) {
  crew::io_pool pool(2);
  crew::task_group group(pool.get_executor());
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i)
    group.spawn([&]() -> net::awaitable<void> {
      ++ran;
      co_return;
    });
  std::promise<void> callback_done;
  group.async_wait([&](std::exception_ptr e) {
    BOOST_TEST(!e);
    callback_done.set_value();
  });
  auto fut = group.async_wait(net::use_future);
  std::thread waiter([&] {
    callback_done.get_future().get();
    fut.get();
    pool.stop();
  });
  pool.run();
  waiter.join();
  BOOST_TEST(ran == 10);

  // Cancelling a wait cancels the tasks, on whichever context they run.
  pool.restart();
  crew::task_group parked(pool.get_executor());
  for (int i = 0; i < 10; ++i) parked.spawn(crew_test::sleep_for(1h));
  net::cancellation_signal signal;
  std::exception_ptr result;
  parked.async_wait(net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
    result = e;
    pool.stop();
  }));
  net::post(pool.context(1), [&] {
    net::post(pool.context(0), [&] { signal.emit(net::cancellation_type::terminal); });
  });
  pool.run();
  BOOST_REQUIRE(result);
  try {
    std::rethrow_exception(result);
  } catch (boost::system::system_error const& e) {
    BOOST_TEST(e.code() == net::error::operation_aborted);
  }
}

// ---------------------------------------------------------------- task memory

BOOST_AUTO_TEST_CASE(task_memory_is_reused_and_its_limit_gives_it_back) {
  auto& rt = crew::runtime::global();
  BOOST_TEST(rt.task_memory_limit() == crew::detail::default_task_memory_limit);
  net::io_context ctx;
  auto burst = [&] {
    crew::task_group group(ctx);
    for (int i = 0; i < 2000; ++i) group.spawn([]() -> net::awaitable<void> { co_return; });
    auto done = group.async_wait(net::use_future);
    ctx.restart();
    ctx.run();
    done.get();
  };
  burst();
#if !defined(__SANITIZE_ADDRESS__)
  std::size_t const kept = rt.task_memory_cached();
  BOOST_TEST(kept > 2000u * 300u);  // every task's node and entry frame at least
  burst();
  BOOST_TEST(rt.task_memory_cached() == kept);  // the same blocks, taken and given back
  rt.set_task_memory_limit(0);
  // Only this thread's two magazines per size are left.
  BOOST_TEST(rt.task_memory_cached() < kept);
  burst();
  BOOST_TEST(rt.task_memory_cached() < kept);
#endif
  rt.set_task_memory_limit(crew::detail::default_task_memory_limit);
  BOOST_TEST(rt.task_memory_limit() == crew::detail::default_task_memory_limit);
}

BOOST_AUTO_TEST_CASE(task_memory_flows_between_threads) {
  // Tasks made on one thread and ended on another: blocks pile up on the ending
  // thread and come back through the depot; a thread that exits gives its own back.
  for (int round = 0; round < 3; ++round) {
    crew::io_pool pool(2);
    std::atomic<int> ran{0};
    run_on_pool(pool, [&](crew::io_pool& p) -> net::awaitable<void> {
      crew::task_group group(p.get_executor());
      for (int i = 0; i < 20000; ++i)
        group.spawn([&]() -> net::awaitable<void> {
          ++ran;
          co_return;
        });
      co_await group.async_wait(net::use_awaitable);
    });
    BOOST_TEST(ran == 20000);
  }
  bool usable = false;
  std::thread t([&] {
    void* p = crew::detail::task_memory_allocate(100);
    crew::detail::task_memory_deallocate(p, 100);
    crew::detail::recycled_signal s;
    s.get().slot().clear();  // a recycled signal may hold its last task's handler
    usable = !s.get().slot().has_handler();
  });
  t.join();
  BOOST_TEST(usable);
  void* big = crew::detail::task_memory_allocate(4096);  // beyond the size classes
  crew::detail::task_memory_deallocate(big, 4096);
}
