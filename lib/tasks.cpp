//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The provided tasks of the task manager. Each is a policy over the restart driver, run
// from inside its execute() coroutine:
//   repeatable    the loop's policy (lib/loop.cpp), for one actor of its own;
//   repeat_timer  tick_policy: runs at start + k * period, skipping missed ticks;
//   interruptible reload_policy: execute runs and reload runs, a signal_set interrupting
//                 the execute run in flight;
//   force_stop    the run-once policy, its driver started with a handler of its own so
//                 that the run outlives the execute() that gave up on it.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/restart.hpp>
#include <crew/detail/task.hpp>
#include <crew/loop.hpp>
#include <crew/run_group.hpp>
#include <crew/tasks.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace crew::tasks {

namespace {

using crew::detail::managed_base;
using crew::detail::restart_decision;
using crew::detail::restart_driver;
using crew::detail::restart_policy;
using crew::detail::run_outcome;
using crew::detail::task_body;
using crew::detail::task_spec;
using crew::detail::void_function;
using duration = crew::clock::duration;
using managed_ptr = std::shared_ptr<managed_base>;

/// The completion token of the drivers started here: the stop's result is returned,
/// never thrown.
using driven_token = decltype(net::as_tuple(net::use_awaitable));

/** Who the runs of a provided task are: the crew task its execute() runs in (a task
    manager's stage is named after its task), or `fallback` outside any. */
struct identity {
  std::string name;
  source_location site;
};

identity identity_of(char const* fallback) {
  if (auto const* t = crew::detail::current_task(); t && !t->name_.empty())
    return {t->name_, t->site_};
  return {fallback, {}};
}

/// Whether the awaiting coroutine was cancelled before execute() began: only a caller
/// that turned `this_coro::throw_if_cancelled` off gets that far. Its emission is over,
/// so a driver started now would never hear of it: nothing starts.
bool already_cancelled(net::cancellation_state const& cs) {
  return cs.cancelled() != net::cancellation_type::none;
}

std::exception_ptr aborted() {
  return std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted));
}

// ---------------------------------------------------------------- repeatable

net::awaitable<void> run_repeatable(managed_ptr task, repeatable_options options) {
  if (already_cancelled(co_await net::this_coro::cancellation_state)) co_return;
  auto const who = identity_of("repeatable");
  // The loop's policy, for one actor. The actor lives in this frame, which outlives the
  // driver: drive() returns only once the driver completed.
  actor a;
  a.name = who.name;
  a.execute = [task] { return task->execute(); };
  a.on_failure = std::move(options.on_failure);
  loop_options lo;
  lo.backoff = options.backoff;
  lo.clock = options.clock;
  lo.name = who.name;
  auto policy = crew::detail::make_loop_policy(
      a, who.site, crew::detail::make_loop_settings(lo, "repeatable"), nullptr);
  auto& clk = options.clock ? *options.clock : clock::steady();
  auto op = crew::detail::drive(clk, std::move(policy), "repeatable", who.name);
  auto const e = co_await std::move(op);
  // Stopped by the cancellation: a clean stop. The loop's policy never stops otherwise.
  if (e) std::rethrow_exception(e);
}

// ---------------------------------------------------------------- repeat_timer

/** Runs the task at start + k * period: at once, then at the first tick not before the
    previous run ended, so runs never overlap and missed ticks are skipped. */
class tick_policy final : public restart_policy {
 public:
  tick_policy(managed_ptr task, duration period, repeat_timer_options options, clock& clk,
              identity who)
      : task_(std::move(task)),
        period_(period),
        on_failure_(std::move(options.on_failure)),
        clock_(clk),
        who_(std::move(who)),
        start_(clk.now()) {}

  task_body make_run(std::size_t, task_spec& spec) override {
    spec.name = who_.name;
    spec.site = who_.site;
    return void_function([task = task_] { return task->execute(); });
  }

  restart_decision next(run_outcome&& o) override {
    if (o.failure)
      crew::detail::handle_failure(on_failure_, "repeat timer", who_.name, std::move(*o.failure));
    if (o.stopping) return restart_decision::stop();
    return restart_decision::restart(until_next_tick());
  }

  std::exception_ptr stopped() override { return nullptr; }

