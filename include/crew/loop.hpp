//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_LOOP_HPP
#define CREW_LOOP_HPP

#include <crew/backoff.hpp>
#include <crew/clock.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/run_group.hpp>

#include <memory>
#include <string>

namespace crew {

/** Options of a loop. */
struct loop_options {
  /// The wait before an actor that returned normally starts again.
  crew::clock::duration restart_delay = crew::clock::duration::zero();
  /// The wait before an actor that failed starts again, by the number of consecutive
  /// failures (at least `restart_delay`). By default 100 ms, doubling up to 30 s, so an
  /// actor that fails at once cannot spin a core; `crew::backoff::none()` turns it off.
  crew::backoff backoff = exponential_backoff{};
  /// As `run_group_options::shutdown_grace`.
  crew::clock::duration shutdown_grace = crew::clock::duration::max();
  /// The clock every wait is measured on; null is `crew::clock::steady()`.
  crew::clock* clock = nullptr;
  /// Appears in diagnostics.
  std::string name{};
};

namespace detail {
class restart_policy;
/// The policy that restarts a loop's actor (lib/loop.cpp); `on_start` hears each
/// run's task id.
std::unique_ptr<restart_policy> make_loop_policy(actor const& a, source_location site,
                                                 std::shared_ptr<loop_settings const> settings,
                                                 std::function<void(std::uint64_t)> on_start);
/// @throws std::invalid_argument naming the field if an option is out of range.
std::shared_ptr<loop_settings const> make_loop_settings(loop_options const& options);
/// The same, for a policy whose failures are reported under `owner_kind` (a string
/// literal) instead of "loop": `crew::tasks::repeatable` is a loop's actor of its own.
std::shared_ptr<loop_settings const> make_loop_settings(loop_options const& options,
                                                        char const* owner_kind);
/// A failed run of an actor, or of a provided task: to `on_failure` if there is one,
/// else (or if it throws, as a failure of stage `handler`) to the failure path, reported
/// as `<owner_kind> '<owner_name>' had a failure nobody handled`.
void handle_failure(std::function<void(std::exception_ptr)> const& on_failure,
                    char const* owner_kind, std::string const& owner_name, task_failure f) noexcept;
run_group_options run_options_of(loop_options const& options);
}  // namespace detail

/** Actors that are started again whenever they return, until the loop is stopped:
    the seed's `run.Loop`.

    Each actor runs in its own restart loop: when it returns it starts again after
    `restart_delay`, and after a failure (seen by its `on_failure`, or printed to
    stderr when it has none) after the backoff for its consecutive failures. Between
    two starts the actor always yields, so it never starves others. Stopping the loop,
    or cancelling its run, interrupts every actor as a run group does (interrupt
    callbacks in reverse order of `add`, then cancellation) and waits for them.

    `async_run(token)` (and `co_await lp.run()`) runs the actors, each restarted
    whenever it returns, until `stop()`.

    @par Completion signature
    `void(std::exception_ptr)`: `nullptr` once stopped; `operation_aborted` when the
    run was cancelled; a `crew::task_errors` if actors outlived the shutdown grace or
    interrupt callbacks threw (as `run_group::async_run`). An empty loop completes at
    once.

    @par Per-operation cancellation
    All types: stops the loop with an `operation_aborted` cause and completes once
    every actor returned.

    @tparam Executor The executor actors run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_loop
    : public detail::run_object<basic_loop, Executor, loop_options, detail::run_group_state> {
 public:
  /** `basic_loop(ex[, options])`: a loop on `ex` (an executor, or an execution context
      such as an io_context).
      @throws std::invalid_argument if `restart_delay` or `shutdown_grace` is negative.
  */
  using basic_loop::run_object::run_object;

  /// Stops a run in progress and returns at once.
  ~basic_loop() = default;

  /// Adds an actor; as `run_group::add`. Each of its runs is a crew task, spawned at
  /// `site` (the caller's location by default).
  void add(actor a, source_location site = source_location::current()) {
    this->state_.add(std::move(a), site);
  }

  /// Adds an actor made of `crew::execute(f)` and optionally `crew::interrupt(g)`,
  /// `crew::on_failure(h)` and `crew::name(n)`.
  template <class... Parts>
  requires(sizeof...(Parts) >= 1 &&
           (!std::is_same_v<std::decay_t<Parts>, actor> && ...)) void add(Parts&&... parts) {
    auto [a, site] = detail::make_actor(std::forward<Parts>(parts)...);
    add(std::move(a), site);
  }

  std::size_t size() const { return this->state_.size(); }

  /// Interrupts every actor (the cause is `nullptr`); the run completes once they all
  /// returned. With no run in progress, the next run stops as soon as it started.
  void stop() { this->state_.interrupt(); }

 private:
  friend detail::io_access;
  static detail::run_group_state make_state(Executor const&, loop_options const& options) {
    return detail::run_group_state(detail::run_options_of(options),
                                   detail::make_loop_settings(options));
  }
};

/// A loop on `any_io_executor`.
using loop = basic_loop<>;

}  // namespace crew

#endif
