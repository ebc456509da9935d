//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task layer: the one place where every crew task — a group's task, a run
// group's actor, a loop's iteration, a supervisor's child, a retry's attempt — is
// launched (make_task), identified (task_node), cancelled (request_cancel) and
// retired (task_owner::task_done / task_abandoned). See docs/internals.md.
//
#ifndef CREW_DETAIL_TASK_HPP
#define CREW_DETAIL_TASK_HPP

#include <crew/detail/task_memory.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/this_task.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crew::detail {

class task_node;
class spawn_waiter;
class io_pool_impl;

using failure_handler = std::function<void(task_failure const&)>;

/** What owns tasks: a group, a restart driver. The task layer tells it, once per task,
    how the task ended. An owner outlives its tasks.
*/
class task_owner {
 public:
  task_owner(task_owner const&) = delete;
  task_owner& operator=(task_owner const&) = delete;

  /// The end of `n`'s body: `e` is what it threw (a returned code as a system_error),
  /// or null. Called once, inside the task's last section.
  virtual void task_done(task_node* n, std::exception_ptr e) noexcept = 0;

  /// `n` will never run to its end: its frame was destroyed first (its execution context
  /// was destroyed), or it was never started. Counted as cancelled.
  virtual void task_abandoned(task_node* n) noexcept = 0;

  /// What kind of owner this is, for diagnostics: "task group", "run group", "loop"...
  char const* owner_kind() const noexcept { return kind_; }

  /// The owner's name, for diagnostics; may be empty.
  std::string const& owner_name() const noexcept { return name_; }

 protected:
  task_owner(char const* kind, std::string name) : kind_(kind), name_(std::move(name)) {}
  ~task_owner() = default;

 private:
  char const* kind_;
  std::string name_;
};

/// A process-wide, monotonically increasing task id; the first is 1.
std::uint64_t next_task_id() noexcept;

/// The crew task whose step runs on this thread (set by its sections), or null.
inline thread_local task_node* current_task_ = nullptr;

inline task_node* current_task() noexcept {
  return current_task_;
}

/** A task's task_local values: shared, never changed once published (a `set` publishes
    a new map), so that a child's copy is one reference. */
struct local_map {
  std::vector<std::pair<std::uint64_t, std::shared_ptr<void const>>> values;
};

/** What a task hands down to the tasks it spawns: its trace id and task_local values. */
struct task_context {
  crew::trace_id trace;
  std::shared_ptr<local_map const> locals;
};

