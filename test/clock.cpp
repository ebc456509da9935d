//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE crew_clock
#include <crew/clock.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(manual_waits_complete_in_deadline_order_when_advanced) {
  net::io_context ctx;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<int> order;
  clk.async_wait_for(ctx.get_executor(), 3s, [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    order.push_back(3);
  });
  clk.async_wait_for(ctx.get_executor(), 1s, [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    order.push_back(1);
  });
  clk.async_wait_until(ctx.get_executor(), t0 - 1s, [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);  // already due: completes, but never inside the call
    order.push_back(0);
  });
  BOOST_TEST(order.empty());
  BOOST_TEST(clk.pending() == 2u);
  BOOST_TEST((clk.next_deadline() == t0 + 1s));
  ctx.poll();
  BOOST_TEST(order == std::vector<int>({0}));
  clk.advance(500ms);
  ctx.poll();
  BOOST_TEST(order.size() == 1u);
  clk.advance(5s);
  ctx.poll();
  BOOST_TEST(order == std::vector<int>({0, 1, 3}));
  BOOST_TEST((clk.now() == t0 + 5500ms));
  BOOST_TEST(!clk.advance_to_next());
  BOOST_CHECK_THROW(clk.advance(-1s), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(advance_to_next_jumps_to_the_earliest_deadline) {
  net::io_context ctx;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  int done = 0;
  clk.async_wait_for(ctx.get_executor(), 2s, [&](boost::system::error_code) { ++done; });
  clk.async_wait_for(ctx.get_executor(), 7s, [&](boost::system::error_code) { ++done; });
  BOOST_TEST(clk.advance_to_next());
  ctx.poll();
  BOOST_TEST(done == 1);
  BOOST_TEST((clk.now() == t0 + 2s));
  BOOST_TEST(clk.advance_to_next());
  ctx.poll();
  BOOST_TEST(done == 2);
  BOOST_TEST((clk.now() == t0 + 7s));
}

BOOST_AUTO_TEST_CASE(a_pending_manual_wait_keeps_the_context_busy) {
  net::io_context ctx;
  crew::manual_clock clk;
  bool done = false;
  clk.async_wait_for(ctx.get_executor(), 1s, [&](boost::system::error_code) { done = true; });
  std::thread t([&] { ctx.run(); });  // would return at once without tracked work
  while (clk.pending() == 0) std::this_thread::yield();
  clk.advance(1s);
  t.join();
  BOOST_TEST(done);
}

BOOST_AUTO_TEST_CASE(cancelling_a_manual_wait_aborts_it_at_once) {
  net::io_context ctx;
  crew::manual_clock clk;
  net::cancellation_signal sig;
  boost::system::error_code result;
  clk.async_wait_for(
      ctx.get_executor(), 1h,
      net::bind_cancellation_slot(sig.slot(), [&](boost::system::error_code ec) { result = ec; }));
  sig.emit(net::cancellation_type::terminal);
  ctx.poll();
  BOOST_TEST((result == net::error::operation_aborted));
  BOOST_TEST(clk.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(destroying_the_clock_aborts_pending_waits) {
  net::io_context ctx;
  boost::system::error_code result;
  {
    crew::manual_clock clk;
    clk.async_wait_for(ctx.get_executor(), 1h, [&](boost::system::error_code ec) { result = ec; });
  }
  ctx.run();
  BOOST_TEST((result == net::error::operation_aborted));
}

CO_TEST_CASE(manual_clock_with_use_awaitable_and_use_future) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto fut = clk.async_wait_for(ex, 2s, net::use_future);
  auto op = clk.async_wait_for(ex, 1s, net::use_awaitable);
  clk.advance(2s);
  co_await std::move(op);
  co_await crew_test::yield_once();
  BOOST_TEST((fut.wait_for(0s) == std::future_status::ready));
  fut.get();
}

CO_TEST_CASE(the_steady_clock_waits_on_a_real_timer) {
  auto ex = co_await net::this_coro::executor;
  auto& clk = crew::clock::steady();
  auto const before = clk.now();
  co_await clk.async_wait_for(ex, 1ms, net::use_awaitable);
  BOOST_TEST((clk.now() >= before + 1ms));
  // Cancellation aborts the wait at once.
  using namespace net::experimental::awaitable_operators;
  auto op = clk.async_wait_for(ex, 1h, net::as_tuple(net::use_awaitable));
  auto r = co_await (std::move(op) || crew_test::yield_once());
  BOOST_TEST(r.index() == 1u);
}

// ---------------------------------------------------------------- the end of time

BOOST_AUTO_TEST_CASE(advancing_a_manual_clock_by_duration_max_stops_at_the_end_of_time) {
  using time_point = crew::clock::time_point;
  using duration = crew::clock::duration;
  crew::manual_clock clk;
  clk.advance(duration::max());  // used to wrap now() around to a negative time
  BOOST_TEST((clk.now() == time_point::max()));
  clk.advance(duration::max());
  BOOST_TEST((clk.now() == time_point::max()));
  clk.advance(1ns);
  BOOST_TEST((clk.now() == time_point::max()));
  crew::manual_clock late{time_point::max() - 1s};
  late.advance(2s);
  BOOST_TEST((late.now() == time_point::max()));
}

BOOST_AUTO_TEST_CASE(a_manual_wait_for_duration_max_is_due_only_at_the_end_of_time) {
  using time_point = crew::clock::time_point;
  using duration = crew::clock::duration;
  net::io_context ctx;
  crew::manual_clock clk;
  std::vector<int> done;
  clk.async_wait_for(ctx.get_executor(), duration::max(), [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    done.push_back(1);
  });
  clk.async_wait_for(ctx.get_executor(), duration::max() - 1ns, [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    done.push_back(2);
  });
  ctx.poll();
  BOOST_TEST(done.empty());  // used to be due at once: now() + d overflowed
  BOOST_TEST(clk.pending() == 2u);
  BOOST_TEST((clk.next_deadline() == time_point::max()));
  clk.advance(24h * 365 * 200);
  ctx.poll();
  BOOST_TEST(done.empty());
  clk.advance(duration::max());  // reaches time_point::max(): both are due now
  ctx.poll();
  BOOST_TEST(done == std::vector<int>({1, 2}));
  BOOST_TEST(clk.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(a_manual_wait_for_a_hugely_negative_duration_is_due_at_once) {
  using time_point = crew::clock::time_point;
  using duration = crew::clock::duration;
  net::io_context ctx;
  crew::manual_clock clk{time_point(-1h)};
  int done = 0;
  clk.async_wait_for(ctx.get_executor(), duration::min(), [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    ++done;
  });
  clk.async_wait_for(ctx.get_executor(), duration::min() + 1ns, [&](boost::system::error_code ec) {
    BOOST_TEST(!ec);
    ++done;
  });
  BOOST_TEST(clk.pending() == 0u);
  ctx.poll();
  BOOST_TEST(done == 2);
}

CO_TEST_CASE(a_steady_wait_for_duration_max_never_completes_until_cancelled) {
  auto ex = co_await net::this_coro::executor;
  auto& clk = crew::clock::steady();
  using namespace net::experimental::awaitable_operators;
  for (auto const d : {crew::clock::duration::max(), crew::clock::duration::max() - 1ns}) {
    auto op = clk.async_wait_for(ex, d, net::as_tuple(net::use_awaitable));
    // The timer used to expire at once, its deadline having wrapped into the past.
    auto r = co_await (std::move(op) || crew_test::yield_n(100));
    BOOST_TEST(r.index() == 1u);
  }
}

BOOST_AUTO_TEST_CASE(a_negative_advance_is_refused_with_the_value_as_a_person_reads_it) {
  crew::manual_clock clk;
  BOOST_CHECK_EXCEPTION(
      clk.advance(-1500ms), std::invalid_argument, [](std::invalid_argument const& e) {
        BOOST_TEST_INFO(e.what());
        return std::string(e.what()) == "crew::manual_clock::advance: d is negative (-1.5 s)";
      });
}

BOOST_AUTO_TEST_CASE(manual_clock_wall_time_moves_with_its_steady_time) {
  using sys = std::chrono::system_clock;
  auto const start = sys::time_point(std::chrono::seconds(1767225600));  // 2026-01-01
  crew::manual_clock clk(crew::clock::time_point(std::chrono::hours(1)), start);
  BOOST_TEST((clk.system_now() == start));
  clk.advance(std::chrono::hours(24 * 31));
  BOOST_TEST((clk.system_now() == start + std::chrono::hours(24 * 31)));
  clk.advance(crew::clock::duration::max());  // saturates, as the steady time does
  BOOST_TEST((clk.system_now() == sys::time_point::max()));
  crew::manual_clock epoch;
  BOOST_TEST((epoch.system_now() == sys::time_point{}));
  // The steady clock's wall time is the system clock's.
  auto const before = sys::now();
  auto const now = crew::clock::steady().system_now();
  BOOST_TEST((now >= before && now <= sys::now()));
}
