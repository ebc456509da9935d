//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Many tasks on a 2-thread io_context: no lost error, no double count. Built and
// run under ThreadSanitizer by scripts/test; built a second time, as
// test_task_group_stress_io_pool, to run on a 2-context crew::io_pool (co_test.hpp).
//
#define BOOST_TEST_MODULE task_group_stress
#include <crew/task_group.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <set>

namespace net = boost::asio;
using crew_test::test_error;
using crew_test::yield_once;

namespace {
constexpr int task_count = 100'000;
}

CO_TEST_CASE_MT(every_seventh_of_100k_tasks_throws_and_each_failure_is_recorded_once, 2) {
  auto ex = co_await crew_test::executor();
  crew::task_group_options keep_all;
  keep_all.keep_failures = crew::unlimited;
  crew::task_group g{ex, keep_all};
  std::atomic<int> ran{0};
  for (int i = 1; i <= task_count; ++i)
    g.spawn([&ran, i]() -> net::awaitable<void> {
      ++ran;
      if (i % 2 == 0) co_await yield_once();
      if (i % 7 == 0) throw test_error(i);
    });
  auto [e] = co_await g.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(ran == task_count);
  BOOST_REQUIRE(e);
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE(errors);
  BOOST_TEST(errors->size() == static_cast<std::size_t>(task_count / 7));
  std::set<int> seen;
  for (auto const& f : errors->failures()) seen.insert(f.as<test_error>()->n);
  BOOST_TEST(seen.size() == static_cast<std::size_t>(task_count / 7));  // no duplicates
  BOOST_TEST(*seen.begin() == 7);
  BOOST_TEST(*seen.rbegin() == task_count / 7 * 7);
}

BOOST_AUTO_TEST_CASE(limit_and_failures_with_spawners_on_other_threads) {
  crew_test::background_threads pool;  // on an io_pool, tasks spawned from outside
  crew::task_group g{pool.get_executor(), {.limit = 64}};
  std::atomic<int> active{0}, peak{0}, ran{0};
  std::vector<std::thread> spawners;
  for (int t = 0; t < 2; ++t)
    spawners.emplace_back([&, t] {
      for (int i = 0; i < 5'000; ++i)
        g.spawn([&, i, t]() -> net::awaitable<void> {
          int const now = ++active;
          for (int p = peak; now > p && !peak.compare_exchange_weak(p, now);) {
          }
          co_await yield_once();
          --active;
          ++ran;
          if ((i + t) % 100 == 0) throw test_error(i);
        });
    });
  for (auto& s : spawners) s.join();
  std::exception_ptr e;
  try {
    g.async_wait(net::use_future).get();
  } catch (...) {
    e = std::current_exception();
  }
  BOOST_TEST(ran == 10'000);
  BOOST_TEST(peak <= 64);
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE(errors);
  BOOST_TEST(errors->size() == 100u);
  pool.join();
}
