//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The cost of crew's throw-site traces (an interposed __cxa_throw that records the
// throwing thread's frames), and of failing tasks.
//
//   throw_catch/traces:<on|off>   one throw + catch of a std::runtime_error from a
//                                 function 10 frames below the catch
//   fail<P>/<impl>[/traces:<on|off>]/N:<n>
//                                 spawn + wait of N no-op tasks of which P% throw
//                                 (from 10 frames down); crew::task_group against
//                                 raw co_spawn whose handler keeps the exception_ptr
//
// With traces on, the raw side pays for the capture too (the hook is process-wide);
// only crew reads the trace back into its task_failure. Everything runs on one thread.
// Time is wall time; the user counter `per_task` is seconds per task.
//
#include <crew/task_group.hpp>

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace net = boost::asio;

namespace {

using crew_bench::pending_handler;

// ---------------------------------------------------------------- the thrower

/// Throws from `Depth` frames below its caller (each level a distinct function).
template <int Depth>
[[gnu::noinline]] int deep_throw(int x) {
  if constexpr (Depth <= 1) {
    if (x >= 0) throw std::runtime_error("bench failure");
    return x;
  } else {
    int r = deep_throw<Depth - 1>(x + 1);
    benchmark::DoNotOptimize(r);  // no tail call: every level keeps its frame
    return r;
  }
}

constexpr int depth = 10;

/// Restores the process-wide setting when a benchmark ends.
class traces_scope {
 public:
  explicit traces_scope(bool on) : saved_(crew::throw_site_traces()) {
    crew::set_throw_site_traces(on);
  }
  traces_scope(traces_scope const&) = delete;
  traces_scope& operator=(traces_scope const&) = delete;
  ~traces_scope() { crew::set_throw_site_traces(saved_); }

 private:
  bool saved_;
};

void throw_catch(benchmark::State& state, bool traces) {
  traces_scope scope(traces);
  int x = 0;
  for (auto _ : state) {
    try {
      x = deep_throw<depth>(x & 1);
    } catch (std::runtime_error const& e) {
      benchmark::DoNotOptimize(e.what());
    }
  }
  benchmark::DoNotOptimize(x);
}

// ---------------------------------------------------------------- failing tasks

net::awaitable<void> maybe_failing_task(bool fail) {
  if (fail) deep_throw<depth>(0);
  co_return;
}

bool fails(std::size_t i, unsigned percent) {
  return percent != 0 && i % (100 / percent) == 0;
}

std::size_t expected_failures(std::size_t n, unsigned percent) {
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) k += fails(i, percent) ? 1 : 0;
  return k;
}

/// One thread: counts the tasks down, keeps every exception, resumes the waiter.
class latch {
 public:
  latch(std::size_t n, net::any_io_executor ex) : count_(n), ex_(std::move(ex)) {}

  void arrive(std::exception_ptr e) {
    if (e) failures_.push_back(std::move(e));
    if (--count_ == 0 && waiter_) {
      pending_handler w(std::move(*waiter_));
      waiter_.reset();
      std::move(w).post();
    }
  }

  template <class Token>
  auto async_wait(Token&& token) {
    return net::async_initiate<Token, void()>(
        [this](auto handler) {
          pending_handler h(std::move(handler), ex_);
          if (count_ == 0)
            std::move(h).post();
          else
            waiter_.emplace(std::move(h));
        },
        token);
  }

  std::vector<std::exception_ptr> const& failures() const noexcept { return failures_; }

 private:
  std::size_t count_;
  net::any_io_executor ex_;
  std::optional<pending_handler> waiter_;
  std::vector<std::exception_ptr> failures_;
};

net::awaitable<std::size_t> raw_failing(std::size_t n, unsigned percent) {
  auto ex = co_await net::this_coro::executor;
  latch done(n, ex);
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, maybe_failing_task(fails(i, percent)),
                  [&done](std::exception_ptr e) { done.arrive(std::move(e)); });
  co_await done.async_wait(net::use_awaitable);
  co_return done.failures().size();
}

net::awaitable<std::size_t> crew_failing(std::size_t n, unsigned percent) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  for (std::size_t i = 0; i < n; ++i) g.spawn(maybe_failing_task(fails(i, percent)));
  std::size_t failed = 0;
  try {
    co_await g.wait();
  } catch (crew::task_errors const& e) {
    failed = e.size();
  }
  co_return failed;
}

using driver_fn = net::awaitable<std::size_t> (*)(std::size_t, unsigned);

void failing_tasks(benchmark::State& state, driver_fn driver, unsigned percent, bool traces) {
  traces_scope scope(traces);
  auto const n = static_cast<std::size_t>(state.range(0));
  auto const expected = expected_failures(n, percent);
  net::io_context ctx(1);
  for (auto _ : state) {
    std::exception_ptr error;
    std::size_t failed = 0;
    ctx.restart();
    net::co_spawn(ctx, driver(n, percent), [&](std::exception_ptr e, std::size_t k) {
      error = e;
      failed = k;
    });
    ctx.run();
    if (error || failed != expected) {
      state.SkipWithError("unexpected outcome: wrong failure count or escaped exception");
      return;
    }
  }
  state.counters["per_task"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                     benchmark::Counter::kInvert);
}

void register_benchmarks() {
  for (bool traces : {true, false}) {
    std::string const t = traces ? "on" : "off";
    benchmark::RegisterBenchmark(("throw_catch/traces:" + t).c_str(), throw_catch, traces)
        ->UseRealTime()
        ->Unit(benchmark::kNanosecond);
  }
  struct variant {
    unsigned percent;
    bool traces;
    char const* suffix;
  };
  // No task throws in fail0, so the traces setting does not matter there. Each raw/crew
  // pair runs back to back; with CREW_BENCH_CREW_FIRST set in the environment, crew
  // runs first (bench/ratios.py alternates the order).
  bool const crew_first = std::getenv("CREW_BENCH_CREW_FIRST") != nullptr;
  for (variant v :
       {variant{0, true, ""}, variant{10, true, "/traces:on"}, variant{10, false, "/traces:off"}}) {
    for (std::int64_t n : {1'000, 10'000}) {
      for (int i = 0; i < 2; ++i) {
        bool const is_crew = (i == 0) == crew_first;
        auto const name =
            "fail" + std::to_string(v.percent) + (is_crew ? "/crew" : "/raw") + v.suffix;
        benchmark::RegisterBenchmark(name.c_str(), failing_tasks,
                                     is_crew ? &crew_failing : &raw_failing, v.percent, v.traces)
            ->ArgName("N")
            ->Arg(n)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
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
