// crew — compile-time benchmark: asio_only.cpp's program as the attempt of a
// crew::async_retry whose first attempt fails.
#include <crew/crew.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <cstddef>
#include <stdexcept>

namespace net = boost::asio;
using namespace std::chrono_literals;

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

net::awaitable<void> run_with_retry() {
  auto ex = co_await net::this_coro::executor;
  crew::retry_options options{.max_attempts = 3,
                              .backoff = crew::exponential_backoff{1ms, 2.0, 10ms, 0.2}};
  auto op = crew::async_retry(
      ex,
      [](crew::retrier& r) -> net::awaitable<void> {
        if (r.iteration() == 1) throw std::runtime_error("not yet");
        co_await run_all(10);
      },
      options, net::use_awaitable);
  co_await std::move(op);
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, run_with_retry(), net::detached);
  ctx.run();
}
