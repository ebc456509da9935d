#define BOOST_TEST_MODULE task_group
#include <boost/asio.hpp>
#include <crew/task_group.hpp>
#include "co_test.hpp"
namespace net = boost::asio;
using namespace std::chrono_literals;

CO_TEST_CASE(basic) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  int n = 0;
  for (int i = 0; i < 10; ++i)
    g.spawn([&]() -> net::awaitable<void> {
      ++n;
      co_return;
    });
  g.spawn([&]() -> net::awaitable<void> {
    co_await net::post(co_await net::this_coro::executor, net::use_awaitable);
    ++n;
  });
  co_await g.wait();
  BOOST_TEST(n == 11);
  g.spawn([&]() -> net::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  });
  try {
    co_await g.wait();
    BOOST_FAIL("no throw");
  } catch (crew::task_errors const& e) {
    BOOST_TEST(e.size() == 1u);
    BOOST_TEST_MESSAGE(e.what());
    std::cout << e.first();
  }
  // cancel a sleeper
  g.spawn([&]() -> net::awaitable<void> {
    net::steady_timer t(co_await net::this_coro::executor, 10min);
    co_await t.async_wait(net::use_awaitable);
  });
  g.cancel();
  co_await g.wait();
}
