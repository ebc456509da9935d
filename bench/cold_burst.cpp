//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// One cold burst per process: spawn N tasks, wait for all, report ns per task.
//
//   cold_burst raw|crew noop|yield N
//
// This is DESIGN.md §6's "cold burst": a fresh heap, every frame allocated before the
// first task runs. Google Benchmark's repeated iterations cannot measure it, because a
// burst leaves glibc's heap in a state that changes the cost of the next one.
// bench/cold_burst.py runs it in alternating rounds and prints crew/raw.
//
#include <crew/task_group.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace net = boost::asio;

namespace {

net::awaitable<void> noop_task() {
  co_return;
}

net::awaitable<void> yield_task() {
  auto ex = co_await net::this_coro::executor;
  co_await net::post(ex, net::use_awaitable);
}

using task_fn = net::awaitable<void> (*)();

/// co_spawn plus a counter; the last task wakes the waiter by cancelling its timer.
net::awaitable<void> raw_burst(task_fn task, std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  std::size_t left = n;
  net::steady_timer waiter(ex, net::steady_timer::time_point::max());
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, task(), [&](std::exception_ptr) {
      if (--left == 0) waiter.cancel();
    });
  boost::system::error_code ec;
  if (left > 0) co_await waiter.async_wait(net::redirect_error(net::use_awaitable, ec));
}

net::awaitable<void> crew_burst(task_fn task, std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group group{ex};
  for (std::size_t i = 0; i < n; ++i) group.spawn(task());
  co_await group.wait();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: cold_burst raw|crew noop|yield N\n");
    return 2;
  }
  std::string_view const impl = argv[1], workload = argv[2];
  std::size_t const n = std::strtoull(argv[3], nullptr, 10);
  if ((impl != "raw" && impl != "crew") || (workload != "noop" && workload != "yield") || n == 0) {
    std::fprintf(stderr, "cold_burst: bad arguments '%s' '%s' '%s'\n", argv[1], argv[2], argv[3]);
    return 2;
  }
  task_fn const task = workload == "noop" ? &noop_task : &yield_task;
  net::io_context ctx(1);
  auto const start = std::chrono::steady_clock::now();
  net::co_spawn(ctx, impl == "raw" ? raw_burst(task, n) : crew_burst(task, n), net::detached);
  ctx.run();
  auto const elapsed = std::chrono::steady_clock::now() - start;
  std::printf("%.1f\n",
              std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(n));
  return 0;
}
