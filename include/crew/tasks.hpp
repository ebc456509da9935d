//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The provided tasks of the task manager (goasync's `tasks` package): wrappers that are
// themselves managed tasks. The templates here only erase the wrapped task
// (detail::make_managed); everything else is compiled in lib/tasks.cpp.
//
#ifndef CREW_TASKS_HPP
#define CREW_TASKS_HPP

#include <crew/backoff.hpp>
#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/task_manager.hpp>

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace crew::tasks {

/** What every provided task is built on: the wrapped task, whose `initialize()` and
    `cleanup()` it passes through. Move-only; a moved-from provided task refuses to run.
*/
class wrapped_task {
 public:
  /// The wrapped task's `initialize()`. @throws std::invalid_argument if moved from.
  net::awaitable<void> initialize();
  /// The wrapped task's `cleanup()`. @throws std::invalid_argument if moved from.
  net::awaitable<void> cleanup();

 protected:
  /// @throws std::invalid_argument naming `who` if `task` is null.
  wrapped_task(std::shared_ptr<crew::detail::managed_base> task, char const* who);
  wrapped_task(wrapped_task&&) noexcept = default;
  wrapped_task& operator=(wrapped_task&&) noexcept = default;
  wrapped_task(wrapped_task const&) = delete;
  wrapped_task& operator=(wrapped_task const&) = delete;
  ~wrapped_task() = default;

  /// The wrapped task, for `stage` ("execute"...). @throws std::invalid_argument if
  /// this was moved from.
  std::shared_ptr<crew::detail::managed_base> const& wrapped(char const* stage) const;

 private:
  std::shared_ptr<crew::detail::managed_base> task_;
  char const* who_;  // "crew::tasks::repeatable_task"
};

// ---------------------------------------------------------------- repeatable

/** Options of `crew::tasks::repeatable`. */
struct repeatable_options {
  /// Called with every failure of the wrapped task's `execute()`; empty (the default)
  /// sends each to crew's failure path (stderr by default). A handler that throws has
  /// its exception reported there too.
  std::function<void(std::exception_ptr)> on_failure{};
  /// The wait before the next run after consecutive failures. By default 100 ms,
  /// doubling up to 30 s, so that a task that fails at once cannot spin a core;
  /// `crew::backoff::none()` turns it off.
  crew::backoff backoff = exponential_backoff{};
  /// The clock the waits are measured on; null (the default) is `crew::clock::steady()`.
  /// It must outlive every `execute()`.
  crew::clock* clock = nullptr;
};

/** A managed task whose `execute()` runs the wrapped task's again and again: made by
    `crew::tasks::repeatable`.

    `initialize()` and `cleanup()` are the wrapped task's own.

    `execute()` runs the wrapped `execute()` until it is cancelled. Each run is a crew
    task (named after the task `execute()` runs in, such as a task manager's stage), a
    child of that task. A run that returns normally starts again at once (after a
    yield, so it never starves others); a run that fails goes to `on_failure`, or to the
    failure path, and never stops it: the next run waits for the backoff of the
    consecutive failures first. Cancelling `execute()` cancels the run in flight, or
    aborts the wait; once the run has returned, `execute()` completes **normally**: a
    cancelled repeatable is a clean stop (and one awaited already cancelled, by a
    coroutine that turned `this_coro::throw_if_cancelled` off, runs nothing). It never
    fails on its own.
*/
class repeatable_task : public wrapped_task {
 public:
  /// Use `crew::tasks::repeatable`. @param task Not null.
  repeatable_task(std::shared_ptr<crew::detail::managed_base> task, repeatable_options options);

  /// Runs the wrapped task's `execute()` again and again until cancelled (see above).
  /// @throws std::invalid_argument if moved from.
  net::awaitable<void> execute();

 private:
  repeatable_options options_;
};

/** Wraps `task` (a `crew::managed_task` moved in, a `std::shared_ptr` or
    `std::unique_ptr` to one, or `std::ref(t)`; a provided task too) so that its
    `execute()` runs again and again until cancelled: goasync's `Repeatable`.
    @throws std::invalid_argument if `task` is a null pointer.
*/
template <class Task>
repeatable_task repeatable(Task&& task) {
  return repeatable_task(
      crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::repeatable"),
      repeatable_options{});
}

/// As `repeatable(task)`, with options.
template <class Task>
repeatable_task repeatable(Task&& task, repeatable_options options) {
  return repeatable_task(
      crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::repeatable"),
      std::move(options));
}

// ---------------------------------------------------------------- repeat_timer

/** Options of `crew::tasks::repeat_timer`. */
struct repeat_timer_options {
  /// Called with every failure of the wrapped task's `execute()`; empty (the default)
  /// sends each to crew's failure path (stderr by default).
  std::function<void(std::exception_ptr)> on_failure{};
  /// The clock the ticks are measured on; null (the default) is `crew::clock::steady()`.
  /// It must outlive every `execute()`.
  crew::clock* clock = nullptr;
};

/** A managed task whose `execute()` runs the wrapped task's on every tick of a period:
    made by `crew::tasks::repeat_timer`.

    `initialize()` and `cleanup()` are the wrapped task's own.

    `execute()` runs the wrapped `execute()` at once, at the time `start` it began, then
    at the ticks `start + k * period` of the clock. Runs never overlap: a run that
    overruns one or more ticks is followed by a run at the first tick not before it
    ended; the ticks it missed are skipped, not queued. Each run is a crew task (named
    after the task `execute()` runs in); a failure goes to `on_failure`, or to the
    failure path, and never changes the schedule. A period of `duration::max()` runs
    once, then waits until cancelled. Cancelling `execute()` cancels the run in flight,
    or aborts the wait; once the run has returned, `execute()` completes **normally**
    (awaited already cancelled, it runs nothing).
*/
class repeat_timer_task : public wrapped_task {
 public:
  /// Use `crew::tasks::repeat_timer`.
  /// @throws std::invalid_argument if `period` is not positive, or `task` is null.
  repeat_timer_task(crew::clock::duration period, std::shared_ptr<crew::detail::managed_base> task,
                    repeat_timer_options options);

  /// Runs the wrapped task's `execute()` on every tick until cancelled (see above).
  /// @throws std::invalid_argument if moved from.
  net::awaitable<void> execute();

 private:
  crew::clock::duration period_;
  repeat_timer_options options_;
};

/** Wraps `task` (as `repeatable` takes it) so that its `execute()` runs at once, then on
    every tick of `period`, without overlap, until cancelled: goasync's `RepeatTimer`.
    @throws std::invalid_argument if `period` is not positive, or `task` is a null pointer.
*/
template <class Task>
repeat_timer_task repeat_timer(crew::clock::duration period, Task&& task) {
  return repeat_timer_task(
      period, crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::repeat_timer"),
      repeat_timer_options{});
}

/// As `repeat_timer(period, task)`, with options.
template <class Task>
repeat_timer_task repeat_timer(crew::clock::duration period, Task&& task,
                               repeat_timer_options options) {
  return repeat_timer_task(
      period, crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::repeat_timer"),
      std::move(options));
}

// ---------------------------------------------------------------- interruptible

/** A managed task that reloads the wrapped task on a signal: made by
    `crew::tasks::interruptible`.

    `initialize()` and `cleanup()` are the wrapped task's own.

    `execute()` registers its signals with a `signal_set` first, then runs the wrapped
    `execute()`. When one of the signals arrives, it cancels that `execute()` and, once
    it returned, calls the wrapped `cleanup()`, then `initialize()`, then `execute()`
    again: a configuration reload on SIGHUP. A signal that arrives during a reload is
    followed by another reload. Each `execute()`, and each reload, is a crew task.

    It ends with the first failure of the wrapped `execute()`, `cleanup()` or
    `initialize()` (an `operation_aborted` its own cancellation caused is not one). A
    wrapped `execute()` that returns normally with no signal and no cancellation ends
    it with `boost::system::system_error(crew::error::task_stopped_unexpectedly)`.
    Cancelling `execute()` cancels the wrapped one; once it has returned, `execute()`
    completes **normally** (awaited already cancelled, it runs nothing). The signals are released
   when `execute()` ends, which restores their default disposition unless something else still
   handles them.
*/
class interruptible_task : public wrapped_task {
 public:
  /// Use `crew::tasks::interruptible`.
  /// @throws std::invalid_argument if `signos` is empty or holds an invalid number, or
  /// `task` is null.
  interruptible_task(std::vector<int> signos, std::shared_ptr<crew::detail::managed_base> task);

  /// Runs the wrapped task's `execute()`, reloading it on a signal (see above).
  /// @throws std::invalid_argument if moved from.
  net::awaitable<void> execute();

 private:
  std::vector<int> signos_;
};

/** Wraps `task` (as `repeatable` takes it) so that one of `signos` (such as SIGHUP)
    makes its `execute()` stop and the task clean up, initialize and execute again:
    goasync's `Interruptible`.
    @throws std::invalid_argument if `signos` is empty, holds a number that is not a
    signal or a signal that cannot be caught, or `task` is a null pointer.
*/
template <class Task>
interruptible_task interruptible(std::vector<int> signos, Task&& task) {
  return interruptible_task(
      std::move(signos),
      crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::interruptible"));
}

/// As `interruptible(std::vector<int>, task)`: `interruptible({SIGHUP}, task)`.
template <class Task>
interruptible_task interruptible(std::initializer_list<int> signos, Task&& task) {
  return interruptible(std::vector<int>(signos), std::forward<Task>(task));
}

// ---------------------------------------------------------------- force_stop

/** Options of `crew::tasks::force_stop`. */
struct force_stop_options {
  /// The clock the grace is measured on; null (the default) is `crew::clock::steady()`.
  /// It must outlive every `execute()`, and every wrapped `execute()` it gave up on.
  crew::clock* clock = nullptr;
};

/** A managed task whose `execute()` gives up on the wrapped one a grace period after it
    was cancelled: made by `crew::tasks::force_stop`.

    `initialize()` and `cleanup()` are the wrapped task's own.

    `execute()` runs the wrapped `execute()` as its own crew task (named after the task
    `execute()` runs in) and, without cancellation, completes as it does: normally, or
    with its failure. When `execute()` is cancelled, it cancels the wrapped one and
    waits at most `grace`, on the clock, for it to return: in time, its result passes
    through (an `operation_aborted` the cancellation caused too); if not, `execute()`
    completes at once with `boost::system::system_error(crew::error::timed_out)`, whose
    message names the task and the grace. The wrapped `execute()` is not abandoned: it
    goes on as a crew task, the wrapped task is kept alive until it returned, and a
    failure it ends with then goes to crew's failure path (stderr by default). A grace
    of `duration::max()` never gives up. Awaited already cancelled, `execute()` completes
    with `operation_aborted` without running the wrapped one.
*/
class force_stop_task : public wrapped_task {
 public:
  /// Use `crew::tasks::force_stop`.
  /// @throws std::invalid_argument if `grace` is negative, or `task` is null.
  force_stop_task(crew::clock::duration grace, std::shared_ptr<crew::detail::managed_base> task,
                  force_stop_options options);

  /// Runs the wrapped task's `execute()`, giving up on it `grace` after a cancellation
  /// (see above). @throws std::invalid_argument if moved from.
  net::awaitable<void> execute();

 private:
  crew::clock::duration grace_;
  force_stop_options options_;
};

/** Wraps `task` (as `repeatable` takes it) so that, once cancelled, its `execute()` has
    at most `grace` to return: goasync's `ForceStop`.
    @throws std::invalid_argument if `grace` is negative, or `task` is a null pointer.
*/
template <class Task>
force_stop_task force_stop(crew::clock::duration grace, Task&& task) {
  return force_stop_task(
      grace, crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::force_stop"),
      force_stop_options{});
}

/// As `force_stop(grace, task)`, with options.
template <class Task>
force_stop_task force_stop(crew::clock::duration grace, Task&& task, force_stop_options options) {
  return force_stop_task(
      grace, crew::detail::make_managed(std::forward<Task>(task), "crew::tasks::force_stop"),
      options);
}

}  // namespace crew::tasks

#endif
