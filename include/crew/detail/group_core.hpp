//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_GROUP_CORE_HPP
#define CREW_DETAIL_GROUP_CORE_HPP

#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/spin_mutex.hpp>
#include <crew/detail/task.hpp>
#include <crew/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace crew {
enum class failure_policy;
struct task_group_options;
struct spawn_options;
}  // namespace crew

namespace crew::detail {

class group_core;
class wait_op;
template <class Executor>
class initiate_group_spawn;  // impl/task_group.hpp
template <class Executor>
class initiate_group_wait;

/// The waiting side of an async_spawn, told once whether its task got a slot.
class spawn_waiter {
 public:
  virtual void admitted(boost::system::error_code ec) noexcept = 0;

  /// The task must wait for a slot: called under the group's lock, before anyone can
  /// admit it, so that the waiter can install its cancellation, keyed by `key_`.
  virtual void queued(std::weak_ptr<group_core> group) noexcept = 0;

  std::uint64_t key_ = 0;  ///< what its cancellation names, given by the group

 protected:
  ~spawn_waiter() = default;
};

using wait_handler = boost::asio::any_completion_handler<void(std::exception_ptr)>;

/** The state of a task group, shared with its tasks; compiled in lib/.

    A mutex (a spin_mutex) guards it, held only for O(1) bookkeeping: it is never held while user
    code, a handler, a cancellation or a task start runs. `on_failure` calls run one at
    a time on the group's executor (a queue drained by one posted operation, not a
    strand: a strand would die with its context's strand service, which may be gone
    before the group). Rule learned the hard way:
    after unlocking, code touches the group only while holding a reference to it,
    because another thread may end the last task and drop it.
*/
class group_core final : public task_owner, public std::enable_shared_from_this<group_core> {
 public:
  /** A task group's state, or with `queue_capacity` a worker pool's (see below).
      @throws std::invalid_argument naming the field if an option is out of range.
  */
  group_core(net::any_io_executor ex, task_group_options const& options,
             char const* kind = "task group", std::optional<std::size_t> queue_capacity = {});
  ~group_core();

  /** How a new task gets in.

      A worker pool (a core made with a queue capacity) differs from a group in four
      ways: its queue is bounded, and a `submit` past the bound waits for room, not for
      a slot; each accepted task is numbered in order of acceptance (its index_), so a
      wait can complete once every task accepted before it ended (a barrier); its
      cancel() is one-shot and drops the queued tasks instead of starting them
      cancelled; and close() refuses new tasks.
  */
  enum class admit_mode {
    spawn,           ///< start now, or queue behind the limit
    async_spawn,     ///< start now, or wait for a slot (not counted while it waits)
    reserved,        ///< start now, in the slot try_reserve took
    submit,          ///< a pool's: start now, queue, or wait for room in the queue
    reserved_queue,  ///< a pool's: queue, in the place try_reserve took
  };
  enum class admitted { started, queued, waiting, refused };
  enum class reservation { none, slot, queue };

  net::any_io_executor const& executor() const noexcept { return ex_; }

  /** The one way into a group: makes the task `body` (the task layer) and admits it,
      which starts it now or queues it. For async_spawn, `waiter` hears once whether
      the task got a slot.
  */
  admitted spawn(task_body&& body, spawn_options&& options, source_location site, admit_mode mode,
                 spawn_waiter* waiter = nullptr);

  /// The same for a task whose identity is given whole: its parent, context or index.
  admitted spawn(task_body&& body, task_spec&& spec, admit_mode mode,
                 spawn_waiter* waiter = nullptr);

  /** try_spawn's first step: takes a free slot for a task not made yet, so that a
      refused task stays with the caller. False at the limit. A true result must be
      followed by spawn(…, admit_mode::reserved) or release_reservation().
  */
  bool try_reserve();
  /// Gives back a slot try_reserve took, unused: making the task threw.
  void release_reservation() noexcept;

  /** A pool's try_submit's first step: a free slot, else a place in the queue, for a
      task not made yet; `none` when the queue is full. To be followed by spawn(…,
      reserved or reserved_queue) or release_reservation(r).
      @throws boost::system::system_error with crew::error::shut_down once closed.
  */
  reservation try_reserve_submit();
  void release_reservation(reservation r) noexcept;

  /// A pool's close(): refuses new tasks from now on (crew::error::shut_down), and
  /// submissions still waiting for room in the queue with shut_down.
  void close() noexcept;
  bool closed() const noexcept;

  /// What a pool's stats() reports; a group counts the same.
  struct counts {
    std::uint64_t submitted = 0;  ///< accepted: started or queued
    std::uint64_t succeeded = 0;
    std::uint64_t failed = 0;
    std::uint64_t cancelled = 0;  ///< ended cancelled, abandoned, or dropped from the queue
    std::uint64_t dropped = 0;    ///< of those, dropped from the queue without running
    std::size_t running = 0;
    std::size_t queued = 0;
    std::size_t waiting = 0;  ///< submissions waiting for room in the queue
  };
  counts get_counts() const noexcept;

