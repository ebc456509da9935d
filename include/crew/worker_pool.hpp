//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_WORKER_POOL_HPP
#define CREW_WORKER_POOL_HPP

#include <crew/config.hpp>
#include <crew/detail/group_core.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace crew {

/** Options of a worker pool, besides its size. */
struct worker_pool_options {
  /// Called once per failure, after it is recorded, on the pool's executor, one call at
  /// a time, as a task group's `on_failure`.
  std::function<void(task_failure const&)> on_failure{};
  /// Appears in diagnostics.
  std::string name{};
  /// The most failures kept between two completed waits, as a task group's.
  std::size_t keep_failures = 1024;
};

/** What a worker pool has done so far, and holds now. */
struct worker_pool_stats {
  std::uint64_t submitted = 0;  ///< accepted: started, or queued
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  /// Ended cancelled (by cancel(), a cancelled wait, or the pool's destruction),
  /// including the ones dropped from the queue.
  std::uint64_t cancelled = 0;
  std::uint64_t dropped = 0;  ///< of the cancelled, dropped from the queue before they ran
  std::size_t running = 0;
  std::size_t queued = 0;
  std::size_t waiting = 0;  ///< submissions waiting for room in the queue
};

namespace detail {
struct pool_config {
  std::size_t workers;
  std::size_t queue_capacity;
  worker_pool_options options;
};

/// The pool's state: a group core in pool mode (lib/worker_pool.cpp).
std::shared_ptr<group_core> make_pool_core(net::any_io_executor ex, pool_config config);

/// What the core counted, as the pool reports it.
worker_pool_stats pool_stats(group_core const& core) noexcept;
}  // namespace detail

