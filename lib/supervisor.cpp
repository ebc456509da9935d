//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A supervisor's run is one crew task (the body, run with the run-once policy) that
// owns one restart driver per child. A child's policy holds the driver after each of
// its runs and tells the body; the body decides — restart after a delay, restart with
// siblings, end for good, fail upward — and resumes or stops the driver.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/enum_name.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/restart.hpp>
#include <crew/supervisor.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace crew {

char const* to_string(restart r) noexcept {
  return detail::enum_name(r, {"permanent", "transient", "temporary"});
}

char const* to_string(restart_strategy s) noexcept {
  return detail::enum_name(s, {"one_for_one", "one_for_all", "rest_for_one"});
}

char const* to_string(child_state s) noexcept {
  return detail::enum_name(s, {"idle", "running", "stopping", "restarting", "ended"});
}

namespace {

std::string intensity_message(std::string const& supervisor, std::string const& child,
                              std::size_t intensity, std::chrono::steady_clock::duration period,
                              std::string const& last_failure) {
  std::string m = "supervisor";
  if (!supervisor.empty()) m += " '" + supervisor + "'";
  m += ": child '" + child + "' exceeded " + std::to_string(intensity) + " restarts in " +
       detail::format_duration(period);
  if (last_failure.empty())
    m += "; its last run returned normally";
  else
    m += "; last failure: " + last_failure;
  return m;
}

}  // namespace

restart_intensity_exceeded::restart_intensity_exceeded(std::string const& supervisor,
                                                       std::string const& child,
                                                       std::size_t intensity,
                                                       std::chrono::steady_clock::duration period,
                                                       std::string const& last_failure)
    : std::runtime_error(intensity_message(supervisor, child, intensity, period, last_failure)),
      child_(std::make_shared<std::string const>(child)),
      intensity_(intensity),
      period_(period) {}

namespace detail {

/// A child as added: immutable, except for the fields the core's mutex guards.
struct child_spec {
  child_spec(std::string n, task_factory f, crew::restart r, source_location s,
             std::function<void(net::any_io_executor const&)> p)
      : name(std::move(n)), factory(std::move(f)), restart(r), site(s), prepare(std::move(p)) {}

  std::string const name;
  task_factory factory;  // only ever called from the child's task, one run at a time
  crew::restart const restart;
  source_location const site;
  std::function<void(net::any_io_executor const&)> const prepare;

