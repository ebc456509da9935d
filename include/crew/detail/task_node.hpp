//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_TASK_NODE_HPP
#define CREW_DETAIL_TASK_NODE_HPP

#include <crew/error.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace crew::detail {

class group_core;

/// The handler of an async_spawn, told once whether its task was admitted.
class spawn_waiter {
 public:
  virtual void admitted(boost::system::error_code ec) noexcept = 0;

 protected:
  ~spawn_waiter() = default;
};

using failure_handler = std::function<void(task_failure const&)>;

/// A process-wide, monotonically increasing task id; the first is 1.
std::uint64_t next_task_id() noexcept;

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

  group_core* core() const noexcept { return core_; }

  // Identity, written before the task starts and read-only afterwards.
  std::uint64_t id_ = 0;
  std::string name_;
  source_location site_;
  failure_handler on_failure_;

  // Membership of the group's running list or start queue, guarded by the group's mutex.
  task_node* prev_ = nullptr;
  task_node* next_ = nullptr;
  bool in_running_list_ = false;
  spawn_waiter* waiter_ = nullptr;  // set while an async_spawn waits for its slot
  std::uint64_t spawn_key_ = 0;

  boost::asio::cancellation_signal signal_;

  /// Posts the task's first section; called once, after the group admitted it.
  void start() noexcept { ops_->start(this); }

  /// Drops a task that was never started, such as a withdrawn async_spawn.
  void discard() noexcept { ops_->discard(this); }

 protected:
  struct operations {
    void (*destroy)(task_node*) noexcept;
    void (*start)(task_node*) noexcept;
    void (*discard)(task_node*) noexcept;
  };

  task_node(group_core* core, operations const* ops) noexcept : core_(core), ops_(ops) {}
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

  group_core* core_;
  operations const* ops_;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uint32_t> pending_type_{0};
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

 private:
  task_node* n_ = nullptr;
};

}  // namespace crew::detail

#endif
