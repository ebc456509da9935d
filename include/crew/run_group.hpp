//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_RUN_GROUP_HPP
#define CREW_RUN_GROUP_HPP

#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>

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
  /// Optional: called once when a run starts, inside the call that starts it and before
  /// any actor runs, with the run's executor. `crew::signals` registers its signals
  /// here, so that a signal sent once the run has started is caught.
  std::function<void(net::any_io_executor const&)> prepare{};
};

namespace detail {
template <class F>
struct execute_part {
  F f;
  source_location site;
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

    @param site Defaults to the caller's location, the actor's spawn site in failures.
*/
template <class F>
detail::execute_part<std::decay_t<F>> execute(F&& f,
                                              source_location site = source_location::current()) {
  return {std::forward<F>(f), site};
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

    It registers the signals with a `signal_set` when its run starts (`actor::prepare`)
    and releases them when it ends, so the default disposition is back once the run is
    over. Started again (by a loop or a supervisor), it registers when it starts.
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

/// @throws std::invalid_argument naming `who` if `signos` is empty, or holds a number
/// that is not a signal or a signal that cannot be caught.
void check_signals(char const* who, std::vector<int> const& signos);
struct loop_settings;

/// An actor as added, with where it was added.
struct actor_entry {
  actor a;
  source_location site;
};

/// What a run group, and a loop (a run group whose actors restart), keep: compiled in lib/.
class run_group_state final : public runnable {
 public:
  /// @throws std::invalid_argument naming the field if an option is out of range.
  run_group_state(run_group_options options, std::shared_ptr<loop_settings const> loop = nullptr);
  run_group_state(run_group_state const&) = delete;
  run_group_state& operator=(run_group_state const&) = delete;
  /// Interrupts a run in progress with crew::error::shut_down.
  ~run_group_state();

  /// @throws std::invalid_argument if `a.execute` is empty; system_error with
  /// already_running while a run is in progress.
  void add(actor a, source_location site);
  std::size_t size() const;
  void interrupt();
  /// Starts a run of the actors that completes `handler`; a second one completes it with
  /// already_running.
  void start_run(net::any_io_executor const& ex, run_handler handler) override;

 private:
  run_group_options const options_;
  std::shared_ptr<loop_settings const> const loop_;
  char const* const kind_;
  mutable std::mutex mutex_;
  std::vector<actor_entry> actors_;
  std::weak_ptr<run_core> running_;
  bool interrupt_pending_ = false;
};

template <class F>
void add_part(actor& a, source_location& site, execute_part<F>&& p) {
  if (a.execute) throw std::invalid_argument("crew::run_group::add: two crew::execute parts");
  a.execute = make_void_factory(std::move(p.f), "crew::execute");
  site = p.site;
}

inline void add_part(actor& a, source_location&, name_part&& p) {
  a.name = std::move(p.name);
}

template <class F>
void add_part(actor& a, source_location&, interrupt_part<F>&& p) {
  a.interrupt = std::move(p.f);
}

template <class F>
void add_part(actor& a, source_location&, on_failure_part<F>&& p) {
  a.on_failure = std::move(p.f);
}

/// Builds the actor the parts describe, and where its `crew::execute` was called.
template <class... Parts>
std::pair<actor, source_location> make_actor(Parts&&... parts) {
  std::pair<actor, source_location> out;
  (add_part(out.first, out.second, std::decay_t<Parts>(std::forward<Parts>(parts))), ...);
  return out;
}
}  // namespace detail

/** Actors that run together and stop together: Go's oklog/run, for Asio coroutines.

    When the first actor returns, with or without an error, the run is interrupted:
    every actor's coroutine is cancelled through its own cancellation signal (terminal)
    and every interrupt callback is called with the cause, in reverse order of `add`,
    on the group's executor. A callback that throws never stops the others. The run
    completes once every actor has returned.

    `async_run(token)` (and `co_await rg.run()`, which rethrows) runs every actor until
    the first returns, then interrupts the rest and waits.

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

    @tparam Executor The executor actors run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_run_group : public detail::run_object<basic_run_group, Executor, run_group_options,
                                                  detail::run_group_state> {
 public:
  /** `basic_run_group(ex[, options])`: a run group on `ex` (an executor, or an execution
      context such as an io_context).
      @throws std::invalid_argument if `options.shutdown_grace` is negative.
  */
  using basic_run_group::run_object::run_object;

  /// Interrupts a run in progress (cause: `crew::error::shut_down`) and returns at
  /// once; the run's state lives until its actors have returned.
  ~basic_run_group() = default;

  basic_run_group(basic_run_group const&) = delete;
  basic_run_group& operator=(basic_run_group const&) = delete;

  /** Adds an actor. @throws boost::system::system_error with `crew::error::already_running`
      while a run is in progress; std::invalid_argument if `a.execute` is empty.
      @param site Defaults to the caller's location, the actor's spawn site in failures.
  */
  void add(actor a, source_location site = source_location::current()) {
    this->state_.add(std::move(a), site);
  }

  /** Adds an actor made of `crew::execute(f)` and, in any order, optionally
      `crew::interrupt(g)`, `crew::on_failure(h)` and `crew::name(n)`. Its spawn site is
      where `crew::execute` was called.
  */
  template <class... Parts>
  requires(sizeof...(Parts) >= 1 &&
           (!std::is_same_v<std::decay_t<Parts>, actor> && ...)) void add(Parts&&... parts) {
    auto [a, site] = detail::make_actor(std::forward<Parts>(parts)...);
    this->state_.add(std::move(a), site);
  }

  /// The number of actors added.
  std::size_t size() const { return this->state_.size(); }

  /// Interrupts the run in progress as if an actor had returned normally (the cause
  /// is `nullptr`). With no run in progress, the next run is interrupted as soon as
  /// it has started.
  void interrupt() { this->state_.interrupt(); }

 private:
  friend detail::io_access;
  static detail::run_group_state make_state(Executor const&, run_group_options options) {
    return detail::run_group_state(std::move(options));
  }
};

/// A run group on `any_io_executor`.
using run_group = basic_run_group<>;

}  // namespace crew

#endif
