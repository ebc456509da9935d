//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Where the runtime attaches to the task layer: lib/task.cpp calls these as every task
// is made, starts and ends; lib/runtime.cpp implements them (statistics, the task
// registry behind snapshot() and dump(), the start and end hooks). With every feature
// off, a task pays one relaxed load when it is made and one branch when it ends.
//
#ifndef CREW_DETAIL_SEAM_HPP
#define CREW_DETAIL_SEAM_HPP

#include <atomic>
#include <cstdint>
#include <exception>

namespace crew::detail {

class task_node;

/// The features a task can be made with (task_node::seam_).
enum seam_feature : std::uint32_t {
  seam_stats = 1,
  seam_tracking = 2,
  seam_start_hooks = 4,
  seam_end_hooks = 8,
};

/// The features new tasks are made with; the runtime keeps it current.
inline std::atomic<std::uint32_t> seam_features{seam_stats | seam_tracking};

/// `n` was made (not started yet) with `features` (non-zero). `parent` is the task that
/// spawned it, when that is the task running on this thread, else null.
void seam_made(task_node* n, task_node* parent, std::uint32_t features) noexcept;

/// `n`'s first section begins (it was made with start hooks).
void seam_started(task_node* n) noexcept;

/// How a task was retired.
enum class task_end {
  done,       ///< its body ended; `e` is its outcome; inside its last section
  abandoned,  ///< its frame was destroyed before its end
  discarded,  ///< it was never started
};

/// `n` is retired (it was made with some feature), just before its owner hears of it.
void seam_ended(task_node* n, std::exception_ptr const& e, task_end how) noexcept;

/// A fresh, valid trace id, from a per-thread generator.
std::uint64_t random_u64() noexcept;

}  // namespace crew::detail

#endif