 private:
  /// The wait until the next tick: the first one not before now, and after the last
  /// one run. Saturates: a tick past the end of time is never (duration::max()).
  duration until_next_tick() {
    using rep = duration::rep;
    rep const p = period_.count();
    rep const elapsed = std::max<rep>(0, (clock_.now() - start_).count());
    rep k = elapsed / p + (elapsed % p != 0 ? 1 : 0);
    if (tick_ < std::numeric_limits<rep>::max()) k = std::max(k, tick_ + 1);
    tick_ = k;
    if (k > duration::max().count() / p) return duration::max();
    rep const at = k * p;
    if (at == duration::max().count()) return duration::max();
    return duration(at - elapsed);
  }

  managed_ptr const task_;
  duration const period_;
  std::function<void(std::exception_ptr)> const on_failure_;
  clock& clock_;
  identity const who_;
  clock::time_point const start_;
  duration::rep tick_ = 0;  // the tick of the last run: the first is tick 0
};

net::awaitable<void> run_repeat_timer(managed_ptr task, duration period,
                                      repeat_timer_options options) {
  if (already_cancelled(co_await net::this_coro::cancellation_state)) co_return;
  auto& clk = options.clock ? *options.clock : clock::steady();
  auto who = identity_of("repeat_timer");
  auto const name = who.name;
  auto policy = std::make_unique<tick_policy>(std::move(task), period, std::move(options), clk,
                                              std::move(who));
  auto op = crew::detail::drive(clk, std::move(policy), "repeat timer", name);
  auto const e = co_await std::move(op);
  if (e) std::rethrow_exception(e);
}

// ---------------------------------------------------------------- interruptible

/** What an interruptible's execute() shares with its policy and its signal handler: the
    signal_set, whether a signal arrived since the last run was decided, and the driver
    to interrupt.

    Lock order: this mutex, then the driver's (on_signal calls interrupt_run under it, so
    that an interruption meant for an execute run never reaches the reload run after it).
    The driver never calls the policy under its own lock (reload_policy has no `held`).
*/
class interrupt_core : public std::enable_shared_from_this<interrupt_core> {
 public:
  /// Registers the signals: from here on, they are caught.
  interrupt_core(net::any_io_executor const& ex, std::vector<int> const& signos, managed_ptr task)
      : set_(ex), task_(std::move(task)) {
    for (int s : signos) set_.add(s);
  }

  managed_ptr const& task() const noexcept { return task_; }

  /// Starts waiting for the signals; `driver` is the one to interrupt.
  void listen(std::weak_ptr<restart_driver> driver) {
    std::lock_guard lock(mutex_);
    driver_ = std::move(driver);
    arm();
  }

  /// Releases the signals (their default disposition is back unless someone else
  /// handles them) and forgets the driver.
  void close() noexcept {
    std::lock_guard lock(mutex_);
    closed_ = true;
    driver_.reset();
    boost::system::error_code ec;
    set_.cancel(ec);
    set_.clear(ec);
  }

  /// A run starts: an execute run (a signal interrupts it) or a reload run (not).
  void begin_run(bool executing) {
    std::lock_guard lock(mutex_);
    executing_ = executing;
  }

  /// Whether a signal arrived that the policy has not taken yet.
  bool signalled() {
    std::lock_guard lock(mutex_);
    return signalled_;
  }

  /// The run ended: takes the signal flag.
  bool take_signal() {
    std::lock_guard lock(mutex_);
    executing_ = false;
    return std::exchange(signalled_, false);
  }

 private:
  void arm() {
    set_.async_wait(
        [self = shared_from_this()](boost::system::error_code ec, int) { self->on_signal(ec); });
  }

  void on_signal(boost::system::error_code ec) {
    std::lock_guard lock(mutex_);
    if (closed_ || ec) return;
    signalled_ = true;
    // An execute run that has not begun its body yet sees the flag when it does.
    if (executing_)
      if (auto d = driver_.lock()) d->interrupt_run();
    arm();
  }

  std::mutex mutex_;
  net::signal_set set_;
  managed_ptr const task_;
  std::weak_ptr<restart_driver> driver_;
  bool closed_ = false;
  bool executing_ = false;
  bool signalled_ = false;
};

