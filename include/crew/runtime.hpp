//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_RUNTIME_HPP
#define CREW_RUNTIME_HPP

#include <crew/backoff.hpp>
#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/detail/restart_kind.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>
#include <crew/this_task.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/stacktrace/stacktrace.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/** Counts of every crew task of the process, of every component, since it started.
    Once no task runs, `launched == succeeded + failed + cancelled`.
*/
struct runtime_stats {
  /// Tasks made (spawned), including those still queued behind a limit.
  std::uint64_t launched = 0;
  /// Tasks made that have not ended yet.
  std::uint64_t active = 0;
  /// The most `active` ever was.
  std::uint64_t peak_active = 0;
  /// Tasks that returned normally.
  std::uint64_t succeeded = 0;
  /// Tasks that failed: threw, or returned a non-zero error code.
  std::uint64_t failed = 0;
  /// Those of `failed` that threw (the rest returned an error code).
  std::uint64_t exceptions = 0;
  /// Tasks that ended with the `operation_aborted` their cancellation caused, or never
  /// ran to their end (withdrawn before they started, or their execution context was
  /// destroyed).
  std::uint64_t cancelled = 0;
};

/** Where a live task is. */
enum class task_state {
  /// Made, its first step not run yet (posted, or queued behind a group's limit).
  queued,
  /// One of its steps runs on some thread now.
  running,
  /// Started, waiting for something (a timer, a socket, a child...).
  suspended,
};

/// "queued", "running" or "suspended".
char const* to_string(task_state s) noexcept;

/** One live task, as `runtime::snapshot` saw it. */
struct task_record {
  task_info info;
  task_state state = task_state::queued;
  /// How long ago it was made.
  std::chrono::steady_clock::duration age{};
};

/** What `on_task_start` and `on_task_end` return, for `remove_hook`. */
class hook_handle {
 public:
  hook_handle() noexcept = default;
  std::uint64_t id() const noexcept { return id_; }
  explicit operator bool() const noexcept { return id_ != 0; }

 private:
  friend class runtime;
  explicit hook_handle(std::uint64_t id) noexcept : id_(id) {}
  std::uint64_t id_ = 0;
};

/// Called in a task's first step, before its body runs: `parent` is the task that
/// spawned it (empty for a root), `self` the task.
using start_hook = std::function<void(task_info const& parent, task_info const& self)>;
/// Called in a task's last step, after its body ended: `e` is what it threw (a returned
/// code as a `boost::system::system_error`), or null.
using end_hook = std::function<void(task_info const& self, std::exception_ptr e)>;
/// Gets each failure nobody else took that a task returned as an error code.
using error_handler = std::function<void(task_info const& task, std::exception_ptr e)>;
/// Gets each failure nobody else took that a task threw, with the trace of its throw.
using exception_handler = std::function<void(task_info const& task, std::exception_ptr e,
                                             boost::stacktrace::stacktrace const& trace)>;

/** How a background worker is restarted. */
struct worker_options {
  /// `permanent`: after every end; `transient`: after a failure only; `temporary`: never.
  crew::restart restart = crew::restart::permanent;
  /// The wait before each restart: after the n-th failed run in a row `backoff.delay(n)`,
  /// after a run that returned normally `backoff.delay(1)`, and a normal return starts
  /// the count again (as a loop's backoff). By default 100 ms, doubling up to 30 s, so
  /// that a failing worker never spins; `crew::backoff::none()` restarts at once.
  crew::backoff backoff = exponential_backoff{};
  /// The most restarts, or `crew::unlimited`; once reached the worker ends: `failed` if
  /// its last run failed, else `finished`.
  std::size_t max_restarts = unlimited;
  /// The clock the waits run on; null for `crew::clock::steady()`.
  crew::clock* clock = nullptr;
};

/** Where a background worker is. */
enum class worker_state {
  /// A run is in flight.
  running,
  /// Waiting before its next run.
  waiting,
  /// Stopped by `async_stop_worker` or `async_stop_all_workers`, or its execution
  /// context was destroyed while it ran or waited.
  stopped,
  /// Its last run returned normally and its restart policy ended it.
  finished,
  /// Its last run failed and its restart policy (or `max_restarts`) ended it.
  failed,
};

/// "running", "waiting", "stopped", "finished" or "failed".
char const* to_string(worker_state s) noexcept;

/** What `runtime::worker_status` returns. */
struct worker_info {
  worker_state state = worker_state::running;
  /// How many times it was started again.
  std::size_t restarts = 0;
  /// What its most recent failed run threw, or null.
  std::exception_ptr last_error;
};