/** The per-task record: identity, cancellation signal, and the "section" protocol.

    A task's coroutine only ever runs inside a *section*: a call made through its
    task_executor. Asio's per-operation cancellation is not thread-safe, so the
    task's cancellation_signal may only be emitted while no section runs. A cancel
    request that finds a section running is left pending and the last section to
    leave emits it. A cancel request that arrives before the task has run at all
    is emitted by the first section, before it launches the coroutine: the
    coroutine then ends at its first co_await without running its body.
*/
class task_node {
 public:
  task_node(const task_node&) = delete;
  task_node& operator=(const task_node&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }

  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) ops_->destroy(this);
  }

  /// Begins a section; waits while another thread emits on this task.
  void enter() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    for (unsigned spins = 0;;) {
      if ((s & emitting) != 0 && emitting_node != this) {
        pause(spins);
        s = state_.load(std::memory_order_relaxed);
        continue;
      }
      if (state_.compare_exchange_weak(s, (s + 1) | started, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return;
    }
  }

  /// Ends a section and emits a pending cancellation if it was the last one.
  void leave() noexcept {
    std::uint32_t const s = state_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if ((s & (active_mask | pending | emitting)) == pending) emit_pending();
  }

  /// Asks the task to stop: emits `type` on its signal now, or as soon as it is safe.
  void request_cancel(boost::asio::cancellation_type type) noexcept;

  /// Emits a cancellation requested before the task's first step, from inside that
  /// step and before the coroutine runs: a task cancelled before it started ends
  /// without running its body.
  void emit_pending_before_start() noexcept;

  /// Whether `request_cancel` was ever called.
  bool cancel_requested() const noexcept {
    return (state_.load(std::memory_order_acquire) & requested) != 0;
  }

  /// Called once, inside the task's last section: no emission happens after it.
  void mark_finished() noexcept { state_.fetch_or(finished_bit, std::memory_order_acq_rel); }

  bool finished() const noexcept {
    return (state_.load(std::memory_order_acquire) & finished_bit) != 0;
  }

  /// Whether its first section began.
  bool has_started() const noexcept {
    return (state_.load(std::memory_order_acquire) & started) != 0;
  }

  /// Whether one of its sections runs now, on some thread.
  bool in_section() const noexcept {
    return (state_.load(std::memory_order_acquire) & active_mask) != 0;
  }

  /// Its trace id, made fresh if it has none yet. Only from inside the task (one of its
  /// sections), or before it started.
  crew::trace_id trace() noexcept;

  /// The trace id as it is now, possibly invalid; from any thread.
  crew::trace_id peek_trace() const noexcept {
    return {trace_high_.load(std::memory_order_relaxed),
            trace_low_.load(std::memory_order_relaxed)};
  }

  void set_trace(crew::trace_id t) noexcept {
    trace_high_.store(t.high(), std::memory_order_relaxed);
    trace_low_.store(t.low(), std::memory_order_relaxed);
  }

  /// What its children inherit; only from inside the task, or before it started.
  task_context context() noexcept { return {trace(), locals_}; }

  task_owner* owner() const noexcept { return owner_; }

  /// Posts the task's first section; called once, after the owner admitted it. A
  /// `continuation` of the handler running now (a restart) goes after it, on this thread.
  void start(bool continuation = false) noexcept { ops_->start(this, continuation); }

  /// Drops a task that was never started, such as a withdrawn async_spawn.
  void discard() noexcept { ops_->discard(this); }

  /// Runs the task's first section now, on this thread, instead of posting it: an
  /// io_pool's batch of starts runs on the task's context.
  void launch() noexcept { ops_->launch(this); }

  /// Drops an admitted task that will never start (its batch was destroyed with its
  /// context): it ends as abandoned.
  void abandon() noexcept { ops_->abandon(this); }

  // Identity, written before the task starts and read-only afterwards.
  std::uint64_t id_ = 0;
  std::uint64_t parent_id_ = 0;  ///< the task that spawned this one, or 0
  std::string name_;
  source_location site_;
  failure_handler on_failure_;  ///< a group task's own handler, if any
  /// The item it handles (task_failure::index), or no_index.
  std::uint64_t index_ = no_index;
  static constexpr std::uint64_t no_index = ~std::uint64_t{0};

  // Membership of a group's running list or start queue, guarded by the group's mutex.
  task_node* prev_ = nullptr;
  task_node* next_ = nullptr;
  spawn_waiter* waiter_ = nullptr;  // set while an async_spawn waits for its slot

  /// Its cancellation signal (signal_.get()), recycled from an ended task.
  recycled_signal signal_;

  /// Its task_local values; read and replaced only from inside the task.
  std::shared_ptr<local_map const> locals_;

  // The runtime's view of the task (lib/runtime.cpp): which of its features the task
  // was made with, its links in the task registry, when it was made, and its parent's
  // identity for the start hooks.
  std::uint32_t seam_ = 0;
  task_node* track_prev_ = nullptr;
  task_node* track_next_ = nullptr;
  std::int64_t made_at_ = 0;
  task_info* parent_info_ = nullptr;

  /// The io_pool that placed the task, and on which of its contexts; or null.
  io_pool_impl* pool_ = nullptr;
  std::size_t pool_index_ = 0;

 protected:
  struct operations {
    void (*destroy)(task_node*) noexcept;
    void (*start)(task_node*, bool continuation) noexcept;
    void (*discard)(task_node*) noexcept;
    void (*launch)(task_node*) noexcept;
    void (*abandon)(task_node*) noexcept;
  };

  task_node(task_owner* owner, operations const* ops) noexcept : owner_(owner), ops_(ops) {}
  ~task_node() = default;

 private:
  static constexpr std::uint32_t active_mask = 0xFFFF;
  static constexpr std::uint32_t started = 1u << 16;
  static constexpr std::uint32_t emitting = 1u << 17;
  static constexpr std::uint32_t pending = 1u << 18;
  static constexpr std::uint32_t finished_bit = 1u << 19;
  static constexpr std::uint32_t requested = 1u << 20;

  static void pause(unsigned& spins) noexcept;
  void emit_pending() noexcept;
  void emit_taken_type() noexcept;

  static inline thread_local task_node* emitting_node = nullptr;

  task_owner* owner_;
  operations const* ops_;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uint32_t> pending_type_{0};
  std::atomic<std::uint64_t> trace_high_{0};
  std::atomic<std::uint64_t> trace_low_{0};

 public:
  // Here, not with the list links, so that it fills the padding after the atomics.
  bool in_running_list_ = false;  ///< guarded by the group's mutex
};

/// An owning reference to a task_node.
class node_ref {
 public:
  node_ref() noexcept = default;
  explicit node_ref(task_node* n) noexcept : n_(n) {}  // adopts a reference
  node_ref(node_ref const& o) noexcept : n_(o.n_) {
    if (n_) n_->add_ref();
  }
  node_ref(node_ref&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  node_ref& operator=(node_ref o) noexcept {
    std::swap(n_, o.n_);
    return *this;
  }
  ~node_ref() {
    if (n_) n_->release();
  }
  task_node* get() const noexcept { return n_; }
  task_node* operator->() const noexcept { return n_; }
  explicit operator bool() const noexcept { return n_ != nullptr; }

 private:
  task_node* n_ = nullptr;
};

/** Who a new task is. */
struct task_spec {
  std::string name;
  source_location site;
  failure_handler on_failure;
  /// The spawning task's id. With neither this nor `context`, the spawner is the task
  /// running on this thread (current_task()), if any: the new task gets its id and
  /// inherits its context.
  std::uint64_t parent_id = 0;
  /// The context the task inherits, taken from its parent earlier (a restart driver's
  /// runs inherit what the driver's starter had); an empty one makes a root.
  task_context const* context = nullptr;
  /// The item the task handles (task_failure::index), if any.
  std::optional<std::size_t> index;
};

/// `ex` without the task executor that wraps it when it is a task's executor (`co_await
/// this_coro::executor` inside a task): what an owner made inside a task runs on.
net::any_io_executor plain_executor(net::any_io_executor const& ex);

/** The task layer's launcher: makes the task that runs `body` on `ex`, owned by
    `owner`, not started yet: the owner admits it, then calls start() or discard().
    `body` was checked when it was made (make_task_body).
*/
task_node* make_task(task_owner& owner, net::any_io_executor const& ex, task_body&& body,
                     task_spec&& spec);

}  // namespace crew::detail

#endif
