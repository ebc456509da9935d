//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The worker pool's cost per item against a task group with the same limit, and
// against raw Asio (co_spawn behind a semaphore); and its resident memory under a
// producer far faster than the workers, against a task group that queues everything.
//
//   bench_worker_pool [--n N] [--rounds R] [--threads T]
//
// Throughput: every round runs each implementation once, in a shuffled order, on the
// same io_context; the table gives the median ns per item and the ratios per round
// (the machine is noisy: only ratios measured in the same round mean anything).
// Memory: a producer submits N tasks that each take 100 yields; the table gives the
// growth of resident memory (/proc/self/statm) at its peak during the run.
//
#include <crew/task_group.hpp>
#include <crew/worker_pool.hpp>

#include "bench_util.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;

namespace {

constexpr std::size_t workers = 64;
constexpr std::size_t capacity = 64;

net::awaitable<void> noop_task() {
  co_return;
}

net::awaitable<void> slow_task() {
  auto ex = co_await net::this_coro::executor;
  for (int i = 0; i < 100; ++i) co_await net::post(ex, net::use_awaitable);
}

using task_fn = net::awaitable<void> (*)();

template <class Sync>
net::awaitable<void> raw_run(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew_bench::semaphore<Sync> slots(workers, ex);
  crew_bench::latch<Sync> done(n, ex);
  for (std::size_t i = 0; i < n; ++i) {
    if (!slots.try_acquire()) co_await slots.async_acquire(net::use_awaitable);
    net::co_spawn(ex, task(), [&slots, &done](std::exception_ptr e) {
      slots.release();
      done.arrive(e);
    });
  }
  co_await done.async_wait(net::use_awaitable);
}

/// The hand-written bounded fan-out: a task group with the limit, async_spawn per item.
net::awaitable<void> group_run(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options{.limit = workers};
  crew::task_group g{ex, options};
  for (std::size_t i = 0; i < n; ++i) {
    auto op = g.async_spawn(task(), net::use_awaitable);
    co_await std::move(op);
  }
  co_await g.wait();
}

/// The same, trying first: try_spawn while a slot is free, async_spawn when not.
net::awaitable<void> group_try_run(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options{.limit = workers};
  crew::task_group g{ex, options};
  for (std::size_t i = 0; i < n; ++i) {
    auto t = task();
    if (g.try_spawn(std::move(t))) continue;
    auto op = g.async_spawn(std::move(t), net::use_awaitable);
    co_await std::move(op);
  }
  co_await g.wait();
}

/// The pool fed by async_submit alone.
net::awaitable<void> pool_async_run(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, workers, capacity};
  for (std::size_t i = 0; i < n; ++i) {
    auto op = pool.async_submit(task(), net::use_awaitable);
    co_await std::move(op);
  }
  co_await pool.shutdown();
}

/// The pool: try_submit while there is room, async_submit when the queue is full.
net::awaitable<void> pool_run(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::worker_pool pool{ex, workers, capacity};
  for (std::size_t i = 0; i < n; ++i) {
    auto t = task();
    if (pool.try_submit(std::move(t))) continue;
    auto op = pool.async_submit(std::move(t), net::use_awaitable);
    co_await std::move(op);
  }
  co_await pool.shutdown();
}

/// Every task spawned at once, queued behind the limit: memory grows with N.
net::awaitable<void> group_spawn_all(std::size_t n, task_fn task) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options{.limit = workers};
  crew::task_group g{ex, options};
  for (std::size_t i = 0; i < n; ++i) g.spawn(task());
  co_await g.wait();
}

using driver_fn = net::awaitable<void> (*)(std::size_t, task_fn);