  // Guarded by the supervisor_core's mutex; read by children().
  child_state state = child_state::idle;
  std::size_t restarts = 0;
};

using spec_ptr = std::shared_ptr<child_spec>;

/// A child's run ended: how, as its driver's policy heard it.
struct child_exit {
  std::size_t index;
  std::vector<task_failure> failures;
};

/// Everything that happened since the supervisor's body last looked.
struct supervisor_events {
  std::vector<child_exit> exits;
  std::vector<spec_ptr> added;
  bool stop = false;
};

using events_handler =
    net::any_completion_handler<void(boost::system::error_code, supervisor_events)>;

// ---------------------------------------------------------------- core

/** The state a supervisor shares with its run's body and its children's policies. A
    mutex guards it, held only for bookkeeping: never while user code, a completion or
    a cancellation runs.
*/
class supervisor_core final : public runnable,
                              public std::enable_shared_from_this<supervisor_core> {
 public:
  supervisor_core(net::any_io_executor ex, supervisor_options options)
      : ex_(plain_executor(ex)),
        options_(std::move(options)),
        clock_(options_.clock ? options_.clock : &crew::clock::steady()) {}

  net::any_io_executor const& executor() const noexcept { return ex_; }

  /// async_run: the body, a crew task run once, supervises the children.
  void start_run(net::any_io_executor const& ex, run_handler handler) override;
  supervisor_options const& options() const noexcept { return options_; }
  crew::clock& time_source() const noexcept { return *clock_; }

  void add(spec_ptr spec) {
    std::unique_lock lock(mutex_);
    for (auto const& s : specs_)
      if (s->name == spec->name)
        throw std::invalid_argument("crew::supervisor::add: name \"" + spec->name +
                                    "\" is already taken");
    specs_.push_back(spec);
    if (!running_) return;
    lock.unlock();
    // A run is in progress: the child registers (crew::signals) before it is visible.
    if (spec->prepare) spec->prepare(ex_);
    lock.lock();
    if (!running_) return;
    added_.push_back(std::move(spec));
    wake(lock);
  }

  void cancel() noexcept {
    std::unique_lock lock(mutex_);
    if (!running_) {
      // A run may have been initiated and its body not started yet: never lose this.
      cancel_pending_ = true;
      return;
    }
    stop_requested_ = true;
    wake(lock);
  }

  void shutdown() noexcept {
    std::unique_lock lock(mutex_);
    shut_down_ = true;
    if (!running_) return;
    stop_requested_ = true;
    wake(lock);
  }

  bool running() const noexcept {
    std::lock_guard lock(mutex_);
    return running_;
  }

  std::size_t size() const noexcept {
    std::lock_guard lock(mutex_);
    return specs_.size();
  }

  std::vector<child_info> children() const {
    std::lock_guard lock(mutex_);
    std::vector<child_info> out;
    out.reserve(specs_.size());
    for (auto const& s : specs_) {
      child_info info;
      info.name = s->name;
      info.restart = s->restart;
      info.state = s->state;
      info.restarts = s->restarts;
      out.push_back(std::move(info));
    }
    return out;
  }

  /// The children to prepare for a run about to start.
  std::vector<spec_ptr> specs() const {
    std::lock_guard lock(mutex_);
    return specs_;
  }

  // ------------------------------------------------ for the run's body

  enum class begin_result { started, already_running, shut_down };

  /// Claims the supervisor for a run; on success `specs` holds every child.
  begin_result begin(std::vector<spec_ptr>& specs) {
    std::lock_guard lock(mutex_);
    if (shut_down_) return begin_result::shut_down;
    if (running_) return begin_result::already_running;
    running_ = true;
    stop_requested_ = std::exchange(cancel_pending_, false);
    added_.clear();
    exits_.clear();
    for (auto const& s : specs_) {
      s->state = child_state::idle;
      s->restarts = 0;
    }
    specs = specs_;
    return begin_result::started;
  }

  /// Ends the run unless (while it is not shutting down) children were added.
  bool try_finish(bool shutting_down) {
    std::lock_guard lock(mutex_);
    if (!shutting_down && (!added_.empty() || !exits_.empty())) return false;
    end_locked();
    return true;
  }

  /// The body was destroyed before it finished.
  void abandon() noexcept {
    std::lock_guard lock(mutex_);
    end_locked();
  }

  void publish(child_spec& spec, child_state state, std::size_t restarts) {
    std::lock_guard lock(mutex_);
    spec.state = state;
    spec.restarts = restarts;
  }

  void push_exit(child_exit exit) {
    std::unique_lock lock(mutex_);
    exits_.push_back(std::move(exit));
    wake(lock);
  }

  /// Waits for events. Completes `void(error_code, events)`, always through the
  /// handler's executor; with `operation_aborted` if `cancellable` and the handler's slot
  /// was emitted (the events stay for the next receive).
  void async_receive(bool cancellable, events_handler handler) {
    auto slot = net::get_associated_cancellation_slot(handler);
    std::unique_lock lock(mutex_);
    if (ready_locked()) {
      auto ev = take_locked();
      lock.unlock();
      stored_handler<void(boost::system::error_code, supervisor_events)>(std::move(handler), ex_)
          .post(boost::system::error_code(), std::move(ev));
      return;
    }
    auto const key = ++receive_key_;
    // Installed before the waiter is visible: once it is, another thread may complete
    // it and resume the body, which owns the slot.
    if (cancellable && slot.is_connected())
      slot.template emplace<keyed_cancellation<supervisor_core>>(
          keyed_cancellation<supervisor_core>{weak_from_this(), key});
    waiter_.emplace(std::move(handler), ex_);
  }

  void cancel_key(std::uint64_t key, net::cancellation_type) noexcept {
    std::unique_lock lock(mutex_);
    if (!waiter_ || key != receive_key_) return;
    auto w = take_waiter_locked();
    lock.unlock();
    w.post(net::error::operation_aborted, supervisor_events());
  }

 private:
  using waiter_type = stored_handler<void(boost::system::error_code, supervisor_events)>;

  bool ready_locked() const noexcept {
    return !exits_.empty() || !added_.empty() || stop_requested_;
  }

  supervisor_events take_locked() {
    supervisor_events ev;
    ev.exits.swap(exits_);
    ev.added.swap(added_);
    ev.stop = std::exchange(stop_requested_, false);
    return ev;
  }

  waiter_type take_waiter_locked() {
    waiter_type w(std::move(*waiter_));
    waiter_.reset();
    return w;
  }

  void end_locked() noexcept {
    running_ = false;
    stop_requested_ = false;
    added_.clear();
    exits_.clear();
  }

  /// Completes the body's receive if something is ready; unlocks `lock`.
  void wake(std::unique_lock<std::mutex>& lock) {
    if (!waiter_ || !ready_locked()) return;
    auto w = take_waiter_locked();
    auto ev = take_locked();
    lock.unlock();
    w.post(boost::system::error_code(), std::move(ev));
  }

  net::any_io_executor const ex_;
  supervisor_options const options_;
  crew::clock* const clock_;

  mutable std::mutex mutex_;
  std::vector<spec_ptr> specs_;  // every child, in add order; never shrinks
  std::vector<spec_ptr> added_;  // added during the run, not yet seen by the body
  std::vector<child_exit> exits_;
  std::optional<waiter_type> waiter_;
  std::uint64_t receive_key_ = 0;
  bool running_ = false;
  bool stop_requested_ = false;
  bool cancel_pending_ = false;  // cancel() with no run going: stops the next one
  bool shut_down_ = false;
};

namespace {

/// A child's policy over its driver: each run is the child's task; after it, the
/// driver holds and the body decides.
class child_policy final : public restart_policy {
 public:
  child_policy(std::shared_ptr<supervisor_core> core, spec_ptr spec, std::size_t index)
      : core_(std::move(core)), spec_(std::move(spec)), index_(index) {}