/** A fixed number of workers running submitted tasks, fed by a bounded queue.

    Each submitted task is a crew task, as a task group's: it gets its own
    `cancellation_signal`, and a failure is recorded as a `task_failure` whose `index`
    is the task's submission number (0 for the first task the pool accepted). At most
    `workers` tasks run at once; up to `queue_capacity` more wait, in order. When the
    queue is full, `async_submit` waits for room (back-pressure) and `try_submit`
    refuses.

    All member functions may be called from any thread. Destroying the pool never
    blocks: it drops the queued tasks, cancels the running ones and refuses the
    submissions still waiting; the tasks finish on their own.

    @tparam Executor The executor tasks run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_worker_pool : public detail::io_object<basic_worker_pool, Executor, detail::pool_config,
                                                   std::shared_ptr<detail::group_core>> {
 public:
  using executor_type = Executor;

  /** A pool on `ex` (an executor, or an execution context such as an io_context).
      @param workers How many tasks run at once: at least 1, or `crew::unlimited`.
      @param queue_capacity How many accepted tasks may wait for a worker: at least 1,
      or `crew::unlimited`.
      @throws std::invalid_argument naming the parameter if it is 0.
  */
  template <detail::executor_or_context<Executor> E>
  basic_worker_pool(E&& ex, std::size_t workers, std::size_t queue_capacity)
      : basic_worker_pool::io_object(std::forward<E>(ex),
                                     detail::pool_config{workers, queue_capacity, {}}) {}

  /// The same, with a name, a failure handler or a retention bound.
  template <detail::executor_or_context<Executor> E>
  basic_worker_pool(E&& ex, std::size_t workers, std::size_t queue_capacity,
                    worker_pool_options options)
      : basic_worker_pool::io_object(
            std::forward<E>(ex), detail::pool_config{workers, queue_capacity, std::move(options)}) {
  }

  basic_worker_pool(basic_worker_pool&& other) noexcept = default;

  /// Shuts this pool down, as the destructor does, then takes over `other`'s tasks.
  basic_worker_pool& operator=(basic_worker_pool&& other) noexcept;

  /// Drops the queue, cancels the running tasks and returns at once.
  ~basic_worker_pool();

  /** Submits a task: it starts if a worker is free, else it is queued; when the queue is
      full, the operation waits for room.

      @param task An rvalue `awaitable<void>` or `awaitable<error_code>`, or a callable
      returning one, as a task group takes.
      @throws std::invalid_argument if `task` is a moved-from awaitable, a null function
      pointer or an empty std::function.

      @par Completion signature
      `void(boost::system::error_code)`: success once the task was accepted (started or
      queued; it may not have run yet); `crew::error::shut_down` if the pool was shut
      down or destroyed before it accepted the task; `operation_aborted` if the
      submission was cancelled, or `cancel()` ran, while it waited for room. With
      `use_awaitable` (plain), a task accepted at once is accepted without suspending
      the caller; a caller already cancelled gets `operation_aborted` first.

      @par Per-operation cancellation
      All types. While the submission waits for room, the task is dropped without ever
      running and the operation completes with `operation_aborted`; once accepted,
      cancellation has no effect.
  */
  template <class Task, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code))
                            CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_submit(Task&& task,
                    CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type),
                    source_location site = source_location::current());

  /// The same, for a named task or one with its own failure handler.
  template <class Task, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code))
                            CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_submit(Task&& task, spawn_options options,
                    CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type),
                    source_location site = source_location::current());

  /** Submits a task only if a worker or a place in the queue is free now.

      @returns false when the queue is full; `task` is then left as it was.
      @throws boost::system::system_error with `crew::error::shut_down` once the pool
      is shut down; std::invalid_argument as `async_submit`.
  */
  template <class Task>
  bool try_submit(Task&& task, source_location site = source_location::current());

  template <class Task>
  bool try_submit(Task&& task, spawn_options options,
                  source_location site = source_location::current());

  /** Waits for every task the pool accepted before this call.

      Tasks accepted later do not hold it up, so it completes on a pool that never
      runs dry.

      @par Completion signature
      `void(std::exception_ptr)`: null if no task failed since the last completed wait,
      else a `crew::task_errors` holding every failure recorded by then (also those of
      later tasks that already failed), each handed to one wait only.

      @par Per-operation cancellation
      All types. Cancelling the wait cancels the pool's work, as `cancel()`, and the
      wait completes once the tasks it waited for ended, with `operation_aborted`
      unless some task really failed.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_wait(CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type));

  /** Stops accepting tasks, lets the queue drain, and completes once the pool is idle.

      From the call on, submissions complete with (and `try_submit` throws)
      `crew::error::shut_down`, including those that were waiting for room. The pool
      stays shut down.

      @par Completion signature
      `void(std::exception_ptr)`: as `async_wait`.

      @par Per-operation cancellation
      All types. Stops the drain: the queued tasks are dropped, the running ones
      cancelled, and the operation completes once they ended, with `operation_aborted`
      unless some task really failed.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_shutdown(CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type));

  /** Cancels the work in the pool now: emits `type` on every running task, drops every
      queued task (counted in `stats().dropped`; the runtime sees it end as cancelled),
      and refuses the submissions waiting for room with `operation_aborted`. Tasks
      submitted afterwards run as usual.
  */
  void cancel(net::cancellation_type type = net::cancellation_type::terminal) {
    state().cancel(type);
  }

  /// Changes the number of workers; more start queued tasks at once.
  /// @throws std::invalid_argument if `workers` is 0.
  void set_workers(std::size_t workers) { state().set_limit(workers); }

  std::size_t workers() const noexcept { return this->state_ ? this->state_->limit() : 0; }

  /// What the pool did and holds now.
  worker_pool_stats stats() const noexcept;

  /// The failures recorded since the last completed wait, in order.
  std::vector<task_failure> failures() const { return state().failures(); }

  /// `co_await pool.wait()`: the awaitable form of async_wait; throws `crew::task_errors`.
  template <class AwaitableExecutor = net::any_io_executor>
  net::awaitable<void, AwaitableExecutor> wait() {
    return async_wait(net::use_awaitable_t<AwaitableExecutor>{});
  }

  /// `co_await pool.shutdown()`: the awaitable form of async_shutdown.
  template <class AwaitableExecutor = net::any_io_executor>
  net::awaitable<void, AwaitableExecutor> shutdown() {
    return async_shutdown(net::use_awaitable_t<AwaitableExecutor>{});
  }

 private:
  using initiate_submit = detail::initiate_group_spawn<Executor>;
  using initiate_wait = detail::initiate_group_wait<Executor>;

  detail::group_core& state() const;

  friend detail::io_access;
  static std::shared_ptr<detail::group_core> make_state(Executor const& ex,
                                                        detail::pool_config config);
};

/// A worker pool on `any_io_executor`.
using worker_pool = basic_worker_pool<>;

}  // namespace crew

#include <crew/impl/worker_pool.hpp>

#endif
