//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// What the benchmark suites share.
//
#ifndef CREW_BENCH_BENCH_UTIL_HPP
#define CREW_BENCH_BENCH_UTIL_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <semaphore>
#include <thread>
#include <utility>
#include <vector>

namespace crew_bench {

namespace net = boost::asio;

/// A completion handler waiting to be posted through its associated executor, as
/// crew's wait does. Type-erased once per wait, never per task.
class pending_handler {
 public:
  template <class Handler>
  pending_handler(Handler&& h, net::any_io_executor const& io_ex)
      : ex_(net::get_associated_executor(h, io_ex)), handler_(std::forward<Handler>(h)) {}

  // Move-construct only: move-assigning an any_completion_handler recurses in Asio 1.26.
  pending_handler(pending_handler&&) = default;
  pending_handler& operator=(pending_handler&&) = delete;

  explicit operator bool() const noexcept { return static_cast<bool>(handler_); }

  void post() && { net::post(ex_, std::move(handler_)); }

 private:
  net::any_io_executor ex_;
  net::any_completion_handler<void()> handler_;
};

// ---------------------------------------------------------------- raw Asio helpers

struct null_mutex {
  void lock() noexcept {}
  void unlock() noexcept {}
};

/// Plain counter and no lock: everything runs on the one io thread.
struct one_thread {
  using counter = std::size_t;
  using mutex = null_mutex;
  static bool last(counter& c) noexcept { return --c == 0; }
};

/// Atomic counter, and a mutex for the stored handler only.
struct two_threads {
  using counter = std::atomic<std::size_t>;
  using mutex = std::mutex;
  static bool last(counter& c) noexcept { return c.fetch_sub(1, std::memory_order_acq_rel) == 1; }
};

/// Counts the tasks down; the last one resumes the (single) waiter.
template <class Sync>
class latch {
 public:
  latch(std::size_t n, net::any_io_executor ex) : count_(n), ex_(std::move(ex)) {
    if (n == 0) open_ = true;
  }

  void arrive(std::exception_ptr const& e) {
    if (e) {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = e;
    }
    if (Sync::last(count_)) open();
  }

  template <class Token>
  auto async_wait(Token&& token) {
    return net::async_initiate<Token, void()>(
        [this](auto handler) {
          pending_handler h(std::move(handler), ex_);
          {
            std::lock_guard lock(mutex_);
            if (!open_) {
              waiter_.emplace(std::move(h));
              return;
            }
          }
          std::move(h).post();
        },
        token);
  }

  std::exception_ptr failure() const { return failure_; }

 private:
  void open() {
    std::optional<pending_handler> w;
    {
      std::lock_guard lock(mutex_);
      open_ = true;
      if (waiter_) {
        w.emplace(std::move(*waiter_));
        waiter_.reset();
      }
    }
    if (w) std::move(*w).post();
  }

  typename Sync::counter count_;
  net::any_io_executor ex_;
  typename Sync::mutex mutex_;
  bool open_ = false;
  std::optional<pending_handler> waiter_;
  std::exception_ptr failure_;
};

/// A counting semaphore for one acquiring coroutine: `try_acquire` on the fast path,
/// `async_acquire` (resumed by a release that hands its slot over) otherwise.
template <class Sync>
class semaphore {
 public:
  semaphore(std::size_t slots, net::any_io_executor ex) : free_(slots), ex_(std::move(ex)) {}

  bool try_acquire() {
    std::lock_guard lock(mutex_);
    if (free_ == 0) return false;
    --free_;
    return true;
  }

  template <class Token>
  auto async_acquire(Token&& token) {
    return net::async_initiate<Token, void()>(
        [this](auto handler) {
          pending_handler h(std::move(handler), ex_);
          {
            std::lock_guard lock(mutex_);
            if (free_ == 0) {
              waiter_.emplace(std::move(h));
              return;
            }
            --free_;  // a slot was released meanwhile (2 threads)
          }
          std::move(h).post();
        },
        token);
  }

  void release() {
    std::optional<pending_handler> w;
    {
      std::lock_guard lock(mutex_);
      if (!waiter_) {
        ++free_;
        return;
      }
      w.emplace(std::move(*waiter_));  // the slot goes to the waiter
      waiter_.reset();
    }
    std::move(*w).post();
  }

 private:
  std::size_t free_;
  net::any_io_executor ex_;
  typename Sync::mutex mutex_;
  std::optional<pending_handler> waiter_;
};

// ---------------------------------------------------------------- harness

/// An io_context run by the benchmark thread (1 thread) or by helper threads that
/// live as long as the benchmark (more threads).
class runner {
 public:
  explicit runner(unsigned threads) : ctx_(static_cast<int>(threads)) {
    if (threads > 1) {
      work_.emplace(ctx_.get_executor());
      for (unsigned i = 0; i < threads; ++i) pool_.emplace_back([this] { ctx_.run(); });
    }
  }

  runner(runner const&) = delete;
  runner& operator=(runner const&) = delete;

  ~runner() {
    work_.reset();
    for (auto& t : pool_) t.join();
  }

  /// Runs one driver coroutine to its end; rethrows what escaped it.
  void run(net::awaitable<void> driver) {
    std::exception_ptr error;
    if (pool_.empty()) {
      ctx_.restart();
      net::co_spawn(ctx_, std::move(driver), [&error](std::exception_ptr e) { error = e; });
      ctx_.run();
    } else {
      std::binary_semaphore done{0};
      net::co_spawn(ctx_, std::move(driver), [&error, &done](std::exception_ptr e) {
        error = e;
        done.release();
      });
      done.acquire();
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  net::io_context ctx_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> pool_;
};

}  // namespace crew_bench

#endif
