// crew — compile-time benchmark: asio_only.cpp's program as a transient child of a
// crew::supervisor, next to a permanent child that waits; the first child cancels the
// supervisor once its jobs are done.
#include <crew/crew.hpp>

#include "asio_program.hpp"

#include <chrono>

net::awaitable<void> idle() {
  net::steady_timer t(co_await net::this_coro::executor, std::chrono::hours(1));
  co_await t.async_wait(net::use_awaitable);
}

net::awaitable<void> supervise() {
  crew::supervisor_options options;
  options.intensity = 5;
  options.name = "app";
  crew::supervisor sup{co_await net::this_coro::executor, options};
  crew::child_options transient;
  transient.restart = crew::restart::transient;
  sup.add(
      "jobs",
      [&sup]() -> net::awaitable<void> {
        co_await run_all(10);
        sup.cancel();
      },
      transient);
  sup.add("idle", [] { return idle(); });
  try {
    co_await sup.run();
  } catch (boost::system::system_error const& e) {
    if (e.code() != net::error::operation_aborted) throw;
  }
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, supervise(), net::detached);
  ctx.run();
}
