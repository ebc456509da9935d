//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_TASK_GROUP_HPP
#define CREW_TASK_GROUP_HPP

#include <crew/config.hpp>
#include <crew/detail/group_core.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace crew {

/** What a task group does when one of its tasks fails. */
enum class failure_policy {
  /// Every task runs to its end; the wait reports every failure.
  collect_all,
  /// The first failure cancels every other task (Go's errgroup.WithContext); the wait
  /// reports it first, then any other real failure. Cancelled tasks are not failures.
  cancel_on_first,
};

/** Options of a task group. Designated initializers keep call sites readable. */
struct task_group_options {
  failure_policy policy = failure_policy::collect_all;
  /// The most tasks that run at once, at least 1, or `crew::unlimited`. Tasks beyond it
  /// wait in FIFO order.
  std::size_t limit = unlimited;
  /// Called once per failure, after it is recorded, on the group's executor, one call at
  /// a time. A handler that throws has its exception recorded as a failure of stage
  /// `handler`.
  std::function<void(task_failure const&)> on_failure{};
  /// Appears in diagnostics.
  std::string name{};
  /// The most failures kept between two completed waits, at least 1, or
  /// `crew::unlimited`. Past it a failure is counted (`task_errors::dropped()`), not
  /// stored; `on_failure` still sees it, and without a handler it goes to stderr at
  /// once. The bound keeps a group that is never waited on, such as a server's
  /// connection group, from growing without end.
  std::size_t keep_failures = 1024;
};

/** Options of one spawned task. */
struct spawn_options {
  /// Appears in the task's failure.
  std::string name{};
  /// Replaces the group's `on_failure` for this task.
  std::function<void(task_failure const&)> on_failure{};
};

