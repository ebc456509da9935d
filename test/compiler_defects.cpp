//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// g++ 12.2 destroys some temporaries of a full-expression that contains co_await
// one time too many (a prvalue argument of a call whose result is co_awaited is
// destroyed twice; clang 14 is right). crew's API
// keeps users out of the shapes that break: no public constructor or initiating
// function has a defaulted parameter that is not trivially destructible. This file
// runs crew's API in the shapes users write next to a co_await; under ASan with
// g++ 12 any double destruction fails the run.
//
// Shapes that g++ 12 breaks whatever the library does, and that crew's docs steer
// users away from (each crashed under ASan when written against crew's API):
//   crew::task_group g{co_await net::this_coro::executor, {.name = "x"}};
//   co_await g.async_spawn(task(), {.name = "x"}, net::use_awaitable);
//   co_await g.async_spawn([s]() -> net::awaitable<void> { ... }, net::use_awaitable);
//
#define BOOST_TEST_MODULE compiler_defects
#include <crew/gather.hpp>
#include <crew/loop.hpp>
#include <crew/pipeline.hpp>
#include <crew/retry.hpp>
#include <crew/run_group.hpp>
#include <crew/scheduler.hpp>
#include <crew/supervisor.hpp>
#include <crew/task_group.hpp>
#include <crew/task_manager.hpp>
#include <crew/worker_pool.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>

#include <chrono>
#include <string>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::yield_once;

namespace {
net::awaitable<void> job() {
  co_await yield_once();
}
}  // namespace

// The shape the notes saw crash with a defaulted options parameter holding a string.
CO_TEST_CASE(constructing_from_a_co_awaited_executor) {
  crew::task_group g{co_await net::this_coro::executor};
  g.spawn(job());
  co_await g.wait();
}

CO_TEST_CASE(options_passed_as_an_lvalue_next_to_co_await) {
  crew::task_group_options options;
  options.name = std::string(64, 'g');  // longer than any small-string buffer
  options.limit = 2;
  crew::task_group g{co_await net::this_coro::executor, options};
  for (int i = 0; i < 4; ++i) g.spawn(job());
  co_await g.wait();
}

CO_TEST_CASE(initiating_functions_next_to_co_await) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex, {.limit = 1}};
  co_await g.async_spawn(job(), net::use_awaitable);
  co_await g.async_spawn(job(), net::use_awaitable);
  co_await g.async_wait_for(1h, net::use_awaitable);
  auto [e] = co_await g.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
  co_await g.wait();
}

CO_TEST_CASE(spawn_options_initiated_then_awaited) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex, {.limit = 1}};
  crew::spawn_options options{.name = std::string(64, 's')};
  auto op = g.async_spawn(job(), options, net::use_awaitable);
  co_await std::move(op);
  g.spawn(job(), {.name = std::string(64, 't')});  // no co_await in this statement
  co_await g.wait();
}

CO_TEST_CASE(a_lambda_capturing_a_string_spawned_without_co_await) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  std::string s(64, 'c');
  std::string seen;
  g.spawn([s, &seen]() -> net::awaitable<void> {
    co_await yield_once();
    seen = s;
  });
  co_await g.wait();
  BOOST_TEST(seen == s);
}

// Run groups and loops in the shapes their docs show next to a co_await.
CO_TEST_CASE(run_group_from_a_co_awaited_executor) {
  crew::run_group rg{co_await net::this_coro::executor};
  rg.add(crew::execute(job), crew::name(std::string(64, 'r')));
  co_await rg.run();
  auto [e] = co_await rg.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
}

CO_TEST_CASE(run_group_options_built_first) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex, {.shutdown_grace = 10s, .clock = nullptr, .name = std::string(64, 'n')}};
  rg.add(crew::execute(job));
  co_await rg.run();
}

CO_TEST_CASE(loop_from_a_co_awaited_executor) {
  crew::loop lp{co_await net::this_coro::executor};
  std::string s(64, 'l');
  lp.add(crew::execute([s]() -> net::awaitable<void> { co_await yield_once(); }));
  lp.stop();
  co_await lp.run();
}

// Supervisors and retries in the shapes their docs show next to a co_await.
CO_TEST_CASE(supervisor_from_a_co_awaited_executor) {
  crew::supervisor sup{co_await net::this_coro::executor};
  sup.add(std::string(64, 's'), job, {.restart = crew::restart::temporary});
  co_await sup.run();
  crew::supervisor_options options;
  options.name = std::string(64, 'n');
  crew::supervisor named{co_await net::this_coro::executor, options};
  named.add("job", job, {.restart = crew::restart::transient});
  auto [e] = co_await named.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
}

