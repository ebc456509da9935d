// crew — compile-time benchmark: asio_only.cpp's program as the execute of a managed
// task of a crew::task_manager (kind stop_group), next to a repeat_timer'd task that
// waits; the run ends when the program's task returns.
#include <crew/crew.hpp>

#include "asio_program.hpp"

#include <chrono>

struct jobs {
  net::awaitable<void> initialize() { co_return; }
  net::awaitable<void> execute() { co_await run_all(10); }
  net::awaitable<void> cleanup() { co_return; }
};

struct ticker {
  net::awaitable<void> initialize() { co_return; }
  net::awaitable<void> execute() { co_return; }
  net::awaitable<void> cleanup() { co_return; }
};

net::awaitable<void> manage() {
  crew::task_manager_options options;
  options.name = "app";
  crew::task_manager tm{co_await net::this_coro::executor, options};
  tm.add("jobs", jobs{}, crew::task_kind::stop_group);
  tm.add("ticker", crew::tasks::repeat_timer(std::chrono::hours(1), ticker{}),
         crew::task_kind::strict);
  co_await tm.run();
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, manage(), net::detached);
  ctx.run();
}
