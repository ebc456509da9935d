//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The io_pool's placement of crew tasks, used by the task layer (lib/task.cpp):
// make_task asks where a new task goes (place), and a pool task's start asks whether
// the pool hands it over in a batch (take_start). See docs/internals.md, "io_pool".
//
#ifndef CREW_DETAIL_IO_POOL_HPP
#define CREW_DETAIL_IO_POOL_HPP

#include <crew/config.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace crew::detail {

class task_node;

class io_pool_impl {
 public:
  explicit io_pool_impl(std::size_t threads);
  ~io_pool_impl();

  std::size_t size() const noexcept { return contexts_.size(); }
  net::io_context& context(std::size_t i) noexcept { return *contexts_[i]; }

  /// The context a new task goes to.
  std::size_t place() noexcept;

  /// Takes the start of `n`, a task placed on context `k`, into a batch for that
  /// context: true if it did; false if the caller posts it as usual (the caller runs
  /// context `k`, or no context of this pool).
  bool take_start(task_node* n, std::size_t k) noexcept;

  /// The context that work executed on the pool's executor goes to now.
  net::io_context& target() noexcept;
  net::io_context& caller_context() noexcept;

  void run();
  void stop() noexcept;
  bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
  void restart();

  /// A pool thread's placement state (lib/io_pool.cpp).
  struct thread_state;

 private:
  class context_type;
  void run_context(std::size_t i);

  std::vector<std::unique_ptr<net::io_context>> contexts_;  // each a context_type
  std::atomic<std::size_t> cursor_{0};
  std::atomic<bool> stopped_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  bool running_ = false;
};

}  // namespace crew::detail

#endif