namespace detail {

using runtime_handler = net::any_completion_handler<void(std::exception_ptr)>;

void go(net::any_io_executor const& ex, task_body body, source_location site);
void go_with_cleanup(net::any_io_executor const& ex, task_body body,
                     unique_function<void()> cleanup, source_location site);
void go_with_retry(net::any_io_executor const& ex, task_factory factory, std::size_t attempts,
                   clock::duration delay, source_location site);
void start_with_timeout(net::any_io_executor const& ex, task_body body, clock::duration timeout,
                        source_location site, runtime_handler handler);
/// @throws std::invalid_argument naming `timeout` if it is negative.
void validate_timeout(clock::duration timeout);

void start_worker(net::any_io_executor const& ex, std::string name, task_factory factory,
                  worker_options const& options, source_location site);
void stop_worker(std::string const& name, runtime_handler handler);
void stop_all_workers(runtime_handler handler);
worker_info worker_status(std::string_view name);
/// @throws std::invalid_argument naming `who` and `name` if there is no such worker.
void require_worker(std::string_view name, char const* who);

template <class E>
concept runtime_executor = net::execution::executor<E> || net::is_executor<E>::value;

}  // namespace detail

/** The process's crew runtime: hooks, handlers, statistics, the task dump, `go` tasks
    and named background workers. There is one, `runtime::global()`; the free functions
    below forward to it. Every member function may be called from any thread.

    Hooks, statistics and tracking attach at the task layer, where every crew task of
    every component is launched and retired: they see group tasks, run group actors,
    loop iterations, supervisor children, retry attempts, managed tasks' stages and
    `go` tasks alike.
*/
class runtime {
 public:
  /// The process's runtime; never destroyed, so that tasks ending during static
  /// destruction still find it.
  static runtime& global() noexcept;

  runtime(runtime const&) = delete;
  runtime& operator=(runtime const&) = delete;

  // ------------------------------------------------------------ tasks

  /** Runs `task` on `ex` as a crew task that nobody waits for: fire and forget, as
      `co_spawn(ex, task, detached)`, except that the task is tracked. Its failure
      reaches the runtime's handlers (stderr by default), never silently dropped.
      @throws std::invalid_argument if `task` is a moved-from awaitable, a null function
      pointer or an empty std::function.
  */
  template <detail::runtime_executor Executor, class Task>
  void go(Executor const& ex, Task&& task, source_location site = source_location::current()) {
    detail::go(net::any_io_executor(ex),
               detail::make_task_body(std::forward<Task>(task), "crew::go"), site);
  }

  /** As `go`, then calls `cleanup()` exactly once after the task ended, whatever the
      reason: success, failure, cancellation, or its execution context destroyed before
      it ended. A cleanup that throws is reported as the task's failure at stage
      `cleanup`.
  */
  template <detail::runtime_executor Executor, class Task, std::invocable Cleanup>
  void go_with_cleanup(Executor const& ex, Task&& task, Cleanup&& cleanup,
                       source_location site = source_location::current()) {
    detail::go_with_cleanup(
        net::any_io_executor(ex),
        detail::make_task_body(std::forward<Task>(task), "crew::go_with_cleanup"),
        detail::unique_function<void()>(std::forward<Cleanup>(cleanup)), site);
  }

  /** As `go`, for a task factory whose task is tried up to `attempts` times, `delay`
      apart: `crew::async_retry` with a constant backoff. Only the last failure reaches
      the handlers.
      @throws std::invalid_argument if `attempts` is 0 or `delay` is negative.
  */
  template <detail::runtime_executor Executor, class F>
  void go_with_retry(Executor const& ex, F&& factory, std::size_t attempts, clock::duration delay,
                     source_location site = source_location::current()) {
    detail::go_with_retry(
        net::any_io_executor(ex),
        detail::task_factory::make(std::forward<F>(factory), "crew::go_with_retry"), attempts,
        delay, site);
  }

  // ------------------------------------------------------------ hooks and handlers

  /** Adds a hook called in the first step of every crew task started from now on,
      before its body, on the task's thread (`this_task` names the task). A hook that
      throws is reported through the failure path; the task and the other hooks go on.
      @throws std::invalid_argument if `hook` is empty.
  */
  hook_handle on_task_start(start_hook hook);

  /// Adds a hook called in the last step of every crew task, after its body ended (for a
  /// task that never started or whose execution context was destroyed: when it is
  /// retired). Same rules as `on_task_start`.
  hook_handle on_task_end(end_hook hook);

  /** Removes a hook. When it returns, the hook is not running on any other thread and
      will not be called again. A hook may remove itself. False if `h` names no hook.
  */
  bool remove_hook(hook_handle h) noexcept;

  /// Sets the handler of failures nobody took that were returned as error codes; null
  /// restores the default, which prints them to stderr. Returns the previous one.
  error_handler set_error_handler(error_handler h);

