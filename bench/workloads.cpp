//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// One measurement per process, printed as one JSON object, in the same shape as the
// peers' (bench/peers/): bench/run alternates crew, raw Asio and the peers round by
// round and pairs the results.
//
//   bench_workloads raw|crew WORKLOAD N THREADS [--executor E] [--warm R]
//
//   --executor  what runs the tasks: io_context (the default; THREADS threads run one
//               io_context), thread_pool (an asio::thread_pool of THREADS threads) or
//               io_pool (a crew::io_pool of THREADS io_contexts, one thread each)
//   --warm R    one warm-up burst, then R bursts in the same process (a warm heap):
//               reports the median and every round. Without it, one cold burst.
//
// Every report has the CPU time per task: user + system time of every thread of the
// process over the burst (getrusage), divided by N.
//
//   noop       spawn N tasks that return at once, wait for all
//   yield      the same, each task yielding once (post)
//   yield10    the same, each task yielding ten times: with yield and noop, the cost of
//              one resumption (crew's: through the task executor that brackets it)
//   fail10     every tenth task throws; every failure is kept (crew: task_errors)
//   fail10_traces   the same with crew's throw-site traces on (raw: off, its baseline)
//   limit64    at most 64 tasks at once: the spawner waits for a slot, as raw Asio's
//              hand-written semaphore and every peer's limit do (crew: try_spawn, and
//              async_spawn when it is refused, as the semaphore's try_acquire)
//   limit64_async  the same with crew's async_spawn alone, which suspends the spawner
//              for every task; raw: the same semaphore
//   limit64_queued  the same with crew's spawn, which queues past the limit (every
//              frame exists at once); raw: the same semaphore
//   cancel     N tasks each waiting on a one-hour timer: time from cancel to the end
//   rss        the same, reporting resident bytes per suspended task
//   run_group  (crew only) a run group of N actors: start, first return, interrupt, end
//   run_group_shutdown  (crew only) N parked actors: time from interrupt() to the end
//   retry      (crew only) N retries of an attempt that fails once, no backoff
//   never_waited  (crew only) a group with an on_failure handler that nobody waits on:
//              N tasks in batches of 10,000, every tenth throwing; bytes_per_task is
//              the growth of resident memory from the end of the first batch to the
//              end, per task spawned after the first batch, and rss_growth_bytes the
//              whole growth
//
// Raw Asio is co_spawn plus a counter whose last decrement resumes the one waiter.
//
// CREW_BENCH_RUNTIME sets what crew's runtime sees of each task (bench/runtime_cost):
//   off        no statistics, no tracking, no hooks
//   stats      statistics only
//   tracking   tracking only
//   on         statistics and tracking (the default, as in a process that sets nothing)
//   hooks      statistics, tracking, and one start hook and one end hook that do nothing
//   hooks_only one start hook and one end hook, nothing else
//
#include <crew/io_pool.hpp>
#include <crew/retry.hpp>
#include <crew/run_group.hpp>
#include <crew/runtime.hpp>
#include <crew/task_group.hpp>

#include "bench_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

using crew_bench::latch;
using crew_bench::one_thread;
using crew_bench::semaphore;
using crew_bench::two_threads;

long rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      long kb = 0;
      status >> kb;
      return kb * 1024;
    }
    status.ignore(1 << 20, '\n');
  }
  throw std::runtime_error("no VmRSS");
}

// ---------------------------------------------------------------- raw Asio

net::awaitable<void> noop_task(std::size_t) {
  co_return;
}

net::awaitable<void> yield_task(std::size_t) {
  auto ex = co_await net::this_coro::executor;
  co_await net::post(ex, net::use_awaitable);
}

net::awaitable<void> yield10_task(std::size_t) {
  auto ex = co_await net::this_coro::executor;
  for (int i = 0; i < 10; ++i) co_await net::post(ex, net::use_awaitable);
}