  task_body make_run(std::size_t, task_spec& spec) override {
    spec.name = spec_->name;
    spec.site = spec_->site;
    return spec_->factory.bind();
  }

  restart_decision next(run_outcome&& o) override {
    exit_ = child_exit{index_, {}};
    if (o.what == run_outcome::kind::failure) exit_->failures.push_back(std::move(*o.failure));
    if (!o.abandoned) return restart_decision::hold();
    push();
    return restart_decision::stop();
  }

  // The body hears of the exit once the driver holds, so that its resume() or stop()
  // finds it held.
  void held() override { push(); }

  std::exception_ptr stopped() override {
    // Stopped while the body decided: it still hears of the exit.
    if (exit_) push();
    return nullptr;
  }

 private:
  void push() {
    if (!exit_) return;
    auto exit = std::move(*exit_);
    exit_.reset();
    core_->push_exit(std::move(exit));
  }

  std::shared_ptr<supervisor_core> core_;
  spec_ptr spec_;
  std::size_t index_;
  std::optional<child_exit> exit_;  // the last run's, until the body hears of it
};

/** One run of a supervisor: the body, a crew task, owns the children's drivers and
    makes every decision; nothing else touches its members.
*/
class supervisor_run {
 public:
  explicit supervisor_run(std::shared_ptr<supervisor_core> core)
      : core_(std::move(core)), options_(core_->options()) {}
  supervisor_run(supervisor_run const&) = delete;
  supervisor_run& operator=(supervisor_run const&) = delete;

  ~supervisor_run() {
    for (auto& s : slots_)
      if (s.driver) s.driver->stop();
    if (begun_ && !finished_) core_->abandon();
  }

  net::awaitable<void> run();

 private:
  enum class ending { none, cancelled, failed };

  struct slot {
    explicit slot(spec_ptr s) : spec(std::move(s)) {}
    spec_ptr spec;
    std::shared_ptr<restart_driver> driver;  // made at the first start
    child_state state = child_state::idle;
    std::size_t restarts = 0;
    crew::clock::duration delay{};  // before the next start
  };

  void set_state(slot& s, child_state state) {
    s.state = state;
    core_->publish(*s.spec, state, s.restarts);
  }

  void start(std::size_t i) {
    auto& s = slots_[i];
    auto const delay = std::exchange(s.delay, crew::clock::duration::zero());
    if (!s.driver) {
      s.driver = std::make_shared<restart_driver>(
          core_->executor(), core_->time_source(), std::make_unique<child_policy>(core_, s.spec, i),
          "supervisor", options_.name, restart_driver::handler_type([](std::exception_ptr) {}));
      s.driver->start(delay);
    } else {
      ++s.restarts;
      s.driver->resume(restart_decision::restart(delay));
    }
    ++live_;
    set_state(s, child_state::running);
  }

  void stop(slot& s) {
    s.driver->interrupt_run();
    set_state(s, child_state::stopping);
  }

  /// Starts the children waiting for a restart, in add order, once none is stopping.
  void start_restarts() {
    for (auto const& s : slots_)
      if (s.state == child_state::stopping) return;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].state == child_state::restarting) start(i);
  }

  /// Marks a child for a restart; a running one is cancelled first.
  void schedule_restart(slot& s, crew::clock::duration delay) {
    switch (s.state) {
      case child_state::running:
        s.delay = delay;
        stop(s);
        break;
      case child_state::stopping:
      case child_state::restarting:
        s.delay = delay;
        break;
      case child_state::idle:
      case child_state::ended:
        break;  // ended for good: a sibling's restart does not bring it back
    }
  }