  /// Sets the handler of failures nobody took that were thrown; null restores the
  /// default, which prints each with its throw-site trace to stderr. Returns the
  /// previous one.
  exception_handler set_exception_handler(exception_handler h);

  // ------------------------------------------------------------ introspection

  /// The counts; all zero while stats are off. Relaxed counters: exact once the tasks
  /// counted have ended.
  runtime_stats stats() const noexcept;

  /// Turns the counting on (the default) or off; a task is counted as it was when made.
  void enable_stats(bool on) noexcept;
  bool stats_enabled() const noexcept;

  /** The most memory crew keeps for later tasks. The node, entry frame, start
      operation and cancellation signal of an ended task go to free lists that the next
      tasks take from, so that bursts of tasks on a warm heap do not go back to malloc
      (docs/internals.md, "Task memory"). Each thread keeps up to two magazines of 128
      blocks per size; beyond that they go to a shared depot that keeps at most `bytes`
      (1 GiB by default), and past it to the heap. Setting it gives back what the depot
      holds now; 0 keeps nothing in the depot.
  */
  void set_task_memory_limit(std::size_t bytes) noexcept;
  std::size_t task_memory_limit() const noexcept;

  /// Bytes in the depot and in the calling thread's free lists now.
  std::size_t task_memory_cached() const noexcept;

  /// Turns task tracking (what `snapshot` and `dump` list) on (the default) or off. A
  /// task is tracked as it was when made.
  void enable_tracking(bool on) noexcept;
  bool tracking_enabled() const noexcept;

  /// The live tracked tasks, parents before children where both are live.
  std::vector<task_record> snapshot() const;

  /// Prints `snapshot()` as a tree, like a Go goroutine dump: one line per task with its
  /// id, name, state, age, owner and spawn site, children indented under parents.
  void dump(std::ostream& os) const;

  // ------------------------------------------------------------ background workers

  /** Starts a named background worker on `ex`: `factory` runs as a crew task, again and
      again as `options` says (by default after every end, with a growing wait), until
      it is stopped. Each failed run reaches the runtime's handlers.
      @throws std::invalid_argument naming the worker if a worker of that name is running
      or waiting (a stopped, finished or failed one is replaced), if `name` is empty, or
      if the factory is null.
  */
  template <detail::runtime_executor Executor, class F>
  void start_worker(Executor const& ex, std::string name, F&& factory,
                    worker_options const& options = {},
                    source_location site = source_location::current()) {
    detail::start_worker(net::any_io_executor(ex), std::move(name),
                         detail::task_factory::make(std::forward<F>(factory), "crew::start_worker"),
                         options, site);
  }

  /** Stops the worker `name`: cancels its run in flight, or its wait, and completes when
      it ended. A handler without an associated executor runs on the worker's executor,
      or on `system_executor` once the worker's execution context is gone; a stop pending
      when that context is destroyed is destroyed with it.
      @throws std::invalid_argument naming it if there is no worker of that name, from
      this call (before any coroutine suspends).
      @par Completion signature
      `void(std::exception_ptr)`: null once stopped.
      @par Per-operation cancellation
      All types: the completion no longer waits for the worker, and completes with
      `operation_aborted`; the worker still stops.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
  auto async_stop_worker(std::string name, CompletionToken&& token) {
    detail::require_worker(name, "crew::async_stop_worker");
    return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [](auto handler, std::string const& n) {
          detail::stop_worker(n, detail::runtime_handler(std::move(handler)));
        },
        token, std::move(name));
  }

  /** Stops every worker, as `async_stop_worker` does, and completes when all ended. A
      handler without an associated executor runs on `system_executor`.
      @par Completion signature
      `void(std::exception_ptr)`: null once all stopped.
      @par Per-operation cancellation
      As `async_stop_worker`.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
  auto async_stop_all_workers(CompletionToken&& token) {
    return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [](auto handler) { detail::stop_all_workers(detail::runtime_handler(std::move(handler))); },
        token);
  }

  /// The state of the worker `name`.
  /// @throws std::invalid_argument naming it if there is no worker of that name.
  worker_info worker_status(std::string_view name) const { return detail::worker_status(name); }

 private:
  runtime() = default;
};

// ---------------------------------------------------------------- free functions

/// `runtime::global().go(ex, task)`.
template <detail::runtime_executor Executor, class Task>
void go(Executor const& ex, Task&& task, source_location site = source_location::current()) {
  runtime::global().go(ex, std::forward<Task>(task), site);
}

/// `runtime::global().go_with_cleanup(ex, task, cleanup)`.
template <detail::runtime_executor Executor, class Task, std::invocable Cleanup>
void go_with_cleanup(Executor const& ex, Task&& task, Cleanup&& cleanup,
                     source_location site = source_location::current()) {
  runtime::global().go_with_cleanup(ex, std::forward<Task>(task), std::forward<Cleanup>(cleanup),
                                    site);
}

/// `runtime::global().go_with_retry(ex, factory, attempts, delay)`.
template <detail::runtime_executor Executor, class F>
void go_with_retry(Executor const& ex, F&& factory, std::size_t attempts, clock::duration delay,
                   source_location site = source_location::current()) {
  runtime::global().go_with_retry(ex, std::forward<F>(factory), attempts, delay, site);
}

/** Runs `task` on `ex` as a crew task, cancelling it (terminal) if it has not ended
    `timeout` after the start, on `crew::clock::steady()`.

    @throws std::invalid_argument if `timeout` is negative, or the task is a moved-from
    awaitable, a null function pointer or an empty std::function.

    @par Completion signature
    `void(std::exception_ptr)`: null when the task returned normally in time; what it
    threw (a returned code as a `boost::system::system_error`); or, when the timeout
    cancelled it, a `system_error` with `crew::error::timed_out`, once the task ended. A
    failure the cancelled task ends with other than `operation_aborted` goes to the
    failure path.

    @par Per-operation cancellation
    All types: cancels the task (terminal); the operation completes once it ended, with
    its outcome (`operation_aborted` for a task that stopped as asked).
*/
template <detail::runtime_executor Executor, class Task,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_with_timeout(Executor const& ex, Task&& task, clock::duration timeout,
                        CompletionToken&& token,
                        source_location site = source_location::current()) {
  // Checked before the initiation: with use_awaitable, Asio 1.26 runs it outside the
  // awaiting coroutine, where an exception would escape io_context::run().
  detail::validate_timeout(timeout);
  auto body = detail::make_task_body(std::forward<Task>(task), "crew::async_with_timeout");
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [](auto handler, net::any_io_executor const& e, detail::task_body&& b, clock::duration t,
         source_location s) {
        detail::start_with_timeout(e, std::move(b), t, s,
                                   detail::runtime_handler(std::move(handler)));
      },
      token, net::any_io_executor(ex), std::move(body), timeout, site);
}

