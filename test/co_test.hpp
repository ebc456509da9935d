//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// CO_TEST_CASE(name) { ... co_await ... }: a Boost.Test case whose body is a
// coroutine run on a fresh io_context; an exception escaping the body fails the test,
// and so does a body that never finishes (the context runs out of work).
// CO_TEST_CASE_MT(name, threads) runs the context on that many threads.
//
#ifndef CREW_TEST_CO_TEST_HPP
#define CREW_TEST_CO_TEST_HPP

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <exception>
#include <thread>
#include <vector>

namespace crew_test {

inline void run_coroutine(boost::asio::awaitable<void> (*body)(), unsigned threads) {
  boost::asio::io_context ctx(static_cast<int>(threads));
  std::exception_ptr failure;
  bool done = false;
  boost::asio::co_spawn(ctx, body(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&] { ctx.run(); });
  ctx.run();
  for (auto& t : pool) t.join();
  BOOST_REQUIRE_MESSAGE(done, "the test coroutine never finished");
  if (failure) std::rethrow_exception(failure);
}

}  // namespace crew_test

#define CO_TEST_CASE_MT(name, threads)                            \
  static ::boost::asio::awaitable<void> name##_body();            \
  BOOST_AUTO_TEST_CASE(name, *::boost::unit_test::timeout(120)) { \
    ::crew_test::run_coroutine(&name##_body, threads);            \
  }                                                               \
  static ::boost::asio::awaitable<void> name##_body()

#define CO_TEST_CASE(name) CO_TEST_CASE_MT(name, 1)

#endif
