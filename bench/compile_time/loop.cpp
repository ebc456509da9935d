// crew — compile-time benchmark: asio_only.cpp's program as the actor of a
// crew::loop, stopped after its third iteration.
#include <crew/crew.hpp>

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