// A task manager in the shapes docs/task_manager.md shows next to a co_await.
namespace {
struct managed_job {
  net::awaitable<void> initialize() { co_await yield_once(); }
  net::awaitable<void> execute() { co_await yield_once(); }
  net::awaitable<void> cleanup() { co_await yield_once(); }
};
}  // namespace

CO_TEST_CASE(task_manager_from_a_co_awaited_executor) {
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add(std::string(64, 'm'), managed_job{}, crew::task_kind::error);
  tm.add_execute_task(std::string(64, 'x'), job, crew::task_kind::error);
  co_await tm.run();
  crew::task_manager_options options;
  options.name = std::string(64, 'n');
  crew::task_manager named{co_await net::this_coro::executor, options};
  named.add("job", managed_job{}, crew::task_kind::stop_group);
  auto [e] = co_await named.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
}

CO_TEST_CASE(retry_options_initiated_then_awaited) {
  auto ex = co_await net::this_coro::executor;
  int calls = 0;
  crew::retry_options options{.max_attempts = 3, .backoff = crew::backoff::none()};
  auto op = crew::async_retry(
      ex,
      [&calls, s = std::string(64, 'r')]() -> net::awaitable<void> {
        if (++calls < 2) throw std::runtime_error(s);
        co_return;
      },
      options, net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(calls == 2);
}

CO_TEST_CASE(worker_pool_from_a_co_awaited_executor) {
  crew::worker_pool pool{co_await net::this_coro::executor, 2, 4};
  co_await pool.async_submit(job(), net::use_awaitable);
  auto [e] = co_await pool.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
  crew::worker_pool_options options{.name = std::string(64, 'p')};
  crew::worker_pool named{co_await net::this_coro::executor, 1, 1, options};
  auto op = named.async_submit(job(), crew::spawn_options{.name = std::string(64, 'j')},
                               net::use_awaitable);
  co_await std::move(op);
  co_await named.shutdown();
}

CO_TEST_CASE(pipeline_from_a_co_awaited_executor) {
  crew::pipeline<int> p{co_await net::this_coro::executor};
  auto doubled = std::move(p).stage(std::string(64, 'd'), 2, [](int x) { return 2 * x; });
  std::vector<int> out;
  std::vector<int> const in{1, 2, 3};
  // g++ 12 rejects `auto [e, r] = co_await p.async_run(std::vector<int>{...}, ...)`
  // ("array used as initializer"): the range is named first.
  auto [e, r] = co_await doubled.async_run(
      in, [&](int x) { out.push_back(x); }, net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
  BOOST_TEST(r.items_out == 3u);
  crew::pipeline_options options{.name = std::string(64, 'p')};
  crew::pipeline<int> named{co_await net::this_coro::executor, options};
  auto op = named.async_run(
      std::vector<int>{4}, [&](int x) { out.push_back(x); }, net::use_awaitable);
  co_await std::move(op);
  BOOST_TEST(out == (std::vector<int>{2, 4, 6, 4}), boost::test_tools::per_element());
}

CO_TEST_CASE(gather_options_built_first_then_initiated_and_awaited) {
  auto ex = co_await net::this_coro::executor;
  auto twice = [](int x) -> net::awaitable<int> {
    co_await yield_once();
    co_return 2 * x;
  };
  std::vector<net::awaitable<int>> items;
  for (int i = 0; i < 4; ++i) items.push_back(twice(i));
  crew::gather_options options{.limit = 2, .name = std::string(64, 'g')};
  auto op = crew::async_gather(ex, std::move(items), options, net::use_awaitable);
  std::vector<int> out = co_await std::move(op);
  BOOST_TEST(out == (std::vector<int>{0, 2, 4, 6}), boost::test_tools::per_element());
}

CO_TEST_CASE(scheduler_from_a_co_awaited_executor) {
  // The constructor without options (options hold strings), entries with string names
  // next to a co_await, and a stop initiated then awaited.
  crew::scheduler plain{co_await net::this_coro::executor};
  plain.once(std::string(64, 'o'), std::chrono::seconds(0), [] { return job(); });
  crew::scheduler_options options{.name = std::string(64, 's')};
  crew::scheduler named{co_await net::this_coro::executor, options};
  named.every(std::string(64, 'e'), std::chrono::hours(1), [] { return job(); });
  auto op = named.async_stop(net::use_awaitable);
  co_await std::move(op);
  co_await plain.stop();
}
