// crew — compile-time benchmark: asio_only.cpp's program as one actor of a
// crew::run_group, next to an actor that waits until the run is interrupted.
#include <crew/crew.hpp>

#include "asio_program.hpp"

#include <chrono>

net::awaitable<void> idle() {
  net::steady_timer t(co_await net::this_coro::executor, std::chrono::hours(1));
  co_await t.async_wait(net::use_awaitable);
}

net::awaitable<void> run_actors() {
  crew::run_group rg{co_await net::this_coro::executor};
  rg.add(crew::execute([] { return run_all(10); }), crew::name("jobs"));
  rg.add(crew::execute(idle), crew::name("idle"));
  co_await rg.run();
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, run_actors(), net::detached);
  ctx.run();
}
