//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Timer fan-out: N jobs come due at the same instant and each runs a no-op coroutine.
//
// - `scheduler`: N `every` entries on a crew::scheduler driven by a manual clock; one
//   iteration advances the clock by the period and runs the io_context until all N
//   runs ended. Each run costs the clock's wait completion, a tick (a driver run, a
//   crew task) and the job's task.
// - `raw_timers`: what a user would write with bare Asio: N coroutines, each looping
//   over a steady_timer set to an instant already passed, and co_spawning the job on
//   each expiry. One iteration releases all N once.
//
// Both run in the same process, on one io_context, one thread; `per_run` is seconds
// per job run (so `2u` is 2 µs).
//
#include <crew/clock.hpp>
#include <crew/scheduler.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

net::awaitable<void> no_op(std::size_t& count) {
  ++count;
  co_return;
}

void scheduler_fanout(benchmark::State& state) {
  auto const n = static_cast<std::size_t>(state.range(0));
  net::io_context io(1);
  crew::manual_clock clk;
  crew::scheduler_options o;
  o.clock = &clk;
  crew::scheduler s(io, o);
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i)
    s.every("job " + std::to_string(i), 1s, [&count] { return no_op(count); });
  io.poll();  // every entry arms its first wait
  for (auto _ : state) {
    auto const target = count + n;
    clk.advance(1s);
    while (count < target) io.run_one();
    io.poll();  // the ticks re-arm
  }
  state.counters["per_run"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  s.async_stop([](boost::system::error_code) {});
  io.run();
}

/// One timer loop: waits for a release, then spawns the job, again and again.
net::awaitable<void> raw_loop(net::steady_timer& release, std::size_t& count,
                              std::size_t& generation) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer t(ex);
  for (std::size_t seen = 0;;) {
    boost::system::error_code ec;
    while (generation == seen) {  // parked until the iteration releases everyone
      co_await release.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    seen = generation;
    if (generation == std::size_t(-1)) co_return;
    t.expires_at(net::steady_timer::time_point::min());  // due already: a real expiry
    co_await t.async_wait(net::use_awaitable);
    net::co_spawn(ex, no_op(count), net::detached);
  }
}

void raw_timers_fanout(benchmark::State& state) {
  auto const n = static_cast<std::size_t>(state.range(0));
  net::io_context io(1);
  net::steady_timer release(io, net::steady_timer::time_point::max());
  std::size_t count = 0, generation = 0;
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(io, raw_loop(release, count, generation), net::detached);
  io.poll();
  for (auto _ : state) {
    auto const target = count + n;
    ++generation;
    release.cancel();
    while (count < target) io.run_one();
    io.poll();
  }
  state.counters["per_run"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  generation = std::size_t(-1);
  release.cancel();
  io.run();
}

}  // namespace

BENCHMARK(raw_timers_fanout)->Name("fanout/raw_timers")->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(scheduler_fanout)->Name("fanout/scheduler")->Arg(10000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
