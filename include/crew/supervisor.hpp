//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_SUPERVISOR_HPP
#define CREW_SUPERVISOR_HPP

#include <crew/backoff.hpp>
#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/detail/restart_kind.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/run_group.hpp>
#include <crew/source_location.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace crew {

/** Which children a supervisor restarts when one of them must be restarted. */
enum class restart_strategy {
  /// Only the child that ended.
  one_for_one,
  /// Every child: the others are cancelled, and once they all ended every one of them
  /// starts again, in the order they were added.
  one_for_all,
  /// The child that ended and every child added after it, which are cancelled first.
  rest_for_one,
};

/// "one_for_one", "one_for_all" or "rest_for_one".
char const* to_string(restart_strategy s) noexcept;

/** Options of one child of a supervisor. */
struct child_options {
  /// When the child is started again after it ended.
  crew::restart restart = crew::restart::permanent;
};

/** Options of a supervisor. Designated initializers keep call sites readable. */
struct supervisor_options {
  /// Which children restart together.
  restart_strategy strategy = restart_strategy::one_for_one;
  /// The most restarts allowed within `period`; one more and the supervisor fails
  /// upward. 0 allows none. A restart of several children at once counts once.
  std::size_t intensity = 3;
  /// The sliding window `intensity` is counted in; must be positive.
  std::chrono::steady_clock::duration period = std::chrono::seconds(5);
  /// The wait before each restart; the n-th restart within `period` waits
  /// `restart_delay.delay(n)`. None by default.
  crew::backoff restart_delay{};
  /// Sees every child failure, one call at a time, on the supervisor's executor. A
  /// handler that throws has its exception recorded in the run's result (stage
  /// `handler`).
  std::function<void(task_failure const&)> on_failure{};
  /// The clock the restart window and delays are measured on; null is
  /// `crew::clock::steady()`. It must outlive the supervisor's runs.
  crew::clock* clock = nullptr;
  /// Appears in diagnostics.
  std::string name{};
};

/** Where a child of a supervisor stands. */
enum class child_state {
  /// Not started: no run in progress, or added while the run shuts down.
  idle,
  /// Its task runs (possibly still in its restart delay).
  running,
  /// The supervisor cancelled it and waits for it to end.
  stopping,
  /// Ended; it starts again once the siblings being restarted with it ended.
  restarting,
  /// Ended, and not started again in this run.
  ended,
};

/// "idle", "running", "stopping", "restarting" or "ended".
char const* to_string(child_state s) noexcept;

/** A snapshot of one child, as `basic_supervisor::children()` returns it. */
struct child_info {
  std::string name;
  crew::restart restart = crew::restart::permanent;
  child_state state = child_state::idle;
  /// How many times the child was started again in the current (or last) run.
  std::size_t restarts = 0;
};

/** The failure a supervisor reports when a child needed more restarts than its
    intensity allows. Its `task_failure` in the run's result is named after the child.
*/
class restart_intensity_exceeded : public std::runtime_error {
 public:
  /// @param last_failure The `what()` of the child's last failure; empty if its last
  /// run returned normally.
  restart_intensity_exceeded(std::string const& supervisor, std::string const& child,
                             std::size_t intensity, std::chrono::steady_clock::duration period,
                             std::string const& last_failure);

  /// The name of the child that needed one restart too many.
  std::string const& child() const noexcept { return *child_; }
  std::size_t intensity() const noexcept { return intensity_; }
  std::chrono::steady_clock::duration period() const noexcept { return period_; }

 private:
  std::shared_ptr<std::string const> child_;
  std::size_t intensity_;
  std::chrono::steady_clock::duration period_;
};

namespace detail {
class supervisor_core;

/// The state of a supervisor, compiled in lib/supervisor.cpp.
std::shared_ptr<supervisor_core> make_supervisor(net::any_io_executor const& ex,
                                                 supervisor_options options);
/// @throws std::invalid_argument if `name` is empty or taken, or `restart` is invalid.
void add_child(supervisor_core& core, std::string name, task_factory factory, restart r,
               source_location site,
               std::function<void(net::any_io_executor const&)> prepare = nullptr);
/// The supervisor's runs.
runnable& runnable_of(supervisor_core& core) noexcept;
void cancel_supervisor(supervisor_core& core) noexcept;
void shut_down_supervisor(supervisor_core& core) noexcept;
bool supervisor_running(supervisor_core const& core) noexcept;
std::size_t supervisor_size(supervisor_core const& core) noexcept;
std::vector<child_info> supervisor_children(supervisor_core const& core);
}  // namespace detail