double run_once(net::io_context& ctx, unsigned threads, driver_fn driver, std::size_t n,
                task_fn task) {
  auto const start = std::chrono::steady_clock::now();
  std::exception_ptr error;
  if (threads == 1) {
    ctx.restart();
    net::co_spawn(ctx, driver(n, task), [&](std::exception_ptr e) { error = e; });
    ctx.run();
  } else {
    std::binary_semaphore done{0};
    net::co_spawn(ctx, driver(n, task), [&](std::exception_ptr e) {
      error = e;
      done.release();
    });
    done.acquire();
  }
  if (error) std::rethrow_exception(error);
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
             .count() /
         static_cast<double>(n);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

/// Runs `driver` with a sampler coroutine beside it; returns the peak growth of RSS.
std::size_t peak_growth(driver_fn driver, std::size_t n) {
  net::io_context ctx;
  std::size_t const base = resident_bytes();
  std::size_t peak = base;
  bool done = false;
  net::co_spawn(ctx, driver(n, &slow_task), [&](std::exception_ptr e) {
    done = true;
    if (e) std::rethrow_exception(e);
  });
  auto sampler = [&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    while (!done) {
      peak = std::max(peak, resident_bytes());
      for (int i = 0; i < 1000 && !done; ++i) co_await net::post(ex, net::use_awaitable);
    }
  };
  net::co_spawn(ctx, sampler(), [](std::exception_ptr) {});
  ctx.run();
  return peak - base;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 100'000;
  int rounds = 11;
  unsigned threads = 1;
  int only = -1;  // debugging: run one implementation, `rounds` times
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--n")) n = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = static_cast<unsigned>(std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--only")) only = std::atoi(argv[i + 1]);
  }
  if (n == 0 || rounds <= 0 || threads == 0) {
    std::fprintf(stderr, "usage: bench_worker_pool [--n N>0] [--rounds R>0] [--threads T>0]\n");
    return 2;
  }

  net::io_context ctx(static_cast<int>(threads));
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> pool_threads;
  if (threads > 1) {
    work.emplace(ctx.get_executor());
    for (unsigned i = 0; i < threads; ++i) pool_threads.emplace_back([&] { ctx.run(); });
  }

  struct impl {
    char const* name;
    driver_fn driver;
  };
  driver_fn const raw =
      threads > 1 ? &raw_run<crew_bench::two_threads> : &raw_run<crew_bench::one_thread>;
  // Pairs fed the same way: [1] against [2] (an async op per item), [3] against [4]
  // (try first, the async op only when full).
  std::vector<impl> impls{{"raw", raw},
                          {"task_group async_spawn", &group_run},
                          {"worker_pool async_submit", &pool_async_run},
                          {"task_group try_spawn", &group_try_run},
                          {"worker_pool try_submit", &pool_run}};
  std::size_t const count = impls.size();
  std::mt19937 shuffle(42);
  if (only >= 0 && static_cast<std::size_t>(only) < count) {
    for (int r = 0; r < rounds; ++r)
      std::printf("%s: %.0f ns/item\n", impls[only].name,
                  run_once(ctx, threads, impls[only].driver, n, &noop_task));
    work.reset();
    for (auto& t : pool_threads) t.join();
    return 0;
  }

  std::printf(
      "worker_pool: %zu workers, queue %zu; N = %zu, %u thread(s), %d rounds, no-op "
      "tasks\n\n",
      workers, capacity, n, threads, rounds);
  std::vector<std::vector<double>> times(count);
  std::vector<double> async_ratio, try_ratio;
  for (std::size_t k = 0; k < count; ++k) run_once(ctx, threads, impls[k].driver, n, &noop_task);
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::size_t> order(count);
    for (std::size_t k = 0; k < count; ++k) order[k] = k;
    std::shuffle(order.begin(), order.end(), shuffle);
    std::vector<double> t(count);
    for (std::size_t k : order) t[k] = run_once(ctx, threads, impls[k].driver, n, &noop_task);
    for (std::size_t k = 0; k < count; ++k) times[k].push_back(t[k] / t[0]);
    async_ratio.push_back(t[2] / t[1]);
    try_ratio.push_back(t[4] / t[3]);
  }
  std::printf("| implementation | per item vs raw [range] |\n|---|---:|\n");
  for (std::size_t k = 0; k < count; ++k) {
    auto [lo, hi] = std::minmax_element(times[k].begin(), times[k].end());
    std::printf("| %s | %.2f [%.2f–%.2f] |\n", impls[k].name, median(times[k]), *lo, *hi);
  }
  auto print_ratio = [](char const* label, std::vector<double> const& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    std::printf("| %s | **%.2f** [%.2f–%.2f] |\n", label, median(v), *lo, *hi);
  };
  std::printf(
      "\n| pool against a task group with the same limit | pool/group [range] |\n"
      "|---|---:|\n");
  print_ratio("fed by the async op (async_submit / async_spawn)", async_ratio);
  print_ratio("trying first (try_submit / try_spawn)", try_ratio);
  work.reset();
  for (auto& t : pool_threads) t.join();

  // Memory, one thread: a producer that never waits on its own, 100 yields per task.
  std::size_t const pool_growth = peak_growth(&pool_run, n);
  std::size_t const group_growth = peak_growth(&group_spawn_all, n);
  std::printf(
      "\nresident memory growth, producer 100x faster than the workers, N = %zu:\n"
      "| implementation | peak growth |\n|---|---:|\n"
      "| worker_pool (%zu workers, queue %zu) | %.1f MiB |\n"
      "| task_group, everything spawned at once | %.1f MiB |\n",
      n, workers, capacity, static_cast<double>(pool_growth) / (1 << 20),
      static_cast<double>(group_growth) / (1 << 20));
  return 0;
}
