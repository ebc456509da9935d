//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// CO_TEST_CASE(name) { ... co_await ... }: a Boost.Test case whose body is a
// coroutine run on a fresh io_context; an exception escaping the body fails the test,
// and so does a body that never finishes (the context runs out of work).
// CO_TEST_CASE_MT(name, threads) runs the context on that many threads.
//
// Built with CREW_TEST_ON_IO_POOL=1, the body runs instead on the executor of a fresh
// crew::io_pool of max(threads, 2) contexts (the multi-core option), which is stopped
// when the body ends; a watchdog stops it and fails the test if the body has not ended
// within CREW_TEST_POOL_WATCHDOG_SECONDS (an io_pool does not run out of work).
// `co_await crew_test::executor()` is the executor a test makes its groups on: the
// pool's under CREW_TEST_ON_IO_POOL, else the coroutine's own.
//
#ifndef CREW_TEST_CO_TEST_HPP
#define CREW_TEST_CO_TEST_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <exception>
#include <thread>
#include <vector>

#if CREW_TEST_ON_IO_POOL
#include <crew/io_pool.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#ifndef CREW_TEST_POOL_WATCHDOG_SECONDS
// Below the cases' Boost.Test timeout (120 s), whose SIGALRM may land on any thread.
#define CREW_TEST_POOL_WATCHDOG_SECONDS 100
#endif
#endif

namespace crew_test {

#if CREW_TEST_ON_IO_POOL

/// Whether the tests run on an io_pool (CREW_TEST_ON_IO_POOL).
inline constexpr bool on_io_pool = true;

namespace detail {
/// The pool the running test case's body runs on.
inline crew::io_pool* current_pool = nullptr;
}  // namespace detail

/// The executor of the pool the test case's body runs on: groups made on it spread
/// their tasks over the pool's contexts.
inline boost::asio::awaitable<boost::asio::any_io_executor> executor() {
  BOOST_REQUIRE_MESSAGE(detail::current_pool, "crew_test::executor() outside a CO_TEST_CASE");
  co_return detail::current_pool->get_executor();
}

/// Returns once every context of the pool ran, three times over, what it had queued:
/// work another thread was still finishing when the caller saw a task end (the release
/// of a group's state, a report from its destructor) is then done.
inline boost::asio::awaitable<void> settle() {
  BOOST_REQUIRE_MESSAGE(detail::current_pool, "crew_test::settle() outside a CO_TEST_CASE");
  crew::io_pool& pool = *detail::current_pool;
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < pool.size(); ++i)
      co_await boost::asio::post(pool.context(i), boost::asio::use_awaitable);
}

/// Two threads that run in the background while a test spawns from threads of its own:
/// a 2-context crew::io_pool here (a net::thread_pool(2) without CREW_TEST_ON_IO_POOL).
class background_threads {
 public:
  background_threads() : pool_(2), runner_([this] { pool_.run(); }) {}
  ~background_threads() { join(); }
  background_threads(background_threads const&) = delete;
  background_threads& operator=(background_threads const&) = delete;

  boost::asio::any_io_executor get_executor() { return pool_.get_executor(); }

  /// Once the test's work is done: stops the pool and joins its threads.
  void join() {
    if (!runner_.joinable()) return;
    pool_.stop();
    runner_.join();
  }

 private:
  crew::io_pool pool_;
  std::thread runner_;
};

/// Stops `pool` if it still runs `seconds` after it was made; says whether it did.
class watchdog {
 public:
  watchdog(crew::io_pool& pool, int seconds)
      : thread_([this, &pool, seconds] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, std::chrono::seconds(seconds), [&] { return done_; })) {
            fired_ = true;
            pool.stop();
          }
        }) {}
  ~watchdog() { disarm(); }
  watchdog(watchdog const&) = delete;
  watchdog& operator=(watchdog const&) = delete;

  /// Ends the watch; whether the watchdog had stopped the pool.
  bool disarm() {
    if (thread_.joinable()) {
      {
        std::lock_guard lock(mutex_);
        done_ = true;
      }
      cv_.notify_one();
      thread_.join();
    }
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: it uses the members above
};

inline void run_coroutine(boost::asio::awaitable<void> (*body)(), unsigned threads) {
  crew::io_pool pool(std::max(threads, 2u));
  struct current {
    explicit current(crew::io_pool& p) { detail::current_pool = &p; }
    ~current() { detail::current_pool = nullptr; }
  } set_current(pool);
  // Written by the completion handler on a pool thread; read once run() joined them.
  std::exception_ptr failure;
  bool done = false;
  boost::asio::co_spawn(pool.get_executor(), body(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
    pool.stop();
  });
  watchdog dog(pool, CREW_TEST_POOL_WATCHDOG_SECONDS);
  pool.run();
  bool const fired = dog.disarm();
  BOOST_REQUIRE_MESSAGE(done,
                        "the test coroutine never finished"
                            << (fired ? " (the watchdog stopped the pool after " +
                                            std::to_string(CREW_TEST_POOL_WATCHDOG_SECONDS) + " s)"
                                      : std::string()));
  if (failure) std::rethrow_exception(failure);
}

#else

/// Whether the tests run on an io_pool (CREW_TEST_ON_IO_POOL).
inline constexpr bool on_io_pool = false;

/// The coroutine's executor, which the test makes its groups on.
inline boost::asio::awaitable<boost::asio::any_io_executor> executor() {
  co_return co_await boost::asio::this_coro::executor;
}

/// On one io_context, nothing is left to settle.
inline boost::asio::awaitable<void> settle() {
  co_return;
}

/// Two threads that run in the background while a test spawns from threads of its own.
class background_threads {
 public:
  boost::asio::any_io_executor get_executor() { return pool_.get_executor(); }
  /// Once the test's work is done: waits for the pool's work and joins its threads.
  void join() { pool_.join(); }

 private:
  boost::asio::thread_pool pool_{2};
};

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

#endif

}  // namespace crew_test

#define CO_TEST_CASE_MT(name, threads)                            \
  static ::boost::asio::awaitable<void> name##_body();            \
  BOOST_AUTO_TEST_CASE(name, *::boost::unit_test::timeout(120)) { \
    ::crew_test::run_coroutine(&name##_body, threads);            \
  }                                                               \
  static ::boost::asio::awaitable<void> name##_body()

#define CO_TEST_CASE(name) CO_TEST_CASE_MT(name, 1)

#endif