/** A supervisor: runs named child tasks and restarts them as their restart mode and
    the strategy say, up to a restart intensity (Erlang/OTP's supervisor, Go's suture).

    A child is a name, a factory (a callable returning `awaitable<void>` or
    `awaitable<boost::system::error_code>`, called again for every start) and a
    restart mode. Each start of a child is a crew task of its own, so it can be
    cancelled alone. An `operation_aborted` that ends a child the supervisor cancelled
    is a cancellation, never a failure.

    Past its intensity (more than `intensity` restarts within `period`), the
    supervisor cancels every child, waits for them, and its run fails with a
    `crew::task_errors` whose first failure is a `restart_intensity_exceeded` named
    after the child. A supervisor's `run()` can itself be a child's factory:
    supervisors nest, and an inner one failing upward is a failure of that child.

    All member functions may be called from any thread. Destroying the supervisor
    cancels its run, as `cancel()` does, and never blocks.

    `async_run(token)` (and `co_await sup.run()`, which throws what it reports) starts
    every child and supervises them until none is left to run.

    @par Completion signature
    `void(std::exception_ptr)`:
    - null once no child runs and none is due for a restart (every child ended for
      good: temporary ones, transient ones that returned), and no failure is left
      unhandled;
    - a `crew::task_errors` when the intensity was exceeded (first a
      `restart_intensity_exceeded` named after the child, then that child's last
      failure), or when a failure was not answered by a restart: a temporary
      child's failure, a failure while the supervisor shut its children down, an
      `on_failure` handler that threw;
    - `operation_aborted` when the run was cancelled and no failure is left
      unhandled;
    - `crew::error::already_running` if another run of this supervisor is in progress.
    An empty supervisor completes at once. A supervisor can run again after a run
    completed: every child starts afresh.

    @par Per-operation cancellation
    All types. Cancelling the run cancels every child (terminal); the run completes
    once they all ended, as described above.

    @tparam Executor The executor the children run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_supervisor : public detail::run_object<basic_supervisor, Executor, supervisor_options,
                                                   std::shared_ptr<detail::supervisor_core>> {
 public:
  /** `basic_supervisor(ex[, options])`: a supervisor on `ex` (an executor, or an
      execution context such as an io_context). The default options make a one_for_one
      supervisor allowing 3 restarts in 5 seconds.
      @throws std::invalid_argument if `options.period` is not positive or
      `options.strategy` is not a `restart_strategy`.
  */
  using basic_supervisor::run_object::run_object;

  basic_supervisor(basic_supervisor&& other) noexcept = default;

  /// Cancels this supervisor's run (as the destructor does), then takes over `other`.
  basic_supervisor& operator=(basic_supervisor&& other) noexcept {
    if (this != &other) {
      if (this->state_) detail::shut_down_supervisor(*this->state_);
      this->ex_ = std::move(other.ex_);
      this->state_ = std::move(other.state_);
    }
    return *this;
  }

  /// Cancels the run in progress, if any, and returns at once.
  ~basic_supervisor() {
    if (this->state_) detail::shut_down_supervisor(*this->state_);
  }

  /** Adds a permanent child. While a run is in progress the child starts at once.

      @param name Unique among the children; names the child's failures.
      @param factory A callable taking no arguments that returns `awaitable<void>` or
      `awaitable<boost::system::error_code>` (a non-zero code is a failure). It is
      called for every start, always from the child's own task.
      @param site Defaults to the caller's location.
      @throws std::invalid_argument if `name` is empty or taken, or `factory` is a null
      function pointer or an empty std::function.
  */
  template <class Factory>
  void add(std::string name, Factory&& factory, source_location site = source_location::current()) {
    add(std::move(name), std::forward<Factory>(factory), child_options{}, site);
  }

  /// Adds a child with its own restart mode.
  template <class Factory>
  void add(std::string name, Factory&& factory, child_options options,
           source_location site = source_location::current()) {
    auto& core = state();
    detail::task_factory f;
    try {
      f = detail::task_factory::make(std::forward<Factory>(factory), "crew::supervisor::add");
    } catch (std::invalid_argument const&) {
      throw std::invalid_argument("crew::supervisor::add: the factory of child \"" + name +
                                  "\" is empty");
    }
    detail::add_child(core, std::move(name), std::move(f), options.restart, site);
  }

  /** Adds an actor as a child, named after it: its `execute` is the factory, and its
      `prepare` (with which `crew::signals` registers) runs when a run starts, or at
      once while one is in progress. Its `interrupt` and `on_failure` must be empty:
      a supervisor stops children by cancelling them, and reports through
      `supervisor_options::on_failure`.
      @throws std::invalid_argument if `a.name` or `a.execute` is empty, or `a.interrupt`
      or `a.on_failure` is set.
  */
  void add(actor a, child_options options = {}, source_location site = source_location::current()) {
    auto& core = state();
    if (a.interrupt || a.on_failure)
      throw std::invalid_argument("crew::supervisor::add: the actor '" + a.name +
                                  "' has an interrupt or on_failure, which a child cannot have");
    detail::add_child(core, a.name,
                      detail::task_factory::make(std::move(a.execute),
                                                 "crew::supervisor::add: the actor's execute"),
                      options.restart, site, std::move(a.prepare));
  }

  /// Cancels the run in progress, as cancelling async_run does. With no run in
  /// progress (or one initiated whose body has not started yet), the next run is
  /// cancelled as soon as it starts.
  void cancel() { detail::cancel_supervisor(state()); }

  /// Whether a run is in progress.
  bool running() const noexcept {
    return this->state_ && detail::supervisor_running(*this->state_);
  }

  /// The number of children added.
  std::size_t size() const noexcept {
    return this->state_ ? detail::supervisor_size(*this->state_) : 0;
  }

  /// A snapshot of every child, in the order they were added.
  std::vector<child_info> children() const { return detail::supervisor_children(state()); }

 private:
  friend detail::io_access;
  static std::shared_ptr<detail::supervisor_core> make_state(Executor const& ex,
                                                             supervisor_options options) {
    return detail::make_supervisor(net::any_io_executor(ex), std::move(options));
  }

  detail::runnable& runnable_state() { return detail::runnable_of(state()); }

  detail::supervisor_core& state() const {
    if (!this->state_) throw std::logic_error("crew::supervisor: the supervisor was moved from");
    return *this->state_;
  }
};

/// A supervisor on `any_io_executor`.
using supervisor = basic_supervisor<>;

}  // namespace crew

#endif
