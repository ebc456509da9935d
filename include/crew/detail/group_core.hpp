//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_GROUP_CORE_HPP
#define CREW_DETAIL_GROUP_CORE_HPP

#include <crew/detail/task_node.hpp>
#include <crew/error.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace crew {
enum class failure_policy;
struct task_group_options;
}  // namespace crew

namespace crew::detail {

/// A pending async_wait or async_wait_for, linked into its group while it waits.
class wait_op_base {
 public:
  /// Hands `result` to the waiter's handler (through its executor). Called once.
  virtual void complete(std::exception_ptr result) noexcept = 0;

  wait_op_base* prev_ = nullptr;
  wait_op_base* next_ = nullptr;
  std::uint64_t key_ = 0;
  bool linked_ = false;
  bool aborted_ = false;

 protected:
  ~wait_op_base() = default;
};

/// Prints failures that nobody waited for to stderr, so that none is lost. `owner`
/// says what ended with them: "task group", "run group", "loop"...
void report_unobserved(std::string const& group_name, task_errors const& errors,
                       char const* owner = "task group") noexcept;

/** The executor-independent state of a task group, shared with its tasks.

    A mutex guards it, held only for O(1) bookkeeping: it is never held while user
    code, a handler, a cancellation or a task start runs.
*/
class group_core : public std::enable_shared_from_this<group_core> {
 public:
  group_core(task_group_options const& options);
  virtual ~group_core();

  enum class admit_mode {
    spawn,        ///< start now, or queue behind the limit
    try_spawn,    ///< start now, or refuse
    async_spawn,  ///< start now, or wait for a slot (not counted while it waits)
  };
  enum class admitted { started, queued, refused };

  /// Links `n` into the group and, when admitted, starts it.
  admitted admit(task_node* n, admit_mode mode);

  /// Records the end of `n`'s body. Called inside the task's last section.
  void task_done(task_node* n, std::exception_ptr e) noexcept;

  /// Records a task whose coroutine was destroyed unfinished, or never started
  /// because its executor's context was destroyed: counted as cancelled.
  void task_abandoned(task_node* n) noexcept;

  /// Emits `type` on every running task; queued tasks, and tasks spawned before the
  /// next wait completes, end cancelled without running their body.
  void cancel(boost::asio::cancellation_type type) noexcept;

  void set_limit(std::size_t limit);
  std::size_t limit() const noexcept;
  std::size_t size() const noexcept;
  std::vector<task_failure> failures() const;

  /// Completes `op` at once if the group is idle, else links it.
  void add_waiter(wait_op_base* op) noexcept;

  /// A waiter's own cancellation: cancels the tasks; the waiter completes with
  /// operation_aborted once they finished.
  void abort_waiter(std::uint64_t key) noexcept;

  /// Unlinks `op` if it still waits; true if the caller now owns its completion.
  bool detach_waiter(wait_op_base* op) noexcept;

  /// An async_spawn's own cancellation: the task, if it still waited for a slot,
  /// taken out of the queue; else null.
  task_node* withdraw_spawn(std::uint64_t key) noexcept;

  /// The group object was destroyed: cancels every task (spawned ones still end, as
  /// cancelled) and completes async_spawn calls still waiting for a slot with shut_down.
  void shutdown() noexcept;

  std::uint64_t next_key() noexcept;

 protected:
  /// Runs `fn` on the group's strand.
  virtual void post_to_strand(std::function<void()> fn) = 0;

 private:
  struct after_unlock;

  bool idle_locked() const noexcept;
  void unqueue_locked(task_node* n) noexcept;
  void record_failure_locked(task_failure&& f, after_unlock& todo);
  void cancel_locked(after_unlock& todo);
  void fill_slots_locked(after_unlock& todo);
  void finish_waits_locked(after_unlock& todo);
  /// Does what a locked section decided, after the unlock. Static: `this` may be gone.
  static void run(after_unlock& todo) noexcept;
  void handler_done(task_failure failure, std::exception_ptr handler_error) noexcept;

  mutable std::mutex mutex_;
  task_node* running_first_ = nullptr;
  std::size_t running_ = 0;
  std::size_t queued_ = 0;  // counted queue entries (spawn, not async_spawn)
  std::size_t pending_handlers_ = 0;
  std::size_t limit_;
  task_node* queue_first_ = nullptr;
  task_node* queue_last_ = nullptr;
  wait_op_base* waiters_ = nullptr;
  std::vector<task_failure> failures_;
  failure_handler on_failure_;
  std::string name_;
  std::atomic<std::uint64_t> keys_{0};
  std::shared_ptr<group_core> keep_alive_;  // set while the group has work
  failure_policy policy_;
  bool cancelled_ = false;
  bool shut_down_ = false;
};

}  // namespace crew::detail

#endif
