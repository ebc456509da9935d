//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The cost of a call through a crew::circuit_breaker, against the same awaitable
// called without it, on the same io_context, in the same run.
//
// Each benchmark times four phases per iteration, back to back, each making N calls of
// one awaitable (`noop`: returns at once; `yield`: suspends once through the executor's
// queue, as a call that does I/O would):
//   bare      `co_await work()` inside the driving coroutine: the floor;
//   co_spawn  `co_await co_spawn(ex, work(), use_awaitable)`: raw Asio running the call
//             as a task of its own, as the breaker does;
//   task      `co_await crew::async_with_timeout(ex, work, duration::max(), ...)`: the
//             call as an awaited crew task, without a breaker;
//   breaker   `co_await breaker.async_call(ex, work, as_tuple(use_awaitable))`.
// The breaker is `closed` (every call runs and is counted) or `open` (every call fails
// fast with circuit_open; the factory never runs). With threads:2 the io_context runs on
// two threads and four coroutines drive the calls at once, so the breaker's mutex is
// contended. `two_step` times `breaker.allow().done()`, the synchronous two-step API.
//
// The benchmark's time is the breaker phase's (manual time); counters give each phase
// per call (`bare`, `co_spawn`, `task`, `breaker`: seconds, so `300n` is 300 ns) and the
// ratios `x_bare`, `x_co_spawn` and `x_task` (breaker per call / that phase per call).
// docs/circuit_breaker.md shows a run.
//
#include <crew/circuit_breaker.hpp>
#include <crew/runtime.hpp>

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

namespace net = boost::asio;

namespace {

using crew_bench::runner;
using steady = std::chrono::steady_clock;

constexpr std::size_t calls = 10'000;

// ---------------------------------------------------------------- work

using work_fn = net::awaitable<void> (*)();

net::awaitable<void> noop() {
  co_return;
}

net::awaitable<void> yield() {
  auto ex = co_await net::this_coro::executor;
  co_await net::post(ex, net::use_awaitable);
}

// ---------------------------------------------------------------- phases

enum class phase { bare, co_spawn, task, breaker };

/// One driver's share of a phase: `n` calls, one after the other.
net::awaitable<void> drive(phase p, std::size_t n, work_fn work, crew::circuit_breaker& cb,
                           bool expect_refusal) {
  auto ex = co_await net::this_coro::executor;
  switch (p) {
    case phase::bare:
      for (std::size_t i = 0; i < n; ++i) co_await work();
      break;
    case phase::co_spawn:
      for (std::size_t i = 0; i < n; ++i) {
        auto op = net::co_spawn(ex, work(), net::use_awaitable);
        co_await std::move(op);
      }
      break;
    case phase::task:
      for (std::size_t i = 0; i < n; ++i) {
        auto op =
            crew::async_with_timeout(ex, work, crew::clock::duration::max(), net::use_awaitable);
        co_await std::move(op);
      }
      break;
    case phase::breaker:
      for (std::size_t i = 0; i < n; ++i) {
        auto op = cb.async_call(ex, work, net::as_tuple(net::use_awaitable));
        auto [e] = co_await std::move(op);
        if (static_cast<bool>(e) != expect_refusal)
          throw std::runtime_error("crew::circuit_breaker: unexpected outcome of a call");
      }
      break;
  }
}

/// `drivers` coroutines sharing `n` calls, all at once; returns when all ended.
net::awaitable<void> drive_all(phase p, std::size_t n, std::size_t drivers, work_fn work,
                               crew::circuit_breaker& cb, bool expect_refusal) {
  if (drivers == 1) {
    co_await drive(p, n, work, cb, expect_refusal);
    co_return;
  }
  auto ex = co_await net::this_coro::executor;
  crew_bench::latch<crew_bench::two_threads> done(drivers, ex);
  for (std::size_t d = 0; d < drivers; ++d)
    net::co_spawn(ex, drive(p, n / drivers, work, cb, expect_refusal),
                  [&done](std::exception_ptr e) { done.arrive(e); });
  co_await done.async_wait(net::use_awaitable);
  if (auto e = done.failure()) std::rethrow_exception(e);
}

double timed(runner& r, phase p, std::size_t drivers, work_fn work, crew::circuit_breaker& cb,
             bool expect_refusal) {
  auto const t0 = steady::now();
  r.run(drive_all(p, calls, drivers, work, cb, expect_refusal));
  return std::chrono::duration<double>(steady::now() - t0).count();
}

crew::circuit_breaker_settings settings_for(bool open) {
  crew::circuit_breaker_settings s;
  s.name = "bench";
  if (open) {
    s.trip = [](crew::circuit_counts const&) { return true; };
    s.open_timeout = crew::clock::duration::max();  // stays open
  } else {
    s.trip = [](crew::circuit_counts const&) { return false; };  // stays closed
  }
  return s;
}

void run_phases(benchmark::State& state, unsigned threads, work_fn work, bool open) {
  std::size_t const drivers = threads == 1 ? 1 : 4;
  runner r(threads);
  crew::circuit_breaker cb{settings_for(open)};
  if (open) cb.allow().done(std::make_exception_ptr(std::runtime_error("trip")));
  double bare = 0, spawned = 0, task = 0, breaker = 0;
  try {
    for (auto _ : state) {
      bare += timed(r, phase::bare, drivers, work, cb, open);
      spawned += timed(r, phase::co_spawn, drivers, work, cb, open);
      task += timed(r, phase::task, drivers, work, cb, open);
      double const b = timed(r, phase::breaker, drivers, work, cb, open);
      breaker += b;
      state.SetIterationTime(b);
    }
  } catch (std::exception const& e) {
    state.SkipWithError(e.what());
    return;
  }
  double const n = static_cast<double>(state.iterations()) * static_cast<double>(calls);
  state.counters["bare"] = bare / n;
  state.counters["co_spawn"] = spawned / n;
  state.counters["task"] = task / n;
  state.counters["breaker"] = breaker / n;
  state.counters["x_bare"] = breaker / bare;
  state.counters["x_co_spawn"] = breaker / spawned;
  state.counters["x_task"] = breaker / task;
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

/// The synchronous two-step API: allow() then done(), per call.
void two_step(benchmark::State& state) {
  crew::circuit_breaker cb{settings_for(false)};
  for (auto _ : state) {
    for (std::size_t i = 0; i < calls; ++i) cb.allow().done();
  }
  state.counters["per_call"] =
      benchmark::Counter(static_cast<double>(calls), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}

void register_benchmarks() {
  for (unsigned threads : {1u, 2u})
    for (bool open : {false, true})
      for (auto const& w : {std::pair{"noop", &noop}, std::pair{"yield", &yield}}) {
        work_fn const work = w.second;
        auto const full = std::string(open ? "open/" : "closed/") + w.first +
                          "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(
            full.c_str(), [=](benchmark::State& state) { run_phases(state, threads, work, open); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
  benchmark::RegisterBenchmark("two_step/threads:1", two_step)->Unit(benchmark::kMicrosecond);
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
