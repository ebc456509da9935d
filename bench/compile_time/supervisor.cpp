// crew — compile-time benchmark: asio_only.cpp's program as a transient child of a
// crew::supervisor, next to a permanent child that waits; the first child cancels the
// supervisor once its jobs are done.
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
