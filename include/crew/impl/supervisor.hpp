//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_SUPERVISOR_HPP
#define CREW_IMPL_SUPERVISOR_HPP

#include <crew/detail/coroutine_op.hpp>
#include <crew/detail/handler.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

namespace crew {

inline char const* to_string(restart r) noexcept {
  switch (r) {
    case restart::permanent:
      return "permanent";
    case restart::transient:
      return "transient";
    case restart::temporary:
      return "temporary";
  }
  return "unknown";
}

inline char const* to_string(restart_strategy s) noexcept {
  switch (s) {
    case restart_strategy::one_for_one:
      return "one_for_one";
    case restart_strategy::one_for_all:
      return "one_for_all";
    case restart_strategy::rest_for_one:
      return "rest_for_one";
  }
  return "unknown";
}

inline char const* to_string(child_state s) noexcept {
  switch (s) {
    case child_state::idle:
      return "idle";
    case child_state::running:
      return "running";
    case child_state::stopping:
      return "stopping";
    case child_state::restarting:
      return "restarting";
    case child_state::ended:
      return "ended";
  }
  return "unknown";
}

namespace detail {

/// `d` in the largest unit that divides it: "5s", "1500ms", "2min".
inline std::string format_duration(std::chrono::steady_clock::duration d) {
  struct unit {
    std::int64_t ns;
    char const* suffix;
  };
  static constexpr unit units[] = {
      {3'600'000'000'000, "h"}, {60'000'000'000, "min"}, {1'000'000'000, "s"},
      {1'000'000, "ms"},        {1'000, "us"},           {1, "ns"}};
  auto const ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  if (ns == 0) return "0s";
  for (auto const& u : units)
    if (ns % u.ns == 0) return std::to_string(ns / u.ns) + u.suffix;
  return std::to_string(ns) + "ns";
}

inline std::string intensity_message(std::string const& supervisor, std::string const& child,
                                     std::size_t intensity,
                                     std::chrono::steady_clock::duration period,
                                     std::string const& last_failure) {
  std::string m = "supervisor";
  if (!supervisor.empty()) m += " '" + supervisor + "'";
  m += ": child '" + child + "' exceeded " + std::to_string(intensity) + " restarts in " +
       format_duration(period);
  if (last_failure.empty())
    m += "; its last run returned normally";
  else
    m += "; last failure: " + last_failure;
  return m;
}

inline void validate(supervisor_options const& options) {
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

}  // namespace detail

inline restart_intensity_exceeded::restart_intensity_exceeded(
    std::string const& supervisor, std::string const& child, std::size_t intensity,
    std::chrono::steady_clock::duration period, std::string const& last_failure)
    : std::runtime_error(
          detail::intensity_message(supervisor, child, intensity, period, last_failure)),
      child_(std::make_shared<std::string const>(child)),
      intensity_(intensity),
      period_(period) {}

namespace detail {

// ---------------------------------------------------------------- children

/// The results a child's awaitable may have; the awaitable uses `any_io_executor`.
template <class T>
struct child_result {
  static constexpr bool valid = false;
};
template <>
struct child_result<net::awaitable<void>> {
  static constexpr bool valid = true;
  using type = void;
};
template <>
struct child_result<net::awaitable<boost::system::error_code>> {
  static constexpr bool valid = true;
  using type = boost::system::error_code;
};
template <>
struct child_result<net::awaitable<std::error_code>> {
  static constexpr bool valid = true;
  using type = std::error_code;
};

template <class F, class = void>
struct is_child_factory : std::false_type {};
template <class F>
struct is_child_factory<F, std::enable_if_t<std::is_invocable_v<F&>>>
    : std::bool_constant<child_result<std::invoke_result_t<F&>>::valid> {};

/// Factories that can be empty, and are checked when added.
template <class F>
struct is_nullable_factory : std::is_pointer<F> {};
template <class R, class... A>
struct is_nullable_factory<std::function<R(A...)>> : std::true_type {};

/// A child as added: immutable, except for the fields the core's mutex guards.
template <class Executor>
class child_spec {
 public:
  child_spec(std::string n, crew::restart r, source_location s)
      : name(std::move(n)), restart(r), site(s) {}
  child_spec(child_spec const&) = delete;
  child_spec& operator=(child_spec const&) = delete;
  virtual ~child_spec() = default;

  /// Spawns one run of the child into `group`, starting after `delay` on `clk`.
  virtual void spawn_into(basic_task_group<Executor>& group, crew::clock& clk,
                          crew::clock::duration delay) = 0;

  std::string const name;
  crew::restart const restart;
  source_location const site;

  // Guarded by the supervisor_core's mutex; read by children().
  child_state state = child_state::idle;
  std::size_t restarts = 0;
};

/// A child whose awaitable returns `R`. The factory's type is erased behind `make`,
/// so the coroutine frames below hold no type of the user's (which may have no
/// linkage: g++'s -Wsubobject-linkage).
template <class Executor, class R>
class child_maker : public child_spec<Executor>,
                    public std::enable_shared_from_this<child_maker<Executor, R>> {
 public:
  using child_spec<Executor>::child_spec;

  /// Calls the factory; only ever from the child's task, one run at a time.
  virtual net::awaitable<R> make() = 0;

  void spawn_into(basic_task_group<Executor>& group, crew::clock& clk,
                  crew::clock::duration delay) override;
};

/// The task of one run without a delay: the factory is called inside the task, so
/// what it throws is the child's failure.
template <class Executor, class R>
struct child_call {
  std::shared_ptr<child_maker<Executor, R>> maker;
  net::awaitable<R> operator()() { return maker->make(); }
};

/// One run of a child that starts after a restart delay.
template <class Executor, class R>
net::awaitable<R> start_after(std::shared_ptr<child_maker<Executor, R>> maker, crew::clock* clk,
                              crew::clock::duration delay) {
  auto ex = co_await net::this_coro::executor;
  auto wait = clk->async_wait_for(ex, delay, net::use_awaitable);
  co_await std::move(wait);
  if constexpr (std::is_void_v<R>) {
    co_await maker->make();
  } else {
    co_return co_await maker->make();
  }
}

template <class Executor, class R>
void child_maker<Executor, R>::spawn_into(basic_task_group<Executor>& group, crew::clock& clk,
                                          crew::clock::duration delay) {
  spawn_options options;
  options.name = this->name;
  auto self = this->shared_from_this();
  if (delay > crew::clock::duration::zero())
    group.spawn(start_after<Executor, R>(std::move(self), &clk, delay), std::move(options),
                this->site);
  else
    group.spawn(child_call<Executor, R>{std::move(self)}, std::move(options), this->site);
}

template <class Executor, class Factory>
class child_spec_impl final
    : public child_maker<Executor, typename child_result<std::invoke_result_t<Factory&>>::type> {
 public:
  using result_type = typename child_result<std::invoke_result_t<Factory&>>::type;

  template <class F>
  child_spec_impl(std::string name, crew::restart r, source_location site, F&& f)
      : child_maker<Executor, result_type>(std::move(name), r, site),
        factory_(std::forward<F>(f)) {}

  net::awaitable<result_type> make() override { return factory_(); }

 private:
  Factory factory_;
};

// ---------------------------------------------------------------- events

/// A child's task ended: what its group's wait reported.
struct child_exit {
  std::size_t index;
  std::exception_ptr result;
};

/// Everything that happened since the supervisor's body last looked.
template <class Executor>
struct supervisor_events {
  std::vector<child_exit> exits;
  std::vector<std::shared_ptr<child_spec<Executor>>> added;
  bool stop = false;
};

/// The body's pending receive, type-erased.
template <class Executor>
class events_waiter {
 public:
  virtual ~events_waiter() = default;
  virtual void complete(boost::system::error_code ec,
                        supervisor_events<Executor> events) noexcept = 0;
};

template <class Handler, class Executor>
class events_waiter_impl final : public events_waiter<Executor> {
 public:
  events_waiter_impl(Handler&& h, Executor const& ex) : handler_(std::move(h), ex) {}

  void complete(boost::system::error_code ec,
                supervisor_events<Executor> events) noexcept override {
    handler_.post(ec, std::move(events));
  }

 private:
  completion_holder<Handler, Executor> handler_;
};

template <class Executor>
class supervisor_core;

/// Installed in the body's cancellation slot while it waits for events. Holds no
/// pointer to the receive: an emission after it completed finds another key.
template <class Executor>
struct receive_cancellation {
  std::weak_ptr<supervisor_core<Executor>> core;
  std::uint64_t key;

  void operator()(net::cancellation_type type) const {
    if (type == net::cancellation_type::none) return;
    if (auto c = core.lock()) c->abort_receive(key);
  }
};

// ---------------------------------------------------------------- core

/** The state a supervisor shares with its run's body and its children's exit
    handlers. A mutex guards it, held only for bookkeeping: never while user code,
    a completion or a cancellation runs.
*/
template <class Executor>
class supervisor_core : public std::enable_shared_from_this<supervisor_core<Executor>> {
 public:
  using spec_ptr = std::shared_ptr<child_spec<Executor>>;
  using events = supervisor_events<Executor>;

  supervisor_core(Executor const& ex, supervisor_options options)
      : ex_(ex),
        options_(std::move(options)),
        clock_(options_.clock ? options_.clock : &crew::clock::steady()) {}

  Executor const& executor() const noexcept { return ex_; }
  supervisor_options const& options() const noexcept { return options_; }
  crew::clock& time_source() const noexcept { return *clock_; }

  void add(spec_ptr spec) {
    std::unique_lock lock(mutex_);
    for (auto const& s : specs_)
      if (s->name == spec->name)
        throw std::invalid_argument("crew::supervisor::add: name \"" + spec->name +
                                    "\" is already taken");
    specs_.push_back(spec);
    if (running_) {
      added_.push_back(std::move(spec));
      wake(lock);
    }
  }

  void cancel() {
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

  void publish(child_spec<Executor>& spec, child_state state, std::size_t restarts) {
    std::lock_guard lock(mutex_);
    spec.state = state;
    spec.restarts = restarts;
  }

  void push_exit(std::size_t index, std::exception_ptr result) {
    std::unique_lock lock(mutex_);
    exits_.push_back(child_exit{index, std::move(result)});
    wake(lock);
  }

  /** Waits for events. Completes `void(boost::system::error_code, events)`, always
      through the handler's executor; with `operation_aborted` if `cancellable` and
      the handler's slot was emitted (the events stay for the next receive).
  */
  template <class Token>
  auto async_receive(bool cancellable, Token&& token) {
    return net::async_initiate<Token, void(boost::system::error_code, events)>(
        [this](auto handler, bool cancellable) {
          using handler_type = decltype(handler);
          auto slot = net::get_associated_cancellation_slot(handler);
          std::unique_lock lock(mutex_);
          if (ready_locked()) {
            auto ev = take_locked();
            lock.unlock();
            completion_holder<handler_type, Executor>(std::move(handler), ex_)
                .post(boost::system::error_code(), std::move(ev));
            return;
          }
          auto const key = ++receive_key_;
          // Installed before the waiter is visible: once it is, another thread may
          // complete it and resume the body, which owns the slot.
          if (cancellable && slot.is_connected())
            slot.template emplace<receive_cancellation<Executor>>(
                receive_cancellation<Executor>{this->weak_from_this(), key});
          waiter_ =
              std::make_unique<events_waiter_impl<handler_type, Executor>>(std::move(handler), ex_);
        },
        token, cancellable);
  }

  void abort_receive(std::uint64_t key) noexcept {
    std::unique_lock lock(mutex_);
    if (!waiter_ || key != receive_key_) return;
    auto w = std::move(waiter_);
    lock.unlock();
    w->complete(net::error::operation_aborted, events());
  }

 private:
  bool ready_locked() const noexcept {
    return !exits_.empty() || !added_.empty() || stop_requested_;
  }

  events take_locked() {
    events ev;
    ev.exits.swap(exits_);
    ev.added.swap(added_);
    ev.stop = std::exchange(stop_requested_, false);
    return ev;
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
    auto w = std::move(waiter_);
    auto ev = take_locked();
    lock.unlock();
    w->complete(boost::system::error_code(), std::move(ev));
  }

  Executor const ex_;
  supervisor_options const options_;
  crew::clock* const clock_;

  mutable std::mutex mutex_;
  std::vector<spec_ptr> specs_;  // every child, in add order; never shrinks
  std::vector<spec_ptr> added_;  // added during the run, not yet seen by the body
  std::vector<child_exit> exits_;
  std::unique_ptr<events_waiter<Executor>> waiter_;
  std::uint64_t receive_key_ = 0;
  bool running_ = false;
  bool stop_requested_ = false;
  bool cancel_pending_ = false;  // cancel() with no run going: stops the next one
  bool shut_down_ = false;
};

// ---------------------------------------------------------------- run

/** One run of a supervisor: the body, a crew task, owns the children's groups and
    makes every decision; nothing else touches its members.
*/
template <class Executor>
class supervisor_run {
 public:
  using spec_ptr = std::shared_ptr<child_spec<Executor>>;

  explicit supervisor_run(std::shared_ptr<supervisor_core<Executor>> core)
      : core_(std::move(core)), options_(core_->options()) {}
  supervisor_run(supervisor_run const&) = delete;
  supervisor_run& operator=(supervisor_run const&) = delete;

  ~supervisor_run() {
    if (begun_ && !finished_) core_->abandon();
  }

  net::awaitable<void> run();

 private:
  enum class ending { none, cancelled, failed };

  struct slot {
    explicit slot(spec_ptr s) : spec(std::move(s)) {}
    spec_ptr spec;
    std::optional<basic_task_group<Executor>> group;  // created at the first start
    child_state state = child_state::idle;
    std::size_t restarts = 0;
    bool started = false;
    crew::clock::duration delay{};  // before the next start
  };

  void set_state(slot& s, child_state state) {
    s.state = state;
    core_->publish(*s.spec, state, s.restarts);
  }

  void start(std::size_t i) {
    auto& s = slots_[i];
    if (!s.group) {
      task_group_options group_options;
      group_options.name =
          options_.name.empty() ? s.spec->name : options_.name + "/" + s.spec->name;
      s.group.emplace(core_->executor(), std::move(group_options));
    }
    if (s.started) ++s.restarts;
    s.started = true;
    auto const delay = std::exchange(s.delay, crew::clock::duration::zero());
    s.spec->spawn_into(*s.group, core_->time_source(), delay);
    ++live_;
    set_state(s, child_state::running);
    auto core = core_;
    s.group->async_wait([core, i](std::exception_ptr e) { core->push_exit(i, std::move(e)); });
  }

  void stop(slot& s) {
    s.group->cancel();
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

  void shut_down(ending why) {
    ending_ = why;
    for (auto& s : slots_) {
      if (s.state == child_state::running)
        stop(s);
      else if (s.state == child_state::restarting)
        set_state(s, child_state::ended);
    }
  }

  std::vector<task_failure> failures_of(slot const& s, std::exception_ptr e) const {
    std::vector<task_failure> out;
    if (!e) return out;
    if (auto const* errors = exception_cast<task_errors>(e)) return errors->failures();
    task_failure f;
    f.name = s.spec->name;
    f.spawn_site = s.spec->site;
    f.trace = throw_site_trace(e);
    f.exception = std::move(e);
    out.push_back(std::move(f));
    return out;
  }

  /// Calls on_failure, if any; a throwing handler is recorded in the result.
  bool notify(task_failure const& f) {
    if (!options_.on_failure) return false;
    try {
      options_.on_failure(f);
    } catch (...) {
      task_failure h;
      h.id = f.id;
      h.name = f.name;
      h.spawn_site = f.spawn_site;
      h.exception = std::current_exception();
      h.trace = throw_site_trace(h.exception);
      h.stage = task_stage::handler;
      result_.push_back(std::move(h));
    }
    return true;
  }

  /// A failure answered by a restart: to on_failure, or to stderr when there is none.
  void handled(task_failure const& f) {
    if (notify(f)) return;
    try {
      std::cerr << "crew: supervisor '" << options_.name
                << "': a failure answered by a restart (no on_failure handler): " << to_string(f)
                << '\n';
    } catch (...) {
    }
  }

  /// A failure no restart answers: to on_failure and into the run's result.
  void unhandled(task_failure f) {
    notify(f);
    result_.push_back(std::move(f));
  }

  void fail_upward(slot& s, std::vector<task_failure> failures) {
    std::string const last = failures.empty() ? std::string() : failures.back().what();
    task_failure f;
    f.id = failures.empty() ? 0 : failures.back().id;
    f.name = s.spec->name;
    f.spawn_site = s.spec->site;
    f.exception = std::make_exception_ptr(restart_intensity_exceeded(
        options_.name, s.spec->name, options_.intensity, options_.period, last));
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

  void on_exit(std::size_t i, std::exception_ptr e) {
    auto& s = slots_[i];
    --live_;
    auto failures = failures_of(s, std::move(e));
    if (ending_ != ending::none) {  // shutting down
      set_state(s, child_state::ended);
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
      set_state(s, child_state::ended);
      for (auto& f : failures) unhandled(std::move(f));
      return;
    }
    auto const now = core_->time_source().now();
    while (!window_.empty() && now - window_.front() >= options_.period) window_.pop_front();
    window_.push_back(now);
    if (window_.size() > options_.intensity) {
      set_state(s, child_state::ended);
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

  std::shared_ptr<supervisor_core<Executor>> core_;  // destroyed last
  supervisor_options const& options_;
  std::deque<slot> slots_;  // in add order: index = position in the core's specs
  std::size_t live_ = 0;    // children running or stopping
  std::deque<crew::clock::time_point> window_;  // restarts within the last period
  std::vector<task_failure> result_;
  ending ending_ = ending::none;
  bool begun_ = false;
  bool finished_ = false;
};

template <class Executor>
net::awaitable<void> supervisor_run<Executor>::run() {
  // The body sees its cancellation as a receive that completes with an error, and
  // still waits for its children after it.
  co_await net::this_coro::throw_if_cancelled(false);
  std::vector<spec_ptr> specs;
  switch (core_->begin(specs)) {
    case supervisor_core<Executor>::begin_result::already_running:
      throw boost::system::system_error(make_error_code(error::already_running));
    case supervisor_core<Executor>::begin_result::shut_down:
      throw boost::system::system_error(net::error::operation_aborted);
    case supervisor_core<Executor>::begin_result::started:
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
    auto op = core_->async_receive(cancellable, net::as_tuple(net::use_awaitable));
    auto received = co_await std::move(op);
    auto& [ec, events] = received;
    if (ec) {
      if (ending_ == ending::none) shut_down(ending::cancelled);
      continue;
    }
    for (auto& spec : events.added) {
      slots_.emplace_back(std::move(spec));
      if (ending_ == ending::none) start(slots_.size() - 1);
    }
    for (auto& exit : events.exits) on_exit(exit.index, std::move(exit.result));
    if (events.stop && ending_ == ending::none) shut_down(ending::cancelled);
  }
  finished_ = true;
  if (!result_.empty()) throw task_errors(std::move(result_));
  if (ending_ == ending::cancelled)
    throw boost::system::system_error(net::error::operation_aborted);
}

template <class Executor>
net::awaitable<void> supervise(std::shared_ptr<supervisor_core<Executor>> core) {
  supervisor_run<Executor> r(std::move(core));
  co_await r.run();
}

}  // namespace detail

// ---------------------------------------------------------------- basic_supervisor

template <class Executor>
basic_supervisor<Executor>::basic_supervisor(executor_type const& ex)
    : basic_supervisor(ex, supervisor_options{}) {}

template <class Executor>
basic_supervisor<Executor>::basic_supervisor(executor_type const& ex, supervisor_options options)
    : ex_(ex) {
  detail::validate(options);
  state_ = std::make_shared<detail::supervisor_core<Executor>>(ex, std::move(options));
}

template <class Executor>
basic_supervisor<Executor>& basic_supervisor<Executor>::operator=(
    basic_supervisor&& other) noexcept {
  if (this != &other) {
    if (state_) state_->shutdown();
    ex_ = std::move(other.ex_);
    state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_supervisor<Executor>::~basic_supervisor() {
  if (state_) state_->shutdown();
}

template <class Executor>
detail::supervisor_core<Executor>& basic_supervisor<Executor>::state() const {
  if (!state_) throw std::logic_error("crew::supervisor: the supervisor was moved from");
  return *state_;
}

template <class Executor>
template <class Factory>
void basic_supervisor<Executor>::add(std::string name, Factory&& factory, source_location site) {
  add(std::move(name), std::forward<Factory>(factory), child_options{}, site);
}

template <class Executor>
template <class Factory>
void basic_supervisor<Executor>::add(std::string name, Factory&& factory, child_options options,
                                     source_location site) {
  using factory_type = std::decay_t<Factory>;
  static_assert(detail::is_child_factory<factory_type>::value,
                "crew: a child's factory is a callable taking no arguments that returns "
                "net::awaitable<void> or net::awaitable<error_code> (on any_io_executor)");
  if (name.empty()) throw std::invalid_argument("crew::supervisor::add: name is empty");
  if constexpr (detail::is_nullable_factory<factory_type>::value) {
    if (!factory)
      throw std::invalid_argument("crew::supervisor::add: the factory of child \"" + name +
                                  "\" is empty");
  }
  switch (options.restart) {
    case restart::permanent:
    case restart::transient:
    case restart::temporary:
      break;
    default:
      throw std::invalid_argument(
          "crew::supervisor::add: options.restart of child \"" + name +
          "\" is not a crew::restart: " + std::to_string(static_cast<int>(options.restart)));
  }
  auto& st = state();
  st.add(std::make_shared<detail::child_spec_impl<Executor, factory_type>>(
      std::move(name), options.restart, site, std::forward<Factory>(factory)));
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_supervisor<Executor>::async_run(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [this](auto handler) {
        std::shared_ptr<detail::supervisor_core<Executor>> core = state_;
        if (!core) state();  // throws
        detail::launch_coroutine_op(
            ex_, [core]() { return detail::supervise(core); }, std::move(handler),
            source_location::current());
      },
      token);
}

template <class Executor>
void basic_supervisor<Executor>::cancel() {
  state().cancel();
}

template <class Executor>
bool basic_supervisor<Executor>::running() const noexcept {
  return state_ && state_->running();
}

template <class Executor>
std::size_t basic_supervisor<Executor>::size() const noexcept {
  return state_ ? state_->size() : 0;
}

template <class Executor>
std::vector<child_info> basic_supervisor<Executor>::children() const {
  return state().children();
}

}  // namespace crew

#endif