/** As above, on the completion handler's associated executor: for `use_awaitable`, the
    awaiting coroutine's. A plain callback or `use_future` has none: pass an executor.
*/
template <class Task, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
requires(!detail::runtime_executor<std::decay_t<Task>>) auto async_with_timeout(
    Task&& task, clock::duration timeout, CompletionToken&& token,
    source_location site = source_location::current()) {
  // Checked before the initiation: with use_awaitable, Asio 1.26 runs it outside the
  // awaiting coroutine, where an exception would escape io_context::run().
  detail::validate_timeout(timeout);
  auto body = detail::make_task_body(std::forward<Task>(task), "crew::async_with_timeout");
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [](auto handler, detail::task_body&& b, clock::duration t, source_location s) {
        auto ex = net::get_associated_executor(handler);
        detail::start_with_timeout(net::any_io_executor(ex), std::move(b), t, s,
                                   detail::runtime_handler(std::move(handler)));
      },
      token, std::move(body), timeout, site);
}

/// `runtime::global().on_task_start(hook)`.
hook_handle on_task_start(start_hook hook);
/// `runtime::global().on_task_end(hook)`.
hook_handle on_task_end(end_hook hook);
/// `runtime::global().remove_hook(h)`.
bool remove_hook(hook_handle h) noexcept;
/// `runtime::global().set_error_handler(h)`.
error_handler set_error_handler(error_handler h);
/// `runtime::global().set_exception_handler(h)`.
exception_handler set_exception_handler(exception_handler h);
/// `runtime::global().stats()`.
runtime_stats stats() noexcept;
/// `runtime::global().snapshot()`.
std::vector<task_record> snapshot();
/// `runtime::global().dump(os)`.
void dump(std::ostream& os);

/// `runtime::global().start_worker(ex, name, factory, options)`.
template <detail::runtime_executor Executor, class F>
void start_worker(Executor const& ex, std::string name, F&& factory,
                  worker_options const& options = {},
                  source_location site = source_location::current()) {
  runtime::global().start_worker(ex, std::move(name), std::forward<F>(factory), options, site);
}

/// `runtime::global().async_stop_worker(name, token)`.
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_stop_worker(std::string name, CompletionToken&& token) {
  return runtime::global().async_stop_worker(std::move(name), std::forward<CompletionToken>(token));
}

/// `runtime::global().async_stop_all_workers(token)`.
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto async_stop_all_workers(CompletionToken&& token) {
  return runtime::global().async_stop_all_workers(std::forward<CompletionToken>(token));
}

/// `runtime::global().worker_status(name)`.
inline worker_info worker_status(std::string_view name) {
  return runtime::global().worker_status(name);
}

}  // namespace crew

#endif
