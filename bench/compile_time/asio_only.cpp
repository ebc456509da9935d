// crew — compile-time benchmark: a translation unit that spawns and waits for
// coroutine tasks with Asio alone (co_spawn and a counter). bench/run compiles it
// and one TU per crew component in a shuffled order per round, and reports each
// component's ratio to it.
#include "asio_program.hpp"

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, run_all(10), net::detached);
  ctx.run();
}