  void end(slot& s) {
    set_state(s, child_state::ended);
    if (s.driver) s.driver->stop();
  }

  void shut_down(ending why) {
    ending_ = why;
    for (auto& s : slots_) {
      if (s.state == child_state::running)
        stop(s);
      else if (s.state == child_state::restarting)
        end(s);
    }
  }

  /// Calls on_failure, if any; a throwing handler is recorded in the result.
  bool notify(task_failure const& f) {
    if (!options_.on_failure) return false;
    try {
      options_.on_failure(f);
    } catch (...) {
      result_.push_back(make_failure(f, std::current_exception(), task_stage::handler));
    }
    return true;
  }

  /// A failure answered by a restart: to on_failure, or to the failure path.
  void handled(task_failure const& f) {
    if (!notify(f))
      report_failure("supervisor", options_.name, "restarted a child after a failure", f);
  }

  /// A failure no restart answers: to on_failure and into the run's result.
  void unhandled(task_failure f) {
    notify(f);
    result_.push_back(std::move(f));
  }

  void fail_upward(slot& s, std::vector<task_failure> failures) {
    std::string const last = failures.empty() ? std::string() : failures.back().what();
    auto f =
        make_failure(failures.empty() ? 0 : failures.back().id, s.spec->name, s.spec->site,
                     std::make_exception_ptr(restart_intensity_exceeded(
                         options_.name, s.spec->name, options_.intensity, options_.period, last)));
    std::vector<task_failure> head;
    head.push_back(std::move(f));
    for (auto& x : failures) {
      notify(x);
      head.push_back(std::move(x));
    }
    result_.insert(result_.begin(), std::make_move_iterator(head.begin()),
                   std::make_move_iterator(head.end()));
    shut_down(ending::failed);
  }

  void on_exit(std::size_t i, std::vector<task_failure> failures) {
    auto& s = slots_[i];
    --live_;
    if (ending_ != ending::none) {  // shutting down
      end(s);
      for (auto& f : failures) unhandled(std::move(f));
      return;
    }
    if (s.state == child_state::stopping) {  // stopped for a sibling's restart
      set_state(s, child_state::restarting);
      for (auto const& f : failures) handled(f);
      return;
    }
    auto const mode = s.spec->restart;
    bool const again =
        mode == crew::restart::permanent || (mode == crew::restart::transient && !failures.empty());
    if (!again) {
      end(s);
      for (auto& f : failures) unhandled(std::move(f));
      return;
    }
    auto const now = core_->time_source().now();
    while (!window_.empty() && now - window_.front() >= options_.period) window_.pop_front();
    window_.push_back(now);
    if (window_.size() > options_.intensity) {
      end(s);
      fail_upward(s, std::move(failures));
      return;
    }
    for (auto const& f : failures) handled(f);
    auto const delay = options_.restart_delay.is_none()
                           ? crew::clock::duration::zero()
                           : options_.restart_delay.delay(static_cast<unsigned>(window_.size()));
    s.delay = delay;
    set_state(s, child_state::restarting);
    switch (options_.strategy) {
      case restart_strategy::one_for_one:
        break;
      case restart_strategy::one_for_all:
        for (std::size_t j = 0; j < slots_.size(); ++j)
          if (j != i) schedule_restart(slots_[j], delay);
        break;
      case restart_strategy::rest_for_one:
        for (std::size_t j = i + 1; j < slots_.size(); ++j) schedule_restart(slots_[j], delay);
        break;
    }
  }

  std::shared_ptr<supervisor_core> core_;  // destroyed last
  supervisor_options const& options_;
  std::deque<slot> slots_;  // in add order: index = position in the core's specs
  std::size_t live_ = 0;    // children running or stopping
  std::deque<crew::clock::time_point> window_;  // restarts within the last period
  std::vector<task_failure> result_;
  ending ending_ = ending::none;
  bool begun_ = false;
  bool finished_ = false;
};

struct initiate_receive {
  supervisor_core& core;
  bool cancellable;
  template <class Handler>
  void operator()(Handler&& handler) const {
    core.async_receive(cancellable, events_handler(std::forward<Handler>(handler)));
  }
};

