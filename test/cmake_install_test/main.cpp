// A program outside crew's tree, built against an installed crew.
#include <crew/crew.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <cstdio>
#include <stdexcept>

namespace net = boost::asio;

int main() {
  net::io_context ctx;
  int ran = 0;
  bool failed_as_expected = false;
  net::co_spawn(
      ctx,
      [&]() -> net::awaitable<void> {
        auto ex = co_await net::this_coro::executor;
        crew::task_group group{ex};
        for (int i = 0; i < 3; ++i)
          group.spawn([&]() -> net::awaitable<void> {
            ++ran;
            co_return;
          });
        group.spawn([]() -> net::awaitable<void> {
          throw std::runtime_error("expected");
          co_return;
        });
        try {
          co_await group.wait();
        } catch (crew::task_errors const& e) {
          failed_as_expected = e.size() == 1 && !e.first().trace.empty();
        }
      },
      net::detached);
  ctx.run();
  std::printf("consumer: %d tasks ran, failure recorded with trace: %s\n", ran,
              failed_as_expected ? "yes" : "no");
  return ran == 3 && failed_as_expected ? 0 : 1;
}
