//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The restart driver: runs a job as a crew task, classifies how the run ended,
// asks a policy what follows (stop, run again after a delay on the crew::clock, or hold
// until told), and does it. A loop's actor, a supervisor's child, a retry and a
// composed operation's body are policies over it. Compiled in lib/restart.cpp; see
// docs/internals.md for a sketch of a new policy.
//
#ifndef CREW_DETAIL_RESTART_HPP
#define CREW_DETAIL_RESTART_HPP

#include <crew/clock.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/task.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace crew::detail {

/** How one run of a driven job ended, as the policy is told. */
struct run_outcome {
  enum class kind {
    success,    ///< the run returned normally
    failure,    ///< the run failed; `failure` is its record
    cancelled,  ///< the run ended with the operation_aborted its cancellation caused, or
                ///< the wait before a run was aborted (`run` is then 0)
  };
  kind what = kind::success;
  /// What the run threw (a returned code as a system_error); null on success.
  std::exception_ptr error;
  /// The failure's record: the run task's identity and the throw-site trace.
  std::optional<task_failure> failure;
  /// The run's number, from 1; 0 when no run had started.
  std::size_t run = 0;
  /// The driver was asked to stop: whatever the policy says, nothing runs again.
  bool stopping = false;
  /// The run's task never finished: its execution context was destroyed.
  bool abandoned = false;
};

/** What the policy wants next. */
struct restart_decision {
  enum class kind { stop, restart, hold };
  kind what = kind::stop;
  /// For restart: the wait before the next run, on the driver's clock.
  clock::duration delay{};
  /// For stop: what the driver completes with.
  std::exception_ptr result;

  static restart_decision stop(std::exception_ptr result = nullptr) {
    return {kind::stop, {}, std::move(result)};
  }
  static restart_decision restart(clock::duration delay) { return {kind::restart, delay, {}}; }
  /// Neither: the driver waits until `restart_driver::resume` says.
  static restart_decision hold() { return {kind::hold, {}, {}}; }
};

/** A policy over the restart driver. The driver calls it one call at a time. */
class restart_policy {
 public:
  virtual ~restart_policy() = default;

  /// The body of run `n` (from 1), and its task's name and spawn site in `spec`.
  virtual task_body make_run(std::size_t n, task_spec& spec) = 0;

  /// Run `n`'s task exists (and has its id); it starts next.
  virtual void run_started(task_node const& /*task*/) {}

  /// What follows `outcome`. May call user code; what it throws stops the driver with it.
  virtual restart_decision next(run_outcome&& outcome) = 0;

  /// What the driver completes with when it was stopped between runs (waiting or held).
  virtual std::exception_ptr stopped() = 0;

  /// The driver holds, as `next` said: only now may someone else `resume` it. Called
  /// under the driver's lock: it must not call the driver.
  virtual void held() {}
};

/** Drives a job's runs until its policy says stop, then completes its handler once, with
    the stop's result. All member functions may be called from any thread.
*/
class restart_driver final : public task_owner,
                             public std::enable_shared_from_this<restart_driver> {
 public:
  using handler_type = net::any_completion_handler<void(std::exception_ptr)>;

  restart_driver(net::any_io_executor ex, crew::clock& clk, std::unique_ptr<restart_policy> policy,
                 char const* owner_kind, std::string owner_name, handler_type handler);
  ~restart_driver();

  /** Starts: the first run after `delay` (none: at once, never inside this call). The
      handler's cancellation slot, if connected, stops the driver. The first run's task
      is a child of the current task, and so is every later run's.
  */
  void start(clock::duration delay = clock::duration::zero());

  /// Stops: the run in flight is cancelled with `type` (its outcome reaches the policy
  /// marked `stopping`), a wait is aborted, a hold ends. Then the driver completes.
  /// Stopping again cancels the run in flight again.
  void stop(net::cancellation_type type = net::cancellation_type::terminal) noexcept;

  /// Cancels the run in flight, or aborts the wait before the next one, and asks the
  /// policy again (outcome cancelled). Nothing happens while held or stopped.
  void interrupt_run() noexcept;

  /// Goes on after a hold as `d` says, before it returns (a run is spawned, or a wait
  /// started). Ignored unless held.
  void resume(restart_decision d) noexcept;

  /// For keyed_cancellation: the handler's slot was emitted.
  void cancel_key(std::uint64_t, net::cancellation_type type) noexcept { stop(type); }

  void task_done(task_node* n, std::exception_ptr e) noexcept override;
  void task_abandoned(task_node* n) noexcept override;

 private:
  enum class state { idle, running, waiting, deciding, held, done };
  struct wait_handler;

  void spawn_run() noexcept;
  void run_ended(run_outcome&& outcome) noexcept;
  void decide(run_outcome&& outcome) noexcept;
  void act(restart_decision d, bool abandoned) noexcept;
  void wait_ended(boost::system::error_code ec, bool lost) noexcept;
  void complete(std::exception_ptr result) noexcept;

  net::any_io_executor const ex_;
  crew::clock& clock_;
  std::unique_ptr<restart_policy> const policy_;
  std::uint64_t parent_id_ = 0;
  task_context context_;  // what every run inherits

  std::mutex mutex_;
  state state_ = state::idle;
  std::size_t runs_ = 0;
  node_ref current_;  // the run in flight
  bool stop_requested_ = false;
  bool wait_interrupted_ = false;
  net::cancellation_type stop_type_ = net::cancellation_type::terminal;
  net::cancellation_signal wait_signal_;  // aborts the wait between runs
  std::optional<stored_handler<void(std::exception_ptr)>> handler_;
  std::shared_ptr<restart_driver> self_;  // set from start until done
};

/// Starts a driver for `policy` and returns it: the common case in one call.
std::shared_ptr<restart_driver> start_driver(net::any_io_executor const& ex, crew::clock& clk,
                                             std::unique_ptr<restart_policy> policy,
                                             char const* owner_kind, std::string owner_name,
                                             restart_driver::handler_type handler,
                                             clock::duration delay = clock::duration::zero());

/** The policy of one run: its driver completes with how the run ended (null, what it
    threw, operation_aborted when it was cancelled or stopped before it ran).
    `on_start` hears each run's task id.
*/
std::unique_ptr<restart_policy> make_once_policy(
    task_factory factory, std::string name, source_location site,
    std::function<void(std::uint64_t)> on_start = nullptr);

/** Runs `factory` once as a crew task and completes `handler` as the once policy says.
    A composed operation whose body is a coroutine (a supervisor's run) is this.
*/
void run_once(net::any_io_executor const& ex, task_factory factory, char const* owner_kind,
              std::string name, source_location site, restart_driver::handler_type handler);

/** `co_await drive(...)`: drives `policy` from a coroutine, on its executor, until the
    policy stops, and returns the stop's result (never throws it). Cancelling the
    awaiting coroutine stops the driver, as `restart_driver::stop` says. A provided task
    that repeats (`crew::tasks::repeatable`) is this, inside its `execute()`.
*/
net::awaitable<std::exception_ptr> drive(crew::clock& clk, std::unique_ptr<restart_policy> policy,
                                         char const* owner_kind, std::string owner_name);

/// The same, calling `before_start` with the driver before its first run: for a policy
/// whose owner also steers the driver (`interrupt_run`, `resume`).
net::awaitable<std::exception_ptr> drive(
    crew::clock& clk, std::unique_ptr<restart_policy> policy, char const* owner_kind,
    std::string owner_name,
    std::function<void(std::shared_ptr<restart_driver> const&)> before_start);

}  // namespace crew::detail

#endif