/// An execute run: the wrapped execute(), unless a signal came first.
net::awaitable<void> execute_run(std::shared_ptr<interrupt_core> core) {
  if (core->signalled()) co_return;  // reload first
  auto op = core->task()->execute();
  co_await std::move(op);
}

/// A reload run: the wrapped cleanup(), then initialize().
net::awaitable<void> reload_run(managed_ptr task) {
  {
    auto op = task->cleanup();
    co_await std::move(op);
  }
  auto op = task->initialize();
  co_await std::move(op);
}

std::exception_ptr stopped_unexpectedly() {
  return std::make_exception_ptr(
      boost::system::system_error(crew::error::task_stopped_unexpectedly,
                                  "crew::tasks::interruptible: the task's execute returned "
                                  "without a signal or a cancellation"));
}

/** Execute runs and reload runs: a signal (an interrupted execute run) is followed by a
    reload run, a reload run by an execute run, or by another reload run if a signal
    arrived meanwhile. A failure of any run stops it with that failure; an execute run
    that returns on its own stops it with task_stopped_unexpectedly. */
class reload_policy final : public restart_policy {
 public:
  reload_policy(std::shared_ptr<interrupt_core> core, identity who)
      : core_(std::move(core)), who_(std::move(who)) {}

  task_body make_run(std::size_t, task_spec& spec) override {
    reloading_ = reload_next_;
    core_->begin_run(!reloading_);
    spec.site = who_.site;
    if (reloading_) {
      spec.name = who_.name + " (reload)";
      return void_function([task = core_->task()] { return reload_run(task); });
    }
    spec.name = who_.name;
    return void_function([core = core_] { return execute_run(core); });
  }

  restart_decision next(run_outcome&& o) override {
    bool const signalled = core_->take_signal();
    if (o.what == run_outcome::kind::failure) return restart_decision::stop(o.error);
    if (o.stopping) return restart_decision::stop();
    if (signalled || reloading_) {
      reload_next_ = signalled;
      return restart_decision::restart(duration::zero());
    }
    // Interrupted by nothing this policy knows of: pass the abort through.
    if (o.what == run_outcome::kind::cancelled)
      return restart_decision::stop(o.error ? o.error : aborted());
    return restart_decision::stop(stopped_unexpectedly());
  }

  std::exception_ptr stopped() override { return nullptr; }

 private:
  std::shared_ptr<interrupt_core> const core_;
  identity const who_;
  bool reload_next_ = false;  // the next run reloads
  bool reloading_ = false;    // the run in flight reloads
};

net::awaitable<void> run_interruptible(managed_ptr task, std::vector<int> signos) {
  if (already_cancelled(co_await net::this_coro::cancellation_state)) co_return;
  auto const ex = crew::detail::plain_executor(co_await net::this_coro::executor);
  auto const who = identity_of("interruptible");
  // Registered before the wrapped execute() can run: a signal from now on is caught.
  auto core = std::make_shared<interrupt_core>(ex, signos, std::move(task));
  auto policy = std::make_unique<reload_policy>(core, who);
  auto op =
      crew::detail::drive(clock::steady(), std::move(policy), "interruptible", who.name,
                          [core](std::shared_ptr<restart_driver> const& d) { core->listen(d); });
  std::exception_ptr e;
  try {
    e = co_await std::move(op);
  } catch (...) {
    core->close();  // cancelled before the driver started: nothing ran
    throw;
  }
  core->close();
  if (e) std::rethrow_exception(e);
}

// ---------------------------------------------------------------- force_stop

/** A force_stop's execute(): the wrapped execute() as the run of a run-once driver, and
    the grace period once cancelled. The driver's handler is this core's, not the
    waiting coroutine's, so that the run goes on, accounted for, after the waiter gave
    up; its failure then goes to the failure path.
*/
class force_stop_core final : public std::enable_shared_from_this<force_stop_core> {
 public:
  using handler_type = net::any_completion_handler<void(std::exception_ptr)>;

  force_stop_core(net::any_io_executor ex, clock& clk, duration grace, identity who)
      : ex_(std::move(ex)), clock_(clk), grace_(grace), who_(std::move(who)) {}

