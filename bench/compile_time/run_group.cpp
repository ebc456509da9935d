// crew — compile-time benchmark: asio_only.cpp's program as one actor of a
// crew::run_group, next to an actor that waits until the run is interrupted.
#include <crew/crew.hpp>

#include <boost/asio.hpp>

#include <chrono>
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
