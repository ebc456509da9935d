// crew — compile-time benchmark: asio_only.cpp's program as the actor of a
// crew::loop, stopped after its third iteration.
#include <crew/crew.hpp>

#include "asio_program.hpp"

net::awaitable<void> run_loop() {
  crew::loop workers{co_await net::this_coro::executor};
  int iterations = 0;
  workers.add(crew::execute([&]() -> net::awaitable<void> {
                co_await run_all(10);
                if (++iterations == 3) workers.stop();
              }),
              crew::name("jobs"));
  co_await workers.run();
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, run_loop(), net::detached);
  ctx.run();
}