struct task_failed : std::runtime_error {
  task_failed() : std::runtime_error("task failed") {}
};

net::awaitable<void> fail10_task(std::size_t i) {
  if (i % 10 == 0) throw task_failed();
  co_return;
}

using task_fn = net::awaitable<void> (*)(std::size_t);

/// Failures are kept, as crew keeps them.
template <class Sync>
net::awaitable<void> raw_burst(task_fn task, std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  latch<Sync> done(n, ex);
  typename Sync::mutex failures_mutex;
  std::vector<std::exception_ptr> failures;
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, task(i), [&](std::exception_ptr e) {
      if (e) {
        std::lock_guard lock(failures_mutex);
        failures.push_back(std::move(e));
      }
      done.arrive(nullptr);
    });
  co_await done.async_wait(net::use_awaitable);
}

/// A hand-written semaphore: at most 64 tasks in flight.
template <class Sync>
net::awaitable<void> raw_limit(task_fn task, std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  semaphore<Sync> slots(64, ex);
  latch<Sync> done(n, ex);
  for (std::size_t i = 0; i < n; ++i) {
    if (!slots.try_acquire()) co_await slots.async_acquire(net::use_awaitable);
    net::co_spawn(ex, task(i), [&](std::exception_ptr e) {
      slots.release();
      done.arrive(e);
    });
  }
  co_await done.async_wait(net::use_awaitable);
}

net::awaitable<void> park() {
  net::steady_timer t(co_await net::this_coro::executor, 1h);
  co_await t.async_wait(net::use_awaitable);
}

/// N parked tasks; returns the time from the cancel to the end, and the resident bytes
/// per task once all were parked.
net::awaitable<std::pair<clock_type::duration, long>> raw_cancel(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  long const before = rss_bytes();
  latch<one_thread> done(n, ex);
  std::vector<net::cancellation_signal> signals(n);
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, park(),
                  net::bind_cancellation_slot(signals[i].slot(),
                                              [&](std::exception_ptr) { done.arrive(nullptr); }));
  co_await net::post(ex, net::use_awaitable);  // every task ran its first step
  long const bytes = (rss_bytes() - before) / static_cast<long>(n);
  auto const start = clock_type::now();
  for (auto& s : signals) s.emit(net::cancellation_type::terminal);
  co_await done.async_wait(net::use_awaitable);
  co_return std::pair{clock_type::now() - start, bytes};
}

// ---------------------------------------------------------------- crew

net::awaitable<void> crew_burst(task_fn task, std::size_t n, std::size_t limit) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options;
  options.limit = limit;
  options.keep_failures = crew::unlimited;  // every failure kept, as raw Asio keeps them
  crew::task_group group{ex, options};
  for (std::size_t i = 0; i < n; ++i) group.spawn(task(i));
  try {
    co_await group.wait();
  } catch (crew::task_errors const&) {
  }
}

/// At most 64 tasks at once; with `try_first`, the spawner suspends only when no slot is
/// free (as the raw semaphore's try_acquire), else every spawn goes through async_spawn.
net::awaitable<void> crew_limit(task_fn task, std::size_t n, bool try_first) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group_options options;
  options.limit = 64;
  crew::task_group group{ex, options};
  for (std::size_t i = 0; i < n; ++i) {
    auto t = task(i);
    if (try_first && group.try_spawn(std::move(t))) continue;
    auto admitted = group.async_spawn(std::move(t), net::use_awaitable);
    co_await std::move(admitted);
  }
  co_await group.wait();
}

net::awaitable<std::pair<clock_type::duration, long>> crew_cancel(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  long const before = rss_bytes();
  crew::task_group group{ex};
  for (std::size_t i = 0; i < n; ++i) group.spawn(park());
  co_await net::post(ex, net::use_awaitable);  // every task ran its first step
  long const bytes = (rss_bytes() - before) / static_cast<long>(n);
  auto const start = clock_type::now();
  group.cancel();
  co_await group.wait();
  co_return std::pair{clock_type::now() - start, bytes};
}

