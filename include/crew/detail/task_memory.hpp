//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task layer's memory. A task's node, its entry frame, the operation that starts
// it and its cancellation signal come from free lists crew owns, recycled from one
// burst of tasks to the next instead of going back to malloc. See docs/internals.md,
// "Task memory".
//
#ifndef CREW_DETAIL_TASK_MEMORY_HPP
#define CREW_DETAIL_TASK_MEMORY_HPP

#include <boost/asio/cancellation_signal.hpp>

#include <cstddef>
#include <new>

namespace crew::detail {

/// A block of at least `size` bytes, aligned for any fundamental type.
void* task_memory_allocate(std::size_t size);

/// Gives back a block task_memory_allocate made with the same `size`, on any thread.
void task_memory_deallocate(void* p, std::size_t size) noexcept;

/// A standard allocator over task_memory_allocate.
template <class T>
class task_allocator {
 public:
  using value_type = T;

  task_allocator() noexcept = default;
  template <class U>
  task_allocator(task_allocator<U> const&) noexcept {}

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= alignof(std::max_align_t));
    return static_cast<T*>(task_memory_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { task_memory_deallocate(p, n * sizeof(T)); }

  template <class U>
  bool operator==(task_allocator<U> const&) const noexcept {
    return true;
  }
};

struct signal_block;

/** A task's cancellation signal, recycled with the memory of the handler its last task
    installed: a slot reuses that memory for the next handler, so a recycled signal
    costs no allocation. */
class recycled_signal {
 public:
  recycled_signal();
  ~recycled_signal();
  recycled_signal(recycled_signal const&) = delete;
  recycled_signal& operator=(recycled_signal const&) = delete;

  boost::asio::cancellation_signal& get() const noexcept;

 private:
  signal_block* b_;
};

/// The default of runtime::set_task_memory_limit.
inline constexpr std::size_t default_task_memory_limit = std::size_t{1} << 30;

/// The most the shared free lists keep from now on; gives back what they keep now.
void set_task_memory_limit(std::size_t bytes) noexcept;

/// What the task memory holds now, over every thread: for tests and diagnostics.
struct task_memory_stats {
  std::size_t cached_bytes = 0;  ///< shared and this thread's free lists
  std::size_t limit_bytes = 0;   ///< the most the shared free lists keep
};
task_memory_stats get_task_memory_stats() noexcept;

}  // namespace crew::detail

#endif
