//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Spawn + wait of N tasks: crew::task_group against raw Asio (co_spawn + a counter
// whose last decrement resumes the waiting coroutine).
//
// Benchmarks are named <workload>/<impl>/threads:<t>/N:<n>, impl being `raw` or
// `crew`; bench/ratios.py pairs them by that name. Every benchmark measures wall
// time (UseRealTime) and the CPU time of the whole process (MeasureProcessCPUTime).
// The user counter `per_task` is seconds per task (so `720n` is 720 ns).
//
// Both sides share everything but the code under test: the same io_context, reused
// across iterations (1 thread: run by the benchmark thread, restarted per iteration;
// 2 threads: two helper threads run it for the whole benchmark), the same driver
// coroutine co_spawned once per iteration, and the same kind of waiter: one stored
// completion handler that is posted when the work is done (crew's wait does the same).
//
#include <crew/task_group.hpp>

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace net = boost::asio;

namespace {

using crew_bench::runner;

using crew_bench::latch;
using crew_bench::one_thread;
using crew_bench::semaphore;
using crew_bench::two_threads;

// ---------------------------------------------------------------- tasks

using task_fn = net::awaitable<void> (*)();

net::awaitable<void> noop_task() {
  co_return;
}

net::awaitable<void> yield_task() {
  auto ex = co_await net::this_coro::executor;
  co_await net::post(ex, net::use_awaitable);
}

// ---------------------------------------------------------------- drivers

template <class Sync>
net::awaitable<void> raw_burst(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  latch<Sync> done(n, ex);
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, task(), [&done](std::exception_ptr e) { done.arrive(e); });
  co_await done.async_wait(net::use_awaitable);
  if (auto e = done.failure()) std::rethrow_exception(e);
}

net::awaitable<void> crew_burst(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  for (std::size_t i = 0; i < n; ++i) g.spawn(task());
  co_await g.wait();
}

constexpr std::size_t limit = 64;

template <class Sync>
net::awaitable<void> raw_limit(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  semaphore<Sync> slots(limit, ex);
  latch<Sync> done(n, ex);
  for (std::size_t i = 0; i < n; ++i) {
    if (!slots.try_acquire()) co_await slots.async_acquire(net::use_awaitable);
    net::co_spawn(ex, task(), [&slots, &done](std::exception_ptr e) {
      slots.release();
      done.arrive(e);
    });
  }
  co_await done.async_wait(net::use_awaitable);
  if (auto e = done.failure()) std::rethrow_exception(e);
}

/// `spawn` with a limit: the spawner never waits, tasks past the limit queue (all N
/// coroutine frames exist at once, as in a burst).
net::awaitable<void> crew_limit(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options{.limit = limit};
  crew::task_group g{ex, options};
  for (std::size_t i = 0; i < n; ++i) g.spawn(task());
  co_await g.wait();
}

/// `async_spawn` with a limit: the spawner waits for a slot, like the raw semaphore
/// (at most `limit` frames exist, so memory is reused).
net::awaitable<void> crew_limit_async(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options{.limit = limit};
  crew::task_group g{ex, options};
  for (std::size_t i = 0; i < n; ++i) {
    auto admitted = g.async_spawn(task(), net::use_awaitable);
    co_await std::move(admitted);
  }
  co_await g.wait();
}

// ---------------------------------------------------------------- harness

using driver_fn = net::awaitable<void> (*)(std::size_t, task_fn);

void run_benchmark(benchmark::State& state, unsigned threads, driver_fn driver, task_fn task) {
  auto const n = static_cast<std::size_t>(state.range(0));
  runner r(threads);
  try {
    for (auto _ : state) r.run(driver(n, task));
  } catch (std::exception const& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.counters["per_task"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                     benchmark::Counter::kInvert);
}

/// Registers `workload/raw/threads:t/N:n` and `workload/crew/threads:t/N:n` next to each
/// other for every N, so that each pair runs back to back; with CREW_BENCH_CREW_FIRST
/// set in the environment, crew runs first (bench/ratios.py alternates the order).
void add_pair(std::string const& workload, unsigned threads, driver_fn raw, driver_fn crew,
              task_fn task) {
  bool const crew_first = std::getenv("CREW_BENCH_CREW_FIRST") != nullptr;
  for (std::int64_t n : {1'000, 10'000, 100'000}) {
    for (int i = 0; i < 2; ++i) {
      bool const is_crew = (i == 0) == crew_first;
      auto const name =
          workload + (is_crew ? "/crew" : "/raw") + "/threads:" + std::to_string(threads);
      driver_fn const driver = is_crew ? crew : raw;
      benchmark::RegisterBenchmark(
          name.c_str(),
          [=](benchmark::State& state) { run_benchmark(state, threads, driver, task); })
          ->ArgName("N")
          ->Arg(n)
          ->UseRealTime()
          ->MeasureProcessCPUTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

void register_benchmarks() {
  for (unsigned threads : {1u, 2u}) {
    driver_fn const raw_burst_fn = threads > 1 ? &raw_burst<two_threads> : &raw_burst<one_thread>;
    driver_fn const raw_limit_fn = threads > 1 ? &raw_limit<two_threads> : &raw_limit<one_thread>;
    add_pair("noop", threads, raw_burst_fn, &crew_burst, &noop_task);
    add_pair("yield", threads, raw_burst_fn, &crew_burst, &yield_task);
    add_pair("limit64", threads, raw_limit_fn, &crew_limit, &noop_task);
    add_pair("limit64_async", threads, raw_limit_fn, &crew_limit_async, &noop_task);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