  void start(managed_ptr task, handler_type handler) {
    waiter_.emplace(std::move(handler), ex_);
    auto slot = net::get_associated_cancellation_slot(waiter_->handler());
    if (slot.is_connected())
      slot.template emplace<crew::detail::keyed_cancellation<force_stop_core>>(
          crew::detail::keyed_cancellation<force_stop_core>{weak_from_this(), 0});
    // The run's body holds the wrapped task: it lives as long as the run does.
    auto factory = crew::detail::task_factory::make([task] { return task->execute(); },
                                                    "crew::tasks::force_stop");
    auto policy = crew::detail::make_once_policy(std::move(factory), who_.name, who_.site,
                                                 [w = weak_from_this()](std::uint64_t id) {
                                                   if (auto self = w.lock()) self->run_started(id);
                                                 });
    auto d =
        std::make_shared<restart_driver>(ex_, clock_, std::move(policy), "force stop", who_.name,
                                         restart_driver::handler_type(run_end{shared_from_this()}));
    {
      std::lock_guard lock(mutex_);
      driver_ = d;
    }
    d->start();
  }

  /// The driver's handler. Destroyed without a call, the run was abandoned: its
  /// io_context is being destroyed, and the waiting execute() goes with it now, while
  /// its executor still exists (it would otherwise keep this core, and itself, alive).
  struct run_end {
    std::shared_ptr<force_stop_core> core;

    explicit run_end(std::shared_ptr<force_stop_core> c) noexcept : core(std::move(c)) {}
    run_end(run_end&&) noexcept = default;
    run_end& operator=(run_end&&) = delete;
    ~run_end() {
      if (core) core->abandon();
    }

    void operator()(std::exception_ptr e) {
      auto const c = std::move(core);
      c->run_ended(std::move(e));
    }
  };

  void abandon() noexcept {
    std::optional<crew::detail::stored_handler<void(std::exception_ptr)>> h;
    std::lock_guard lock(mutex_);
    if (!waiter_) return;
    h.emplace(std::move(*waiter_));
    waiter_.reset();
  }

  /// For keyed_cancellation: the waiting execute() was cancelled.
  void cancel_key(std::uint64_t, net::cancellation_type type) noexcept {
    std::shared_ptr<restart_driver> d;
    {
      std::lock_guard lock(mutex_);
      if (!waiter_) return;
      d = driver_.lock();
      if (!std::exchange(cancelled_, true) && grace_ != duration::max()) {
        try {
          clock_.async_wait_for(
              ex_, grace_,
              net::bind_cancellation_slot(
                  grace_signal_.slot(), [self = shared_from_this()](boost::system::error_code ec) {
                    self->grace_over(ec);
                  }));
        } catch (...) {
          std::terminate();  // waiting allocates; a lost grace would hang the waiter
        }
      }
    }
    if (d) d->stop(type);
  }

 private:
  void run_started(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    run_id_ = id;
  }

  void grace_over(boost::system::error_code ec) noexcept {
    std::optional<crew::detail::stored_handler<void(std::exception_ptr)>> h;
    {
      std::lock_guard lock(mutex_);
      grace_signal_.slot().clear();
      if (ec || !waiter_) return;  // the run returned in time
      forced_ = true;
      h.emplace(std::move(*waiter_));
      waiter_.reset();
    }
    std::exception_ptr e;
    try {
      e = std::make_exception_ptr(boost::system::system_error(
          crew::error::timed_out, "task '" + who_.name + "' did not return within the grace of " +
                                      crew::detail::format_duration(grace_) +
                                      " after cancellation"));
    } catch (...) {
      e = std::current_exception();
    }
    h->post(std::move(e));
  }

  void run_ended(std::exception_ptr e) noexcept {
    std::optional<crew::detail::stored_handler<void(std::exception_ptr)>> h;
    bool report = false;
    std::uint64_t id = 0;
    {
      std::lock_guard lock(mutex_);
      if (waiter_) {
        h.emplace(std::move(*waiter_));
        waiter_.reset();
        grace_signal_.emit(net::cancellation_type::terminal);  // the grace is over
      } else {
        // Given up on: only a real failure is news; the abort it was asked for is not.
        report = forced_ && e && !crew::detail::is_operation_aborted(e);
        id = run_id_;
      }
    }
    if (h) {
      h->post(std::move(e));
    } else if (report) {
      try {
        crew::detail::report_failure("force stop", who_.name,
                                     "failed after its grace period ran out",
                                     crew::detail::make_failure(id, who_.name, who_.site, e));
      } catch (...) {
        // make_failure allocates; report_failure itself never throws.
      }
    }
  }