net::awaitable<void> crew_run_group(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  for (std::size_t i = 0; i < n; ++i) rg.add(crew::execute(park));
  rg.add(crew::execute([]() -> net::awaitable<void> { co_return; }));
  co_await rg.run();
}

net::awaitable<std::pair<clock_type::duration, long>> crew_run_group_shutdown(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  crew::run_group rg{ex};
  for (std::size_t i = 0; i < n; ++i) rg.add(crew::execute(park));
  clock_type::time_point start{};
  auto interrupter = [&]() -> net::awaitable<void> {
    co_await net::post(ex, net::use_awaitable);  // queued behind the actors' first steps
    co_await net::post(ex, net::use_awaitable);
    start = clock_type::now();
    rg.interrupt();
  };
  net::co_spawn(ex, interrupter(), net::detached);
  co_await rg.run();
  co_return std::pair{clock_type::now() - start, -1L};
}

net::awaitable<void> crew_retry(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  crew::retry_options options;
  options.backoff = crew::backoff::none();
  for (std::size_t i = 0; i < n; ++i) {
    auto op = crew::async_retry(
        ex,
        [](crew::retrier& r) -> net::awaitable<void> {
          if (r.iteration() == 1) throw task_failed();
          co_return;
        },
        options, net::use_awaitable);
    co_await std::move(op);
  }
}

struct never_waited_result {
  clock_type::duration elapsed;
  long bytes_per_task;
  long growth;
};

net::awaitable<never_waited_result> crew_never_waited(std::size_t n) {
  constexpr std::size_t batch = 10'000;
  auto ex = co_await net::this_coro::executor;
  std::size_t failed = 0;
  crew::task_group_options options;
  options.on_failure = [&failed](crew::task_failure const&) { ++failed; };
  crew::task_group group{ex, options};
  long after_first_batch = 0;
  auto const start = clock_type::now();
  for (std::size_t i = 0; i < n;) {
    for (std::size_t const end = std::min(n, i + batch); i < end; ++i) group.spawn(fail10_task(i));
    // The on_failure handlers may still be queued once the last task ended.
    while (group.size() != 0 || failed != (i + 9) / 10) co_await net::post(ex, net::use_awaitable);
    if (i <= batch) after_first_batch = rss_bytes();
  }
  auto const elapsed = clock_type::now() - start;
  long const growth = rss_bytes() - after_first_batch;
  // Measured: collect the failures, or the group's destructor prints every one.
  try {
    co_await group.wait();
  } catch (crew::task_errors const&) {
  }
  long const later_tasks = static_cast<long>(std::max(n, batch) - batch);
  co_return never_waited_result{elapsed, later_tasks > 0 ? growth / later_tasks : 0, growth};
}

}  // namespace

/// Applies CREW_BENCH_RUNTIME; false if it names no setting.
bool configure_runtime() {
  char const* v = std::getenv("CREW_BENCH_RUNTIME");
  std::string_view const setting = v ? v : "on";
  auto& rt = crew::runtime::global();
  bool const hooks = setting == "hooks" || setting == "hooks_only";
  bool const stats = setting == "stats" || setting == "on" || setting == "hooks";
  bool const tracking = setting == "tracking" || setting == "on" || setting == "hooks";
  if (!hooks && !stats && !tracking && setting != "off") return false;
  rt.enable_stats(stats);
  rt.enable_tracking(tracking);
  if (hooks) {
    rt.on_task_start([](crew::task_info const&, crew::task_info const&) {});
    rt.on_task_end([](crew::task_info const&, std::exception_ptr) {});
  }
  return true;
}

/// User + system CPU time of every thread of the process so far.
clock_type::duration cpu_time() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto const tv = [](timeval t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return std::chrono::duration_cast<clock_type::duration>(tv(u.ru_utime) + tv(u.ru_stime));
}