net::awaitable<void> supervisor_run::run() {
  // The body sees its cancellation as a receive that completes with an error, and
  // still waits for its children after it.
  co_await net::this_coro::throw_if_cancelled(false);
  std::vector<spec_ptr> specs;
  switch (core_->begin(specs)) {
    case supervisor_core::begin_result::already_running:
      throw boost::system::system_error(make_error_code(error::already_running));
    case supervisor_core::begin_result::shut_down:
      throw boost::system::system_error(net::error::operation_aborted);
    case supervisor_core::begin_result::started:
      break;
  }
  begun_ = true;
  for (auto& s : specs) slots_.emplace_back(std::move(s));
  for (std::size_t i = 0; i < slots_.size(); ++i) start(i);
  for (;;) {
    if (ending_ == ending::none) start_restarts();
    if (live_ == 0 && core_->try_finish(ending_ != ending::none)) break;
    bool const cancellable = ending_ == ending::none;
    if (cancellable) {
      auto const cs = co_await net::this_coro::cancellation_state;
      if (cs.cancelled() != net::cancellation_type::none) {
        shut_down(ending::cancelled);
        continue;
      }
    }
    auto token = net::as_tuple(net::use_awaitable);
    auto op =
        net::async_initiate<decltype(token), void(boost::system::error_code, supervisor_events)>(
            initiate_receive{*core_, cancellable}, token);
    auto [ec, events] = co_await std::move(op);
    if (ec) {
      if (ending_ == ending::none) shut_down(ending::cancelled);
      continue;
    }
    for (auto& spec : events.added) {
      slots_.emplace_back(std::move(spec));
      if (ending_ == ending::none) start(slots_.size() - 1);
    }
    for (auto& exit : events.exits) on_exit(exit.index, std::move(exit.failures));
    if (events.stop && ending_ == ending::none) shut_down(ending::cancelled);
  }
  finished_ = true;
  for (auto& s : slots_)
    if (s.driver) s.driver->stop();
  if (!result_.empty()) throw task_errors(std::move(result_));
  if (ending_ == ending::cancelled)
    throw boost::system::system_error(net::error::operation_aborted);
}

net::awaitable<void> supervise(std::shared_ptr<supervisor_core> core) {
  supervisor_run r(std::move(core));
  co_await r.run();
}

void validate(supervisor_options const& options) {
  if (options.period <= std::chrono::steady_clock::duration::zero())
    throw std::invalid_argument("crew::supervisor: options.period must be positive, got " +
                                format_duration(options.period));
  switch (options.strategy) {
    case restart_strategy::one_for_one:
    case restart_strategy::one_for_all:
    case restart_strategy::rest_for_one:
      return;
  }
  throw std::invalid_argument("crew::supervisor: options.strategy is not a restart_strategy: " +
                              std::to_string(static_cast<int>(options.strategy)));
}

}  // namespace

std::shared_ptr<supervisor_core> make_supervisor(net::any_io_executor const& ex,
                                                 supervisor_options options) {
  validate(options);
  return std::make_shared<supervisor_core>(ex, std::move(options));
}

void add_child(supervisor_core& core, std::string name, task_factory factory, restart r,
               source_location site, std::function<void(net::any_io_executor const&)> prepare) {
  if (name.empty()) throw std::invalid_argument("crew::supervisor::add: name is empty");
  switch (r) {
    case restart::permanent:
    case restart::transient:
    case restart::temporary:
      break;
    default:
      throw std::invalid_argument(
          "crew::supervisor::add: options.restart of child \"" + name +
          "\" is not a crew::restart: " + std::to_string(static_cast<int>(r)));
  }
  core.add(std::make_shared<child_spec>(std::move(name), std::move(factory), r, site,
                                        std::move(prepare)));
}

void supervisor_core::start_run(net::any_io_executor const& ex, run_handler handler) {
  // Children register what they must (crew::signals) inside async_run, before it returns.
  if (!running())
    for (auto const& s : specs())
      if (s->prepare) s->prepare(ex_);
  auto body = task_factory::make([core = shared_from_this()] { return supervise(core); },
                                 "crew::supervisor");
  run_once(ex, std::move(body), "supervisor", options_.name, source_location::current(),
           std::move(handler));
}

runnable& runnable_of(supervisor_core& core) noexcept {
  return core;
}

void cancel_supervisor(supervisor_core& core) noexcept {
  core.cancel();
}

void shut_down_supervisor(supervisor_core& core) noexcept {
  core.shutdown();
}

bool supervisor_running(supervisor_core const& core) noexcept {
  return core.running();
}

std::size_t supervisor_size(supervisor_core const& core) noexcept {
  return core.size();
}

std::vector<child_info> supervisor_children(supervisor_core const& core) {
  return core.children();
}

}  // namespace detail
}  // namespace crew