  net::any_io_executor const ex_;
  clock& clock_;
  duration const grace_;
  identity const who_;

  std::mutex mutex_;
  std::optional<crew::detail::stored_handler<void(std::exception_ptr)>> waiter_;
  std::weak_ptr<restart_driver> driver_;
  net::cancellation_signal grace_signal_;
  std::uint64_t run_id_ = 0;
  bool cancelled_ = false;
  bool forced_ = false;
};

net::awaitable<void> run_force_stop(managed_ptr task, duration grace, force_stop_options options) {
  // The abort the cancellation caused, without running the task.
  if (already_cancelled(co_await net::this_coro::cancellation_state))
    std::rethrow_exception(aborted());
  auto const ex = crew::detail::plain_executor(co_await net::this_coro::executor);
  auto core = std::make_shared<force_stop_core>(
      ex, options.clock ? *options.clock : clock::steady(), grace, identity_of("force_stop"));
  auto token = net::as_tuple(net::use_awaitable);
  auto op = net::async_initiate<driven_token, void(std::exception_ptr)>(
      [&](auto handler) {
        core->start(std::move(task), force_stop_core::handler_type(std::move(handler)));
      },
      token);
  auto const result = co_await std::move(op);
  if (auto const& e = std::get<0>(result)) std::rethrow_exception(e);
}

}  // namespace

// ---------------------------------------------------------------- the tasks

wrapped_task::wrapped_task(std::shared_ptr<crew::detail::managed_base> task, char const* who)
    : task_(std::move(task)), who_(who) {
  if (!task_) throw std::invalid_argument(std::string(who) + ": task is null");
}

std::shared_ptr<crew::detail::managed_base> const& wrapped_task::wrapped(char const* stage) const {
  if (!task_)
    throw std::invalid_argument(std::string(who_) + "::" + stage + ": the task was moved from");
  return task_;
}

net::awaitable<void> wrapped_task::initialize() {
  return wrapped("initialize")->initialize();
}

net::awaitable<void> wrapped_task::cleanup() {
  return wrapped("cleanup")->cleanup();
}

repeatable_task::repeatable_task(std::shared_ptr<crew::detail::managed_base> task,
                                 repeatable_options options)
    : wrapped_task(std::move(task), "crew::tasks::repeatable_task"), options_(std::move(options)) {}

net::awaitable<void> repeatable_task::execute() {
  return run_repeatable(wrapped("execute"), options_);
}

repeat_timer_task::repeat_timer_task(duration period,
                                     std::shared_ptr<crew::detail::managed_base> task,
                                     repeat_timer_options options)
    : wrapped_task(std::move(task), "crew::tasks::repeat_timer_task"),
      period_(period),
      options_(std::move(options)) {
  if (period <= duration::zero())
    throw std::invalid_argument("crew::tasks::repeat_timer: period is not positive (" +
                                crew::detail::format_duration(period) + ")");
}

net::awaitable<void> repeat_timer_task::execute() {
  return run_repeat_timer(wrapped("execute"), period_, options_);
}

interruptible_task::interruptible_task(std::vector<int> signos,
                                       std::shared_ptr<crew::detail::managed_base> task)
    : wrapped_task(std::move(task), "crew::tasks::interruptible_task"), signos_(std::move(signos)) {
  crew::detail::check_signals("crew::tasks::interruptible", signos_);
}

net::awaitable<void> interruptible_task::execute() {
  return run_interruptible(wrapped("execute"), signos_);
}

force_stop_task::force_stop_task(duration grace, std::shared_ptr<crew::detail::managed_base> task,
                                 force_stop_options options)
    : wrapped_task(std::move(task), "crew::tasks::force_stop_task"),
      grace_(grace),
      options_(options) {
  if (grace < duration::zero())
    throw std::invalid_argument("crew::tasks::force_stop: grace is negative (" +
                                crew::detail::format_duration(grace) + ")");
}

net::awaitable<void> force_stop_task::execute() {
  return run_force_stop(wrapped("execute"), grace_, options_);
}

}  // namespace crew::tasks
