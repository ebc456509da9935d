//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_RUN_GROUP_HPP
#define CREW_RUN_GROUP_HPP

#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace crew {

/** One actor of a run group or a loop: a coroutine, and how to stop it.

    Usually built by `run_group::add` from `crew::execute`, `crew::interrupt`,
    `crew::on_failure` and `crew::name`; `crew::signals` returns a whole actor.
*/
struct actor {
  /// Appears in failures and in the report of actors that outlived the grace period.
  std::string name{};
  /// Starts the actor's coroutine; called once per run (once per start for a loop).
  std::function<net::awaitable<void>()> execute{};
  /// Optional: called with the cause when the run is interrupted.
  std::function<void(std::exception_ptr)> interrupt{};
  /// Optional: called for each failure of this actor.
  std::function<void(std::exception_ptr)> on_failure{};
};

namespace detail {
template <class F>
struct execute_part {
  F f;
};
template <class F>
struct interrupt_part {
  F f;
};
template <class F>
struct on_failure_part {
  F f;
};
struct name_part {
  std::string name;
};
}  // namespace detail

/** The actor's body: a callable taking no argument that returns `awaitable<void>`, or
    `awaitable<boost::system::error_code>` (a non-zero code is a failure). Its
    coroutine is cancelled through its own cancellation signal when the run is
    interrupted. The callable is kept until the run ends, so a lambda may capture.
*/
template <class F>
detail::execute_part<std::decay_t<F>> execute(F&& f) {
  return {std::forward<F>(f)};
}

/// Called, on the run group's executor, with the cause when the run is interrupted.
template <class F>
detail::interrupt_part<std::decay_t<F>> interrupt(F&& f) {
  static_assert(std::is_invocable_v<std::decay_t<F>&, std::exception_ptr>,
                "crew::interrupt: the callback takes a std::exception_ptr (the cause)");
  return {std::forward<F>(f)};
}

/// Called with every failure of the actor, as it happens.
template <class F>
detail::on_failure_part<std::decay_t<F>> on_failure(F&& f) {
  static_assert(std::is_invocable_v<std::decay_t<F>&, std::exception_ptr>,
                "crew::on_failure: the callback takes a std::exception_ptr");
  return {std::forward<F>(f)};
}

/// The actor's name, for failures and for the grace-period report.
inline detail::name_part name(std::string n) {
  return {std::move(n)};
}

/// SIGINT and SIGTERM.
std::vector<int> default_signals();

/** An actor that waits for one of `signos` and ends with `crew::signal_received`.

    It registers the signals with a `signal_set` when it starts and releases them when
    it ends, so the default disposition is back once the run is over.
    @throws std::invalid_argument if `signos` is empty or holds an invalid number.
*/
actor signals(std::vector<int> signos);
actor signals(std::initializer_list<int> signos);

/** Options of a run group. */
struct run_group_options {
  /// How long actors may take to return once the run is interrupted. When it runs
  /// out, the actors still running are cancelled again (terminal) and named in the
  /// result. `duration::max()` (the default) waits without limit.
  crew::clock::duration shutdown_grace = crew::clock::duration::max();
  /// The clock the grace period is measured on; null is `crew::clock::steady()`.
  crew::clock* clock = nullptr;
  /// Appears in diagnostics.
  std::string name{};
};

namespace detail {
class run_core;
using run_handler = net::any_completion_handler<void(std::exception_ptr)>;
/// Validates the options; names the run group kind in the message.
void check_options(run_group_options const& o, char const* who);
/// Prepares a run of `actors` (copied) that completes `handler` when it is over.
std::shared_ptr<run_core> make_run(net::any_io_executor const& ex, run_group_options const& options,
                                   std::vector<actor> const& actors, run_handler handler,
                                   char const* owner);
/// Starts the run: spawns its actors.
void start_run(run_core& core);
/// Interrupts a run with `cause`, as if an actor had returned with it.
void interrupt_run(run_core& core, std::exception_ptr cause) noexcept;
/// Whether the run is still going: it has not yet handed its result to its handler.
bool run_in_progress(std::weak_ptr<run_core> const& core) noexcept;
/// Posts `handler(e)` through `ex`.
void complete_at_once(net::any_io_executor const& ex, run_handler handler, std::exception_ptr e);
template <class F>
std::function<net::awaitable<void>()> make_execute(F&& f);
}  // namespace detail

