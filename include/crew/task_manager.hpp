//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_TASK_MANAGER_HPP
#define CREW_TASK_MANAGER_HPP

#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace crew {

/** A task the task manager runs in three stages: `initialize()`, `execute()` and
    `cleanup()`, each a coroutine returning `boost::asio::awaitable<void>`.
    `execute()` is cancelled through its cancellation slot when the manager shuts down.
*/
template <class T>
concept managed_task = requires(T& t) {
  { t.initialize() } -> std::same_as<net::awaitable<void>>;
  { t.execute() } -> std::same_as<net::awaitable<void>>;
  { t.cleanup() } -> std::same_as<net::awaitable<void>>;
};

/** What a managed task's return means to the task manager. A failure (an exception, or
    a non-zero code) of any kind ends everything. */
enum class task_kind {
  /// Any return ends everything; a normal return is recorded as
  /// `crew::error::task_stopped_unexpectedly`.
  strict,
  /// Only a failure ends everything; a normal return just ends the task.
  error,
  /// Everything ends, without an error, once every stop_group task has returned normally.
  stop_group,
};

/// "strict", "error" or "stop_group".
char const* to_string(task_kind k) noexcept;

namespace detail {

/// A managed task, erased: what the task manager and `crew::tasks` hold.
class managed_base {
 public:
  virtual ~managed_base() = default;
  virtual net::awaitable<void> initialize() = 0;
  virtual net::awaitable<void> execute() = 0;
  virtual net::awaitable<void> cleanup() = 0;
};

template <class T>
struct managed_pointee {
  using type = T;
  static T& get(T& t) noexcept { return t; }
  static bool null(T const&) noexcept { return false; }
};
template <class T>
struct managed_pointee<std::shared_ptr<T>> {
  using type = T;
  static T& get(std::shared_ptr<T>& p) noexcept { return *p; }
  static bool null(std::shared_ptr<T> const& p) noexcept { return !p; }
};
template <class T, class D>
struct managed_pointee<std::unique_ptr<T, D>> {
  using type = T;
  static T& get(std::unique_ptr<T, D>& p) noexcept { return *p; }
  static bool null(std::unique_ptr<T, D> const& p) noexcept { return !p; }
};
template <class T>
struct managed_pointee<std::reference_wrapper<T>> {
  using type = T;
  static T& get(std::reference_wrapper<T>& r) noexcept { return r.get(); }
  static bool null(std::reference_wrapper<T> const&) noexcept { return false; }
};

/// The three member checks one by one, so that the compile error names what is missing.
template <class T>
constexpr void check_managed() {
  static_assert(
      requires(T & t) {
        { t.initialize() } -> std::same_as<net::awaitable<void>>;
      },
      "crew: a managed task needs `boost::asio::awaitable<void> initialize()`");
  static_assert(
      requires(T & t) {
        { t.execute() } -> std::same_as<net::awaitable<void>>;
      },
      "crew: a managed task needs `boost::asio::awaitable<void> execute()`");
  static_assert(
      requires(T & t) {
        { t.cleanup() } -> std::same_as<net::awaitable<void>>;
      },
      "crew: a managed task needs `boost::asio::awaitable<void> cleanup()`");
}

template <class Holder>
class managed_holder final : public managed_base {
 public:
  explicit managed_holder(Holder h) : h_(std::move(h)) {}
  net::awaitable<void> initialize() override { return get().initialize(); }
  net::awaitable<void> execute() override { return get().execute(); }
  net::awaitable<void> cleanup() override { return get().cleanup(); }

 private:
  auto& get() noexcept { return managed_pointee<Holder>::get(h_); }
  Holder h_;
};

[[noreturn]] void throw_null_managed(char const* who);

/** Checks `task` (a managed task, a shared_ptr or unique_ptr to one, or a
    std::reference_wrapper of one, whose object must outlive the manager) and erases it.
    A null pointer is std::invalid_argument naming `who`. */
template <class Task>
std::shared_ptr<managed_base> make_managed(Task&& task, char const* who) {
  using holder = std::decay_t<Task>;
  using pointee = managed_pointee<holder>;
  check_managed<typename pointee::type>();
  if (pointee::null(task)) throw_null_managed(who);
  return std::make_shared<managed_holder<holder>>(holder(std::forward<Task>(task)));
}

}  // namespace detail

/** Options of a task manager. */
struct task_manager_options {
  /// Appears in diagnostics.
  std::string name{};
  /// Without it, the run shuts down once no execute is left running (as when every
  /// task is of kind `error` and returned). With it, the run waits for `stop()` or
  /// cancellation even then, so that `add_execute_task` can still bring work: the
  /// seed's `AllowNoManagedProcesses`.
  bool allow_idle = false;
};

namespace detail {
class manager_core;

/// What a task manager keeps: compiled in lib/task_manager.cpp.
class task_manager_state final : public runnable {
 public:
  explicit task_manager_state(task_manager_options options);
  task_manager_state(task_manager_state&&) noexcept = default;
  task_manager_state& operator=(task_manager_state&&) = delete;
  /// Shuts a run in progress down with crew::error::shut_down.
  ~task_manager_state();

