// crew — compile-time benchmark: asio_only.cpp's program as the attempt of a
// crew::async_retry whose first attempt fails.
#include <crew/crew.hpp>

#include "asio_program.hpp"

#include <chrono>
#include <stdexcept>

using namespace std::chrono_literals;

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