/** A set of coroutine tasks that are waited for, and cancelled, together.

    Each task is an `awaitable<void>`, an `awaitable<boost::system::error_code>`
    (Go style: a non-zero code is a failure), or a callable that returns one; the
    group keeps a callable alive until its coroutine ends. Every task gets its own
    `cancellation_signal`; every failure is recorded as a `task_failure` with the
    task's id, name, spawn site and throw-site trace.

    A task starts on the group's executor, never inside `spawn`: spawning posts the
    task's first step. All member functions may be called from any thread.

    Destroying the group cancels its tasks and never blocks; the tasks finish on
    their own and the group's state lives until the last one ends. Failures that no
    wait reported by then are printed to stderr.

    Tasks are `awaitable<void>`, `awaitable<boost::system::error_code>` or
    `awaitable<std::error_code>` on `any_io_executor`, or callables returning one;
    whatever the group's executor type, they run on it.

    @tparam Executor The executor tasks run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_task_group : public detail::io_object<basic_task_group, Executor, task_group_options,
                                                  std::shared_ptr<detail::group_core>> {
 public:
  using executor_type = Executor;

  /** `basic_task_group(ex[, options])`: a group on `ex` (an executor, or an execution
      context such as an io_context). The default options collect all failures, with no
      limit.
      @throws std::invalid_argument if `options.limit` or `options.keep_failures` is 0.
  */
  using basic_task_group::io_object::io_object;

  basic_task_group(basic_task_group&& other) noexcept = default;

  /// Shuts this group down (as the destructor does), then takes over `other`'s tasks.
  basic_task_group& operator=(basic_task_group&& other) noexcept;

  /// Cancels every task and returns at once; see the class description.
  ~basic_task_group();

  /** Spawns a task; past the limit it waits, FIFO, for a slot.

      @param task An rvalue `awaitable<void>` or `awaitable<error_code>`, or a callable
      returning one.
      @param site Defaults to the caller's location.
      @throws std::invalid_argument if `task` is a moved-from awaitable, a null function
      pointer or an empty std::function.
  */
  template <class Task>
  void spawn(Task&& task, source_location site = source_location::current());

  /// Spawns a named task, or one with its own failure handler.
  template <class Task>
  void spawn(Task&& task, spawn_options options, source_location site = source_location::current());

  /** Spawns the task only if a slot is free now (Go's `TryGo`).

      @returns false at the limit, and then `task` is left as it was: the caller still
      owns it and may, for example, hand it to `async_spawn`.
      @throws std::invalid_argument as `spawn` does.
  */
  template <class Task>
  bool try_spawn(Task&& task, source_location site = source_location::current());

  template <class Task>
  bool try_spawn(Task&& task, spawn_options options,
                 source_location site = source_location::current());

  /** Spawns the task once a slot is free.

      @par Completion signature
      `void(boost::system::error_code)`: success once the task was admitted (it has
      not run yet); `crew::error::shut_down` if the group was destroyed first. With
      `use_awaitable` (plain), a task that gets a slot at once is admitted without
      suspending the caller; a caller already cancelled gets `operation_aborted`
      first, as for any awaited operation.

      @par Per-operation cancellation
      All types. While the task still waits for a slot it is dropped without ever
      running and the operation completes with `operation_aborted`; once admitted,
      cancellation has no effect.
  */
  template <class Task, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code))
                            CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_spawn(Task&& task,
                   CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type),
                   source_location site = source_location::current());

  template <class Task, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code))
                            CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_spawn(Task&& task, spawn_options options,
                   CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type),
                   source_location site = source_location::current());

  /// Changes the limit; a higher one starts waiting tasks at once.
  /// @throws std::invalid_argument if `limit` is 0.
  void set_limit(std::size_t limit) { state().set_limit(limit); }

  std::size_t limit() const noexcept { return this->state_ ? this->state_->limit() : 0; }

  /** Cancels every running task by emitting `type` on its signal.

      Tasks not started yet, and tasks spawned before the next wait completes,
      start cancelled: their body never runs. An `operation_aborted` that ends a
      task after this is counted as cancelled, never as a failure.
  */
  void cancel(net::cancellation_type type = net::cancellation_type::terminal) {
    state().cancel(type);
  }

  /// Tasks spawned and not yet finished, including those waiting for a slot.
  std::size_t size() const noexcept { return this->state_ ? this->state_->size() : 0; }

  /// The failures recorded since the last completed wait, in order.
  std::vector<task_failure> failures() const { return state().failures(); }

  /** Waits until every task finished.

      @par Completion signature
      `void(std::exception_ptr)`: null if no task failed since the last completed
      wait, else a `crew::task_errors` holding every failure in the order recorded.
      The failures are handed to every wait that completes at that moment and the
      group is ready for reuse. An empty group completes at once.

      @par Per-operation cancellation
      All types. Cancelling the wait cancels every task (terminal); the wait
      completes after they finished, with `operation_aborted` unless some task
      really failed, in which case it completes with the `task_errors`.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_wait(CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type));

  /** Waits until every task finished, or until `timeout` passed.

      @par Completion signature
      `void(std::exception_ptr)`: as `async_wait`; on timeout a
      `boost::system::system_error` with `crew::error::timed_out`. The tasks go on
      after a timeout, and their failures stay for the next wait.

      @par Per-operation cancellation
      As `async_wait`.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_wait_for(std::chrono::steady_clock::duration timeout,
                      CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type));

  /// `co_await g.wait()`: the awaitable form of async_wait; throws `crew::task_errors`.
  template <class AwaitableExecutor = net::any_io_executor>
  net::awaitable<void, AwaitableExecutor> wait() {
    return async_wait(net::use_awaitable_t<AwaitableExecutor>{});
  }

 private:
  using initiate_spawn = detail::initiate_group_spawn<Executor>;
  using initiate_wait = detail::initiate_group_wait<Executor>;
  using timeout_type = std::optional<std::chrono::steady_clock::duration>;
  static constexpr timeout_type no_timeout{};

  detail::group_core& state() const;

  friend detail::io_access;
  static std::shared_ptr<detail::group_core> make_state(Executor const& ex,
                                                        task_group_options const& options) {
    return std::make_shared<detail::group_core>(net::any_io_executor(ex), options);
  }
};

/// A task group on `any_io_executor`.
using task_group = basic_task_group<>;

}  // namespace crew

#include <crew/impl/task_group.hpp>

#endif