/** Actors that run together and stop together: Go's oklog/run, for Asio coroutines.

    When the first actor returns, with or without an error, the run is interrupted:
    every actor's coroutine is cancelled through its own cancellation signal (terminal)
    and every interrupt callback is called with the cause, in reverse order of `add`,
    on the group's executor. A callback that throws never stops the others. The run
    completes once every actor has returned.

    @tparam Executor The executor actors run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_run_group {
 public:
  using executor_type = Executor;

  template <class OtherExecutor>
  struct rebind_executor {
    using other = basic_run_group<OtherExecutor>;
  };

  explicit basic_run_group(executor_type const& ex);

  /// @throws std::invalid_argument if `options.shutdown_grace` is negative.
  basic_run_group(executor_type const& ex, run_group_options options);

  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, net::execution_context&>
  explicit basic_run_group(ExecutionContext& ctx)
      : basic_run_group(executor_type(ctx.get_executor())) {}

  /// Interrupts a run in progress (cause: `crew::error::shut_down`) and returns at
  /// once; the run's state lives until its actors have returned.
  ~basic_run_group();

  basic_run_group(basic_run_group const&) = delete;
  basic_run_group& operator=(basic_run_group const&) = delete;

  executor_type get_executor() const noexcept { return ex_; }

  /// Adds an actor. @throws boost::system::system_error with `crew::error::already_running`
  /// while a run is in progress; std::invalid_argument if `a.execute` is empty.
  void add(actor a);

  /** Adds an actor made of `crew::execute(f)` and, in any order, optionally
      `crew::interrupt(g)`, `crew::on_failure(h)` and `crew::name(n)`.
  */
  template <class... Parts>
  requires(sizeof...(Parts) >= 1) void add(Parts&&... parts);

  /// The number of actors added.
  std::size_t size() const;

  /** Runs every actor until the first returns, then interrupts the rest and waits.

      @par Completion signature
      `void(std::exception_ptr)`: the cause, which is what the first actor to return
      threw (`nullptr` if it returned normally; `crew::signal_received` for a signal
      actor). If the run also saw actors outlive the shutdown grace, or interrupt
      callbacks throw, it is a `crew::task_errors` listing the cause first, then one
      `crew::error::timed_out` failure per late actor (by name), then the callbacks'
      exceptions. Other actors' failures go to their `on_failure` (to stderr when they
      have none). An empty group completes at once with `nullptr`; a second run while
      one is in progress completes with `crew::error::already_running`.

      @par Per-operation cancellation
      All types. Cancelling the run interrupts it with an `operation_aborted` cause;
      the run completes after every actor returned.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_run(CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type));

  /// `co_await rg.run()`: rethrows the cause.
  template <class AwaitableExecutor = net::any_io_executor>
  net::awaitable<void, AwaitableExecutor> run() {
    return async_run(net::use_awaitable_t<AwaitableExecutor>{});
  }

  /// Interrupts the run in progress as if an actor had returned normally (the cause
  /// is `nullptr`). With no run in progress, the next run is interrupted as soon as
  /// it has started.
  void interrupt();

 private:
  executor_type ex_;
  run_group_options options_;
  mutable std::mutex mutex_;
  std::vector<actor> actors_;
  std::weak_ptr<detail::run_core> running_;
  bool interrupt_pending_ = false;
};

/// A run group on `any_io_executor`.
using run_group = basic_run_group<>;

}  // namespace crew

#include <crew/impl/run_group.hpp>

#endif