double per_task(clock_type::duration d, std::size_t n) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}

/// Runs `measure` to its end on the executor named `executor`, with `threads` threads.
/// False if it names no executor.
bool run_on(std::string_view executor, unsigned threads,
            std::function<net::awaitable<void>()> const& measure, std::exception_ptr& failure) {
  auto done = [&](std::exception_ptr e) { failure = e; };
  if (executor == "io_context") {
    net::io_context ctx(static_cast<int>(threads));
    net::co_spawn(ctx, measure(), done);
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&] { ctx.run(); });
    ctx.run();
    for (auto& t : pool) t.join();
    return true;
  }
  if (executor == "thread_pool") {
    net::thread_pool pool(threads);
    net::co_spawn(pool, measure(), done);
    pool.join();
    return true;
  }
  if (executor == "io_pool") {
    crew::io_pool pool(threads);
    net::co_spawn(pool.get_executor(), measure(), [&](std::exception_ptr e) {
      failure = e;
      pool.stop();
    });
    pool.run();
    return true;
  }
  return false;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: bench_workloads raw|crew WORKLOAD N THREADS [--executor "
                 "io_context|thread_pool|io_pool] [--warm R]\n");
    return 2;
  }
  std::string_view const impl = argv[1], workload = argv[2];
  std::size_t const n = std::strtoull(argv[3], nullptr, 10);
  unsigned const threads = static_cast<unsigned>(std::strtoul(argv[4], nullptr, 10));
  std::string_view executor = "io_context";
  std::size_t warm = 0;
  for (int i = 5; i < argc; ++i) {
    std::string_view const flag = argv[i];
    if (i + 1 == argc) {
      std::fprintf(stderr, "bench_workloads: %s needs a value\n", argv[i]);
      return 2;
    }
    if (flag == "--executor") {
      executor = argv[++i];
    } else if (flag == "--warm") {
      warm = std::strtoull(argv[++i], nullptr, 10);
      if (warm == 0) {
        std::fprintf(stderr, "bench_workloads: --warm needs a count of rounds above 0\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "bench_workloads: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  bool const raw = impl == "raw";
  if ((!raw && impl != "crew") || n == 0 || threads == 0 || threads > 64) {
    std::fprintf(stderr, "bench_workloads: bad arguments\n");
    return 2;
  }
  crew::set_throw_site_traces(workload == "fail10_traces" && !raw);
  if (!configure_runtime()) {
    std::fprintf(stderr,
                 "bench_workloads: CREW_BENCH_RUNTIME is not one of off, stats, "
                 "tracking, on, hooks, hooks_only\n");
    return 2;
  }

  std::exception_ptr failure;
  // g++ 12 mishandles temporaries in a co_await full-expression: pick the work in a
  // plain function, await it in a statement of its own.
  auto const bursts = threads > 1 ? &raw_burst<two_threads> : &raw_burst<one_thread>;
  auto const limits = threads > 1 ? &raw_limit<two_threads> : &raw_limit<one_thread>;
  auto work = [&]() -> net::awaitable<void> {
    if (workload == "noop")
      return raw ? bursts(noop_task, n) : crew_burst(noop_task, n, crew::unlimited);
    if (workload == "yield")
      return raw ? bursts(yield_task, n) : crew_burst(yield_task, n, crew::unlimited);
    if (workload == "yield10")
      return raw ? bursts(yield10_task, n) : crew_burst(yield10_task, n, crew::unlimited);
    if (workload == "fail10" || workload == "fail10_traces")
      return raw ? bursts(fail10_task, n) : crew_burst(fail10_task, n, crew::unlimited);
    if (workload == "limit64") return raw ? limits(noop_task, n) : crew_limit(noop_task, n, true);
    if (workload == "limit64_async")
      return raw ? limits(noop_task, n) : crew_limit(noop_task, n, false);
    if (workload == "limit64_queued")
      return raw ? limits(noop_task, n) : crew_burst(noop_task, n, 64);
    if (workload == "run_group" && !raw) return crew_run_group(n);
    if (workload == "retry" && !raw) return crew_retry(n);
    throw std::invalid_argument("bench_workloads: unknown workload '" + std::string(workload) +
                                "' for " + std::string(impl) + " on " + std::to_string(threads) +
                                " threads");
  };
  bool const parked_tasks = (workload == "cancel" || workload == "rss") && threads == 1;
  bool const shutdown = workload == "run_group_shutdown" && !raw && threads == 1;
  bool const never_waited = workload == "never_waited" && !raw && threads == 1;
  if (warm != 0 && (parked_tasks || shutdown || never_waited)) {
    std::fprintf(stderr, "bench_workloads: --warm is for bursts, not %s\n",
                 std::string(workload).c_str());
    return 2;
  }
  clock_type::duration elapsed{}, cpu{};
  std::vector<clock_type::duration> rounds, cpu_rounds;
  long bytes = -1;
  long growth = -1;
  auto measure = [&]() -> net::awaitable<void> {
    if (parked_tasks) {
      auto op = raw ? raw_cancel(n) : crew_cancel(n);
      auto const [d, b] = co_await std::move(op);
      elapsed = d;
      bytes = b;
      co_return;
    }
    if (shutdown) {
      auto op = crew_run_group_shutdown(n);
      auto const [d, b] = co_await std::move(op);
      elapsed = d;
      bytes = b;
      co_return;
    }
    if (never_waited) {
      auto op = crew_never_waited(n);
      auto const result = co_await std::move(op);
      elapsed = result.elapsed;
      bytes = result.bytes_per_task;
      growth = result.growth;
      co_return;
    }
    // Warm: round 0 warms the heap up and is not reported.
    for (std::size_t round = 0; round <= warm; ++round) {
      auto const start = clock_type::now();
      auto const cpu_start = cpu_time();
      auto op = work();
      co_await std::move(op);
      elapsed = clock_type::now() - start;
      cpu = cpu_time() - cpu_start;
      if (warm == 0) break;
      if (round == 0) continue;
      rounds.push_back(elapsed);
      cpu_rounds.push_back(cpu);
    }
  };
  if (!run_on(executor, threads, measure, failure)) {
    std::fprintf(stderr,
                 "bench_workloads: unknown executor %s (io_context, thread_pool, io_pool)\n",
                 std::string(executor).c_str());
    return 2;
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (std::exception const& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    }
  }
  auto const median = [](std::vector<clock_type::duration> v) {
    std::sort(v.begin(), v.end());
    auto const m = v.size() / 2;
    return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
  };
  if (warm != 0) {
    elapsed = median(rounds);
    cpu = median(cpu_rounds);
  }
  std::printf(
      "{\"impl\": \"%s\", \"workload\": \"%s\", \"n\": %zu, \"threads\": %u, \"executor\": "
      "\"%s\", \"warm\": %zu, \"ns_per_task\": %.1f, \"cpu_ns_per_task\": %.1f, "
      "\"bytes_per_task\": %ld",
      raw ? "raw" : "crew", std::string(workload).c_str(), n, threads,
      std::string(executor).c_str(), warm, per_task(elapsed, n), per_task(cpu, n), bytes);
  if (never_waited) std::printf(", \"rss_growth_bytes\": %ld", growth);
  if (warm != 0) {
    for (auto const* list : {&rounds, &cpu_rounds}) {
      std::printf(list == &rounds ? ", \"rounds_ns\": [" : ", \"rounds_cpu_ns\": [");
      for (std::size_t i = 0; i < list->size(); ++i)
        std::printf("%s%.1f", i == 0 ? "" : ", ", per_task((*list)[i], n));
      std::printf("]");
    }
  }
  std::printf("}\n");
  return 0;
}
