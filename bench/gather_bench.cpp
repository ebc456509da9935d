//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Gather N items, at most 64 at once, their values in input order: crew::async_gather
// over a lazy view against the loop a user would write by hand over a task group with
// the same limit (`co_await g.async_spawn(...)` per item, each value written into a
// pre-sized vector, then `co_await g.async_wait`).
//
// Benchmarks are named <workload>/<impl>/threads:<t>/N:<n>: workload `int` (an item
// is a coroutine that returns its index) or `yield` (it suspends once first), impl
// `task_group_loop` or `gather`. Both run on the same io_context, in the same process,
// back to back (with CREW_BENCH_GATHER_FIRST set, gather first). Every benchmark
// measures wall time (UseRealTime) and the CPU time of the whole process; the user
// counter `per_item` is seconds per item (so `300n` is 300 ns).
//
#include <crew/gather.hpp>
#include <crew/task_group.hpp>

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;

namespace {

using crew_bench::runner;

constexpr std::size_t limit = 64;

// ---------------------------------------------------------------- items

using item_fn = net::awaitable<int> (*)(int);

net::awaitable<int> int_item(int i) {
  co_return i;
}

net::awaitable<int> yield_item(int i) {
  auto ex = co_await net::this_coro::executor;
  co_await net::post(ex, net::use_awaitable);
  co_return i;
}

void check(std::vector<int> const& results, std::size_t n) {
  if (results.size() != n) throw std::runtime_error("wrong number of results");
  for (std::size_t i = 0; i < n; i += n / 16 + 1)
    if (results[i] != static_cast<int>(i)) throw std::runtime_error("a result is out of place");
}

/// item(0), ..., item(n - 1), each made when dereferenced: what
/// `std::views::iota(0, n) | std::views::transform(item)` is, written out because clang
/// 14 cannot compile libstdc++ 12's views.
struct lazy_items {
  std::size_t n;
  item_fn item;

  struct iterator {
    using value_type = net::awaitable<int>;
    using difference_type = std::ptrdiff_t;
    lazy_items const* r = nullptr;
    std::size_t i = 0;
    net::awaitable<int> operator*() const { return r->item(static_cast<int>(i)); }
    iterator& operator++() {
      ++i;
      return *this;
    }
    void operator++(int) { ++i; }
    bool operator==(std::default_sentinel_t) const { return i == r->n; }
  };

  iterator begin() const { return {this, 0}; }
  std::default_sentinel_t end() const { return {}; }
};

// ---------------------------------------------------------------- drivers

/// The hand-written loop: a task group with the limit, one async_spawn per item (the
/// loop waits for a slot, so at most `limit` frames exist), values by index.
net::awaitable<void> task_group_loop(std::size_t n, item_fn item) {
  auto ex = co_await net::this_coro::executor;
  std::vector<int> results(n);
  crew::task_group_options options{.limit = limit};
  crew::task_group g{ex, options};
  for (std::size_t i = 0; i < n; ++i) {
    auto admitted = g.async_spawn(
        [&results, i, item]() -> net::awaitable<void> {
          results[i] = co_await item(static_cast<int>(i));
        },
        net::use_awaitable);
    co_await std::move(admitted);
  }
  co_await g.async_wait(net::use_awaitable);
  check(results, n);
}

/// async_gather over a lazy view: an item's frame is made when its slot frees.
net::awaitable<void> gather(std::size_t n, item_fn item) {
  auto ex = co_await net::this_coro::executor;
  lazy_items items{n, item};
  crew::gather_options options{.limit = limit};
  auto op = crew::async_gather(ex, items, options, net::use_awaitable);
  std::vector<int> const results = co_await std::move(op);
  check(results, n);
}

// ---------------------------------------------------------------- harness

using driver_fn = net::awaitable<void> (*)(std::size_t, item_fn);

void run_benchmark(benchmark::State& state, unsigned threads, driver_fn driver, item_fn item) {
  auto const n = static_cast<std::size_t>(state.range(0));
  runner r(threads);
  try {
    for (auto _ : state) r.run(driver(n, item));
  } catch (std::exception const& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.counters["per_item"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                     benchmark::Counter::kInvert);
}

/// Registers `workload/task_group_loop/threads:t/N:n` and `workload/gather/threads:t/N:n`
/// next to each other for every N, so that each pair runs back to back.
void add_pair(std::string const& workload, unsigned threads, item_fn item) {
  bool const gather_first = std::getenv("CREW_BENCH_GATHER_FIRST") != nullptr;
  for (std::int64_t n : {1'000, 10'000, 100'000}) {
    for (int i = 0; i < 2; ++i) {
      bool const is_gather = (i == 0) == gather_first;
      auto const name = workload + (is_gather ? "/gather" : "/task_group_loop") +
                        "/threads:" + std::to_string(threads);
      driver_fn const driver = is_gather ? &gather : &task_group_loop;
      benchmark::RegisterBenchmark(
          name.c_str(),
          [=](benchmark::State& state) { run_benchmark(state, threads, driver, item); })
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
    add_pair("int", threads, &int_item);
    add_pair("yield", threads, &yield_item);
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
