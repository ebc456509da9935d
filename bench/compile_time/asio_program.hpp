// crew — compile-time benchmark: the program every TU here compiles, with Asio alone:
// spawn n coroutine tasks with co_spawn and wait for them with a counter. asio_only.cpp
// is just this; each component's TU runs it inside that component.
#ifndef CREW_BENCH_COMPILE_TIME_ASIO_PROGRAM_HPP
#define CREW_BENCH_COMPILE_TIME_ASIO_PROGRAM_HPP

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

#endif
