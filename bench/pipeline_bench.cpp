//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A pipeline's cost per item per stage: crew::pipeline with 1, 2 and 4 trivial stages
// (`co_return x + 1`, concurrency 1), ordered and unordered, against raw Asio: a
// hand-written chain of concurrent_channels (same capacity) with one co_spawned
// coroutine per stage, a source and a sink, that call the same stage function.
//
// Benchmarks are named <workload>/<impl>/threads:<t>/N:<n>, workload being
// `pipeline_<ordered|unordered>_stages:<s>` and impl `raw` or `crew` (the raw chain,
// one coroutine per stage, keeps order either way: the same raw run is measured under
// both workload names so that bench/ratios.py can pair them). Every benchmark measures
// wall time (UseRealTime) and the process's CPU time. The user counter `per_item_stage`
// is seconds per item per stage (so `300n` is 300 ns); `per_item` is per item.
//
//   bench_pipeline [--benchmark_filter=...]
//
#include <crew/pipeline.hpp>

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;

namespace {

using crew_bench::runner;

constexpr std::size_t capacity = 16;

/// The stage both sides run.
net::awaitable<long> plus_one(long x) {
  co_return x + 1;
}

/// An input range of 0..n-1 that makes its items as it goes, as a real source would.
struct numbers {
  long n;
  struct iterator {
    using value_type = long;
    using difference_type = std::ptrdiff_t;
    long i;
    long operator*() const { return i; }
    iterator& operator++() {
      ++i;
      return *this;
    }
    bool operator==(iterator const& o) const { return i == o.i; }
  };
  iterator begin() const { return {0}; }
  iterator end() const { return {n}; }
};

/// The expected sum of the sink's inputs: each item went through `stages` increments.
long expected_sum(long n, int stages) {
  return n * (n - 1) / 2 + n * stages;
}

// ---------------------------------------------------------------- raw Asio

using raw_channel = net::experimental::concurrent_channel<void(boost::system::error_code, long)>;
constexpr long end_mark = -1;

net::awaitable<void> raw_send(raw_channel& ch, long x) {
  auto [ec] =
      co_await ch.async_send(boost::system::error_code{}, x, net::as_tuple(net::use_awaitable));
  if (ec) throw boost::system::system_error(ec);
}

net::awaitable<long> raw_receive(raw_channel& ch) {
  auto [ec, x] = co_await ch.async_receive(net::as_tuple(net::use_awaitable));
  if (ec) throw boost::system::system_error(ec);
  co_return x;
}

template <class Sync>
net::awaitable<void> raw_pipeline(long n, int stages) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::unique_ptr<raw_channel>> chans;
  for (int i = 0; i <= stages; ++i) chans.push_back(std::make_unique<raw_channel>(ex, capacity));
  crew_bench::latch<Sync> done(static_cast<std::size_t>(stages) + 2, ex);
  auto arrive = [&done](std::exception_ptr e) { done.arrive(e); };
  net::co_spawn(
      ex,
      [&]() -> net::awaitable<void> {
        for (long x : numbers{n}) co_await raw_send(*chans.front(), x);
        co_await raw_send(*chans.front(), end_mark);
      },
      arrive);
  for (int s = 0; s < stages; ++s)
    net::co_spawn(
        ex,
        [&in = *chans[static_cast<std::size_t>(s)],
         &out = *chans[static_cast<std::size_t>(s) + 1]]() -> net::awaitable<void> {
          for (;;) {
            long x = co_await raw_receive(in);
            if (x == end_mark) break;
            long y = co_await plus_one(x);
            co_await raw_send(out, y);
          }
          co_await raw_send(out, end_mark);
        },
        arrive);
  long sum = 0;
  net::co_spawn(
      ex,
      [&]() -> net::awaitable<void> {
        for (;;) {
          long x = co_await raw_receive(*chans.back());
          if (x == end_mark) break;
          sum += x;
        }
      },
      arrive);
  co_await done.async_wait(net::use_awaitable);
  if (done.failure()) std::rethrow_exception(done.failure());
  if (sum != expected_sum(n, stages)) throw std::logic_error("raw pipeline: wrong sum");
}

// ---------------------------------------------------------------- crew

net::awaitable<void> crew_pipeline(long n, int stages, bool ordered) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline_options o;
  o.ordered = ordered;
  o.capacity = capacity;
  crew::pipeline<long> p{ex, o};
  auto s1 = std::move(p).stage("s1", 1, plus_one);
  long sum = 0;
  auto sink = [&sum](long x) { sum += x; };
  // Initiate in one statement, await in the next (g++ 12, DESIGN §2).
  if (stages == 1) {
    auto op = s1.run(numbers{n}, sink);
    co_await std::move(op);
  } else if (stages == 2) {
    auto two = std::move(s1).stage("s2", 1, plus_one);
    auto op = two.run(numbers{n}, sink);
    co_await std::move(op);
  } else {
    auto four =
        std::move(s1).stage("s2", 1, plus_one).stage("s3", 1, plus_one).stage("s4", 1, plus_one);
    auto op = four.run(numbers{n}, sink);
    co_await std::move(op);
  }
  if (sum != expected_sum(n, stages)) throw std::logic_error("crew pipeline: wrong sum");
}

// ---------------------------------------------------------------- harness

enum class impl { raw, crew_ordered, crew_unordered };

void run_benchmark(benchmark::State& state, unsigned threads, impl which, int stages) {
  auto const n = static_cast<long>(state.range(0));
  runner r(threads);
  try {
    for (auto _ : state) {
      switch (which) {
        case impl::raw:
          r.run(threads > 1 ? raw_pipeline<crew_bench::two_threads>(n, stages)
                            : raw_pipeline<crew_bench::one_thread>(n, stages));
          break;
        case impl::crew_ordered:
          r.run(crew_pipeline(n, stages, true));
          break;
        case impl::crew_unordered:
          r.run(crew_pipeline(n, stages, false));
          break;
      }
    }
  } catch (std::exception const& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.counters["per_item"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                     benchmark::Counter::kInvert);
  state.counters["per_item_stage"] = benchmark::Counter(
      static_cast<double>(n) * stages,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

/// Registers `workload/raw/...` and `workload/crew/...` next to each other for every N;
/// with CREW_BENCH_CREW_FIRST set, crew runs first (bench/ratios.py alternates).
void add_pair(unsigned threads, int stages, bool ordered) {
  bool const crew_first = std::getenv("CREW_BENCH_CREW_FIRST") != nullptr;
  std::string const workload = std::string("pipeline_") + (ordered ? "ordered" : "unordered") +
                               "_stages:" + std::to_string(stages);
  for (std::int64_t n : {1'000, 10'000, 100'000}) {
    for (int i = 0; i < 2; ++i) {
      bool const is_crew = (i == 0) == crew_first;
      auto const name =
          workload + (is_crew ? "/crew" : "/raw") + "/threads:" + std::to_string(threads);
      impl const which = !is_crew ? impl::raw : ordered ? impl::crew_ordered : impl::crew_unordered;
      benchmark::RegisterBenchmark(
          name.c_str(),
          [=](benchmark::State& state) { run_benchmark(state, threads, which, stages); })
          ->ArgName("N")
          ->Arg(n)
          ->UseRealTime()
          ->MeasureProcessCPUTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

void register_benchmarks() {
  for (unsigned threads : {1u, 2u})
    for (bool ordered : {true, false})
      for (int stages : {1, 2, 4}) add_pair(threads, stages, ordered);
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