  /** Records a failure that did not end a task, such as an item a pipeline's stage
      worker failed on: kept, counted and handled as a task's failure is (`on_failure`,
      `cancel_on_first`, `keep_failures`). Only while the group has a task running.
  */
  void record(task_failure&& f) noexcept;

  void task_done(task_node* n, std::exception_ptr e) noexcept override;
  void task_abandoned(task_node* n) noexcept override;

  /// Emits `type` on every running task; queued tasks, and tasks spawned before the
  /// next wait completes, end cancelled without running their body. A pool's is
  /// one-shot: it drops the queued tasks, refuses the submissions waiting for room
  /// (operation_aborted), and later submissions run as usual.
  void cancel(boost::asio::cancellation_type type) noexcept;

  void set_limit(std::size_t limit);
  std::size_t limit() const noexcept;
  std::size_t size() const noexcept;
  std::vector<task_failure> failures() const;
  /// Forgets the failures kept so far: an owner that handed each one to a handler as it
  /// happened (a scheduler) and is going away does not report them again.
  void forget_failures() noexcept;

  /** Completes `handler` once the group is idle: at once if it already is, else when its
      last task ended. With `timeout`, after that long (crew::error::timed_out) if the
      group is not idle by then. The handler's cancellation slot cancels the tasks.
      A pool's `barrier` wait completes instead once every task accepted before the call
      ended, and the failure handlers of those tasks ran.
  */
  void async_wait(wait_handler handler, std::optional<std::chrono::steady_clock::duration> timeout,
                  bool barrier = false);

  /// A keyed cancellation (a wait's or an async_spawn's): an aborted wait cancels the
  /// tasks and completes with operation_aborted once they finished; a waiting
  /// async_spawn is withdrawn and completes with operation_aborted.
  void cancel_key(std::uint64_t key, boost::asio::cancellation_type type) noexcept;

  /// The group object was destroyed: cancels every task (spawned ones still end, as
  /// cancelled) and completes async_spawn calls still waiting for a slot with shut_down.
  void shutdown() noexcept;

 private:
  struct after_unlock;
  struct drain_op;

  /// A failure waiting for its `on_failure` call; it keeps the group busy until done.
  struct handler_call {
    failure_handler handler;
    task_failure failure;
    bool kept = false;
  };
  static constexpr std::uint64_t no_index = task_node::no_index;
  friend class wait_op;

  admitted admit(task_node* n, admit_mode mode);
  bool idle_locked() const noexcept;
  void record_failure_locked(task_failure&& f, failure_handler const* handler, after_unlock& todo);
  void cancel_locked(after_unlock& todo);
  void fill_slots_locked(after_unlock& todo);
  void finish_waits_locked(after_unlock& todo);
  void finish_barriers_locked(after_unlock& todo);
  std::uint64_t watermark_locked() const noexcept;
  void drop_queue_locked(after_unlock& todo, boost::system::error_code refusal);
  void count_end_locked(task_node* n, bool failed, bool cancelled) noexcept;
  void retire(task_node* n, std::optional<task_failure>&& failure, failure_handler const* handler,
              bool cancelled) noexcept;
  /// Does what a locked section decided, after the unlock. Static: `this` may be gone.
  static void run(after_unlock& todo) noexcept;
  void drain(bool lost) noexcept;
  void handler_done(task_failure const& failure, std::exception_ptr handler_error,
                    bool drained) noexcept;
  void wait_timed_out(wait_op* op) noexcept;
  std::uint64_t next_key() noexcept;

  net::any_io_executor const ex_;
  mutable spin_mutex mutex_;
  intrusive_list<task_node> running_list_;
  intrusive_list<task_node> queue_;
  intrusive_list<task_node> pending_;  // a pool's submissions waiting for room in the queue
  intrusive_list<wait_op> waiters_;
  std::size_t running_ = 0;
  std::size_t queued_ = 0;  // counted queue entries (spawn, not async_spawn)
  std::size_t pending_handlers_ = 0;
  std::size_t limit_;
  failure_list failures_;
  failure_handler on_failure_;
  std::atomic<std::uint64_t> keys_{0};
  std::shared_ptr<group_core> keep_alive_;  // set while the group has work
  std::deque<handler_call> handler_queue_;  // run by one drain_op at a time
  bool draining_ = false;
  failure_policy policy_;
  bool cancelled_ = false;
  bool shut_down_ = false;
  // A pool's.
  bool const pool_;
  bool closed_ = false;
  std::size_t queue_capacity_ = 0;
  std::size_t pending_count_ = 0;
  std::uint64_t next_index_ = 0;            // the next accepted task's number
  std::uint64_t handler_index_ = no_index;  // the index of the failure drain() handles now
  counts counts_;
};

}  // namespace crew::detail

#endif
