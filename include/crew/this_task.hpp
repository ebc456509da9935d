//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_THIS_TASK_HPP
#define CREW_THIS_TASK_HPP

#include <crew/config.hpp>
#include <crew/source_location.hpp>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace crew {

/** A W3C trace-context trace id: 16 bytes, written as 32 lowercase hex digits. The
    all-zero id is invalid, and is what a default-constructed one holds.
*/
class trace_id {
 public:
  constexpr trace_id() noexcept = default;
  constexpr trace_id(std::uint64_t high, std::uint64_t low) noexcept : high_(high), low_(low) {}

  /// A fresh random id, never all zero.
  static trace_id generate() noexcept;

  /// The id written as 32 hex digits (either case); empty if `hex` is anything else,
  /// or all zero.
  static std::optional<trace_id> parse(std::string_view hex) noexcept;

  /// The trace id of a W3C `traceparent` header, `00-<trace id>-<parent id>-<flags>`;
  /// empty if the header is malformed, or its trace id or parent id is all zero.
  static std::optional<trace_id> from_traceparent(std::string_view header) noexcept;

  std::uint64_t high() const noexcept { return high_; }
  std::uint64_t low() const noexcept { return low_; }

  /// 32 lowercase hex digits; 32 zeros for the invalid id.
  std::string to_string() const;

  explicit operator bool() const noexcept { return (high_ | low_) != 0; }
  friend bool operator==(trace_id const&, trace_id const&) = default;

 private:
  std::uint64_t high_ = 0;
  std::uint64_t low_ = 0;
};

/// Writes `id.to_string()`.
std::ostream& operator<<(std::ostream& os, trace_id const& id);

/** Who a crew task is, as the runtime's hooks and handlers and `this_task::info()` see
    it. Every field is empty or zero for "no task".
*/
struct task_info {
  /// The task's process-wide id, from 1; 0 for no task.
  std::uint64_t id = 0;
  /// The task that spawned it, or 0.
  std::uint64_t parent_id = 0;
  /// The name given at spawn, or empty.
  std::string name;
  /// What owns it: "task group", "run group", "loop", "supervisor", "retry", "go"...;
  /// a string literal.
  char const* owner_kind = "";
  /// The owner's name, or empty.
  std::string owner_name;
  /// Where it was spawned.
  source_location spawn_site;
  /// Its trace id: inherited from its parent, else fresh (see `this_task::trace_id`).
  crew::trace_id trace;

  explicit operator bool() const noexcept { return id != 0; }
};

/** The crew task running on this thread, for plain functions called from inside it (a
    logger). Every crew task counts: a group's task, a run group's actor, a loop's
    iteration, a supervisor's child, a retry's attempt, a managed task's stage, a
    `crew::go` task. A task is "running on this thread" during each of its steps, on
    whatever thread a timer, a socket, a post or a strand resumes it. Outside any
    crew task every function returns an empty or zero value; none has undefined
    behaviour. Code in a plain `co_spawn` or a completion handler that does not run on
    the task's executor is outside.
*/
namespace this_task {

/// The current task's id, or 0.
std::uint64_t id() noexcept;

/// The id of the task that spawned the current one, or 0.
std::uint64_t parent_id() noexcept;

/// The current task's name, or empty. Valid while the task runs.
std::string_view name() noexcept;

/// The current task's identity, or an empty `task_info`.
task_info info();

/** The current task's trace id, or the invalid id outside a task. A task spawned by a
    crew task inherits its spawner's id; any other task is a root, whose id is made
    fresh the first time someone asks for it (its own code, or a child's spawn).
*/
crew::trace_id trace_id() noexcept;

/// Replaces the current task's trace id; its children spawned from now on inherit it.
/// False, doing nothing, outside a task or for the invalid id.
bool set_trace_id(crew::trace_id id) noexcept;

/// Sets the current task's trace id from an incoming W3C `traceparent` header. False,
/// doing nothing, outside a task or if the header is malformed.
bool set_traceparent(std::string_view header) noexcept;

/// The `traceparent` header for an outgoing call from the current task:
/// `00-<trace id>-<16 hex digits of the task id>-01`. Empty outside a task.
std::string traceparent();

}  // namespace this_task

namespace detail {

/// A key per task_local object, never reused.
std::uint64_t next_local_key() noexcept;
/// The current task's value for `key`, or null (none set, or outside a task).
void const* local_get(std::uint64_t key) noexcept;
/// Sets the current task's value for `key`; false outside a task.
bool local_set(std::uint64_t key, std::shared_ptr<void const> value);
/// Removes it; false outside a task.
bool local_erase(std::uint64_t key) noexcept;

}  // namespace detail

/** Data local to a crew task, like Go's context values or a thread_local that follows
    the task across threads. Each task sees its own value; a task spawned from a crew
    task starts with a copy of each of its spawner's values, taken at the spawn (later
    `set`s on either side are not seen by the other). Values are shared between a task
    and its children until one of them sets a new one, so `get` returns a const
    reference. A `task_local` is usually a namespace-scope object; it must outlive the
    uses of `get`'s result.
*/
template <class T>
class task_local {
 public:
  /// `get` returns a value-initialized `T` where none is set.
  task_local() : default_() {}
  /// `get` returns `default_value` where none is set.
  explicit task_local(T default_value) : default_(std::move(default_value)) {}

  task_local(task_local const&) = delete;
  task_local& operator=(task_local const&) = delete;

  /// The current task's value; the default where none is set or outside a task.
  T const& get() const noexcept {
    auto const* p = static_cast<T const*>(detail::local_get(key_));
    return p ? *p : default_;
  }

  /// Whether the current task has a value of its own (or inherited one).
  bool has_value() const noexcept { return detail::local_get(key_) != nullptr; }

  /// Sets the current task's value. False, doing nothing, outside a task.
  bool set(T value) { return detail::local_set(key_, std::make_shared<T const>(std::move(value))); }

  /// Removes the current task's value, so that `get` returns the default. False outside
  /// a task.
  bool reset() noexcept { return detail::local_erase(key_); }

 private:
  std::uint64_t const key_ = detail::next_local_key();
  T const default_;
};

}  // namespace crew

#endif
