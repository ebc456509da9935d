// crew — compile-time benchmark: the same program as asio_only.cpp with
// <crew/crew.hpp> and a crew::task_group.
#include <crew/crew.hpp>

#include <boost/asio.hpp>

#include <cstddef>

namespace net = boost::asio;

net::awaitable<void> job() {
  co_await net::post(co_await net::this_coro::executor, net::use_awaitable);
}

net::awaitable<void> run_all(std::size_t n) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group group{ex};
  for (std::size_t i = 0; i < n; ++i) group.spawn(job());
  co_await group.wait();
}

int main() {
  net::io_context ctx;
  net::co_spawn(ctx, run_all(10), net::detached);
  ctx.run();
}
