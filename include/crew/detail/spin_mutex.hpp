//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_SPIN_MUTEX_HPP
#define CREW_DETAIL_SPIN_MUTEX_HPP

#include <atomic>
#include <thread>

namespace crew::detail {

/// One step of a wait for another thread: a CPU pause for the first 63 steps, then a
/// yield, so that a preempted thread we wait for gets to run.
inline void spin_pause(unsigned& spins) noexcept {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

/** A mutex for critical sections of a few dozen instructions that never block: a
    group's bookkeeping. It spins, then yields, instead of sleeping in the kernel: on
    an io_pool a task's start and another's end take the same group's lock from two
    threads many times a microsecond, and a futex sleep and wake-up for each costs more
    than the section. A lock holder that was preempted is waited for by yielding. */
class spin_mutex {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (unsigned spins = 0; locked_.load(std::memory_order_relaxed);) spin_pause(spins);
    }
  }

  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace crew::detail

#endif
