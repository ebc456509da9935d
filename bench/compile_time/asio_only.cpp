// crew — compile-time benchmark: a translation unit that spawns and waits for
// coroutine tasks with Asio alone (co_spawn and a counter). bench/run compiles it
// and one TU per crew component in a shuffled order per round, and reports each
// component's ratio to it.
#include <boost/asio.hpp>

#include <cstddef>

namespace net = boost::asio;

net::awaitable<void> job() {
  co_await net::post(co_await net::this_coro::executor, net::use_awaitable);
}

net::awaitable<void> run_all(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  std::size_t left = n;
  net::steady_timer done(ex, net::steady_timer::time_point::max());
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, job(), [&](std::exception_ptr) {
      if (--left == 0) done.cancel();
    });
  boost::system::error_code ec;
  if (left > 0) co_await done.async_wait(net::redirect_error(net::use_awaitable, ec));
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, run_all(10), net::detached);
  ctx.run();
}