  void add(std::string name, std::shared_ptr<managed_base> task, task_kind kind,
           source_location site);
  void add_execute(std::string name, task_factory f, task_kind kind, source_location site);
  void stop();
  std::size_t size() const;
  void start_run(net::any_io_executor const& ex, run_handler handler) override;

 private:
  std::shared_ptr<manager_core> core_;
};
}  // namespace detail

/** Ordered initialization, parallel execution, reverse-order cleanup: goasync's task
    manager, for Asio coroutines.

    `async_run(token)` (and `co_await tm.run()`, which rethrows):
    1. calls every task's `initialize()`, one after the other, in the order of `add`
       (even when the run was cancelled before it began, as the seed does). If one
       fails, it calls `cleanup()` from that task back to the first, one after the
       other, and completes without executing anything;
    2. runs every `execute()`, and every `add_execute_task` function, in parallel;
    3. shuts down when the run is cancelled, when `stop()` is called, or when a task
       ends as its `task_kind` says: every execute still running is cancelled (terminal),
       and once they have all returned,
    4. calls every task's `cleanup()`, one after the other, in reverse order of `add`.

    `initialize()` and `cleanup()` are not cancelled by the shutdown: a shutdown that
    comes while one runs takes effect when it returns. A further request while the run
    is ending (`stop()` again, or cancelling the run again) cancels the initialize or
    cleanup in flight (terminal): the way out of a stage that hangs. Its
    `operation_aborted` is then recorded as that stage's failure.

    Every stage is a crew task named after its task and a child of the run's own task
    (an execute added while running: of the task that added it). A cleanup failure
    never stops the other cleanups.

    @par Completion signature
    `void(std::exception_ptr)`: `nullptr` when nothing failed and the run ended by
    `stop()`, by its `stop_group` tasks, or because nothing was left running; a
    `crew::task_errors` holding every failure in the order it happened, each with its
    task's name and its `stage` (initialize, execute or cleanup); else
    `operation_aborted` when the run was cancelled, `crew::error::shut_down` when the
    manager was destroyed. A second run completes with `crew::error::already_running`.

    @par Per-operation cancellation
    All types: shuts the run down as above; it completes after every cleanup. Emitted
    again while the run is ending, it cancels the initialize or cleanup in flight.

    @tparam Executor The executor tasks run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_task_manager
    : public detail::run_object<basic_task_manager, Executor, task_manager_options,
                                detail::task_manager_state> {
 public:
  /// `basic_task_manager(ex[, options])`: a task manager on `ex` (an executor, or an
  /// execution context such as an io_context).
  using basic_task_manager::run_object::run_object;

  /// Shuts a run in progress down (its result says `crew::error::shut_down` if nothing
  /// failed) and returns at once; the tasks live until the run has ended.
  ~basic_task_manager() = default;

  basic_task_manager(basic_task_manager const&) = delete;
  basic_task_manager& operator=(basic_task_manager const&) = delete;

  /** Adds a managed task: a `crew::managed_task` moved in, a `std::shared_ptr` or
      `std::unique_ptr` to one, or `std::ref(t)` (then `t` must outlive the run).
      @param name Names the task's stages in failures ("task N" when empty).
      @throws boost::system::system_error with `crew::error::already_running` once the
      run has started, `crew::error::shut_down` once it has shut down;
      std::invalid_argument for a null pointer or a `kind` out of range.
  */
  template <class Task>
  void add(std::string name, Task&& task, task_kind kind,
           source_location site = source_location::current()) {
    this->state_.add(std::move(name),
                     detail::make_managed(std::forward<Task>(task), "crew::task_manager::add"),
                     kind, site);
  }

  /** Adds an execute-only task: `f` is a callable taking no arguments that returns
      `awaitable<void>` or `awaitable<error_code>`. Before the run it executes with the
      managed tasks; while the run executes it starts at once; added while the run still
      initializes, it starts with the others. Shutdown cancels it like any execute.
      @throws boost::system::system_error with `crew::error::shut_down` once the run has
      begun to shut down (the task is not taken); std::invalid_argument for an empty
      callable or a `kind` out of range.
  */
  template <class F>
  void add_execute_task(std::string name, F&& f, task_kind kind,
                        source_location site = source_location::current()) {
    this->state_.add_execute(
        std::move(name),
        detail::task_factory::make(std::forward<F>(f), "crew::task_manager::add_execute_task"),
        kind, site);
  }

  /// Shuts the run down without an error (as a stop_group would). Before the run, the
  /// run shuts down as soon as its initialization is over. Called again while the run
  /// is ending, it cancels the initialize or cleanup in flight.
  void stop() { this->state_.stop(); }

  /// The number of tasks added (managed and execute-only).
  std::size_t size() const { return this->state_.size(); }

 private:
  friend detail::io_access;
  static detail::task_manager_state make_state(Executor const&, task_manager_options options) {
    return detail::task_manager_state(std::move(options));
  }
};

/// A task manager on `any_io_executor`.
using task_manager = basic_task_manager<>;

}  // namespace crew

#endif
