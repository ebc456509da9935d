//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/restart.hpp>
#include <crew/loop.hpp>
#include <crew/run_group.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <csignal>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace crew {

std::vector<int> default_signals() {
  return {SIGINT, SIGTERM};
}

namespace {

/// A signals actor's registration, made when its run starts and taken by the actor's
/// body, which owns it until it ends.
class signal_registration {
 public:
  explicit signal_registration(std::vector<int> signos) : signos_(std::move(signos)) {}

  void prepare(net::any_io_executor const& ex) {
    auto set = make(ex);
    std::lock_guard lock(mutex_);
    prepared_ = std::move(set);
  }

  std::unique_ptr<net::signal_set> take() {
    std::lock_guard lock(mutex_);
    return std::move(prepared_);
  }

  std::unique_ptr<net::signal_set> make(net::any_io_executor const& ex) const {
    auto set = std::make_unique<net::signal_set>(ex);
    for (int s : signos_) set->add(s);
    return set;
  }

 private:
  std::vector<int> const signos_;
  std::mutex mutex_;
  std::unique_ptr<net::signal_set> prepared_;
};

net::awaitable<void> wait_for_signals(std::unique_ptr<net::signal_set> set,
                                      std::shared_ptr<signal_registration> registration) {
  // Not prepared by a starting run (a restart): it registers now.
  if (!set) set = registration->make(co_await net::this_coro::executor);
  // The set is the registration: it ends with the actor, and with it the handling.
  auto [ec, signo] = co_await set->async_wait(net::as_tuple(net::use_awaitable));
  if (ec) throw boost::system::system_error(ec, "crew::signals");
  throw signal_received(signo);
}

}  // namespace

namespace detail {

void check_signals(char const* who, std::vector<int> const& signos) {
  if (signos.empty()) throw std::invalid_argument(std::string(who) + ": signos is empty");
  for (int s : signos) {
    if (s <= 0 || s >= NSIG)
      throw std::invalid_argument(std::string(who) + ": " + std::to_string(s) +
                                  " is not a signal number");
    if (s == SIGKILL || s == SIGSTOP)
      throw std::invalid_argument(std::string(who) + ": signal " + std::to_string(s) +
                                  " cannot be caught");
  }
}

}  // namespace detail

actor signals(std::vector<int> signos) {
  detail::check_signals("crew::signals", signos);
  auto registration = std::make_shared<signal_registration>(std::move(signos));
  actor a;
  a.name = "signals";
  a.prepare = [registration](net::any_io_executor const& ex) { registration->prepare(ex); };
  a.execute = [registration] { return wait_for_signals(registration->take(), registration); };
  return a;
}

actor signals(std::initializer_list<int> signos) {
  return signals(std::vector<int>(signos));
}

namespace detail {

/** One run of a run group (or a loop): one restart driver per actor (the run-once
    policy, or the loop's), the interrupt, the grace period, and the result.

    The run completes once two things happened, in either order: every actor returned
    (its driver completed) and the interrupt callbacks ran. A mutex guards the
    bookkeeping; it is never held while user code runs.
*/
class run_core : public std::enable_shared_from_this<run_core> {
 public:
  run_core(net::any_io_executor ex, run_group_options const& o,
           std::shared_ptr<loop_settings const> loop, char const* kind,
           std::vector<actor_entry> actors, run_handler handler)
      : ex_(plain_executor(ex)),
        clock_(o.clock ? *o.clock : clock::steady()),
        grace_(o.shutdown_grace),
        name_(o.name),
        kind_(kind),
        loop_(std::move(loop)),
        actors_(std::move(actors)),
        ids_(actors_.size(), 0),
        running_(actors_.size(), true),
        left_(actors_.size()) {
    handler_.emplace(std::move(handler), ex_);
  }

  void start();
  void interrupt(std::exception_ptr cause) noexcept;
  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  void cancel_key(std::uint64_t, net::cancellation_type) noexcept {
    interrupt(std::make_exception_ptr(
        boost::system::system_error(net::error::operation_aborted, "run cancelled")));
  }

 private:
  std::unique_ptr<restart_policy> policy_of(std::size_t i, std::exception_ptr failed);
  void actor_returned(std::size_t i, std::exception_ptr e);
  void report(std::size_t i, std::exception_ptr e, bool in_result);
  task_failure failure_of_actor(std::size_t i, std::exception_ptr e, task_stage stage) const;
  void stop_actors() noexcept;
  void run_interrupts();
  void grace_ended(boost::system::error_code ec);
  void finish();
  void complete(std::exception_ptr result);

  net::any_io_executor ex_;
  clock& clock_;
  clock::duration grace_;
  std::string name_;
  char const* kind_;
  std::shared_ptr<loop_settings const> loop_;
  std::vector<actor_entry> const actors_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<restart_driver>> drivers_;  // set once, by start
  bool actors_stopped_ = false;
  std::vector<std::uint64_t> ids_;  // each actor's latest task id
  std::vector<bool> running_;
  std::size_t left_;  // actors that have not returned
  bool interrupted_ = false;
  bool interrupts_done_ = false;
  bool grace_pending_ = false;
  std::exception_ptr cause_;
  std::size_t cause_actor_ = static_cast<std::size_t>(-1);
  std::vector<task_failure> late_;   // actors still running when the grace ran out
  std::vector<task_failure> extra_;  // callbacks that threw
  net::cancellation_signal grace_signal_;

  std::optional<stored_handler<void(std::exception_ptr)>> handler_;
  std::atomic<bool> finished_{false};
};

std::unique_ptr<restart_policy> run_core::policy_of(std::size_t i, std::exception_ptr failed) {
  auto on_start = [weak = weak_from_this(), i](std::uint64_t id) {
    if (auto self = weak.lock()) {
      std::lock_guard lock(self->mutex_);
      self->ids_[i] = id;
    }
  };
  auto const& [a, site] = actors_[i];
  if (failed) {
    // The actor returns with what its preparation threw, as its first run.
    auto rethrow = [failed]() -> net::awaitable<void> { std::rethrow_exception(failed); };
    return make_once_policy(task_factory::make(std::move(rethrow), "crew::run_group"), a.name, site,
                            std::move(on_start));
  }
  if (loop_) return make_loop_policy(a, site, loop_, std::move(on_start));
  return make_once_policy(task_factory::make(a.execute, "crew::run_group"), a.name, site,
                          std::move(on_start));
}

void run_core::start() {
  auto slot = net::get_associated_cancellation_slot(handler_->handler());
  if (slot.is_connected())
    slot.template emplace<keyed_cancellation<run_core>>(
        keyed_cancellation<run_core>{weak_from_this(), 0});
  if (actors_.empty()) {
    {
      std::lock_guard lock(mutex_);  // interrupt() may come from another thread
      interrupted_ = true;           // nothing to interrupt, ever
    }
    complete(nullptr);
    return;
  }
  // Every actor is prepared (crew::signals registers here) before any starts.
  std::vector<std::exception_ptr> failed(actors_.size());
  for (std::size_t i = 0; i < actors_.size(); ++i) {
    try {
      if (actors_[i].a.prepare) actors_[i].a.prepare(ex_);
    } catch (...) {
      failed[i] = std::current_exception();
    }
  }
  std::vector<std::shared_ptr<restart_driver>> drivers;
  for (std::size_t i = 0; i < actors_.size(); ++i)
    drivers.push_back(std::make_shared<restart_driver>(
        ex_, clock_, policy_of(i, failed[i]), kind_, name_,
        run_handler([self = shared_from_this(), i](std::exception_ptr e) {
          self->actor_returned(i, std::move(e));
        })));
  bool stop_now = false;
  {
    // An interrupt from another thread may have stopped the actors already.
    std::lock_guard lock(mutex_);
    drivers_ = drivers;
    stop_now = actors_stopped_;
  }
  for (auto const& d : drivers) {
    if (stop_now) d->stop(net::cancellation_type::terminal);
    d->start();
  }
}

task_failure run_core::failure_of_actor(std::size_t i, std::exception_ptr e,
                                        task_stage stage) const {
  if (i >= actors_.size()) return make_failure(0, std::string(), {}, std::move(e), stage);
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = ids_[i];
  }
  return make_failure(id, actors_[i].a.name, actors_[i].site, std::move(e), stage);
}

void run_core::actor_returned(std::size_t i, std::exception_ptr e) {
  bool first = false;
  bool done = false;
  {
    std::lock_guard lock(mutex_);
    running_[i] = false;
    if (!interrupted_) {
      interrupted_ = true;
      first = true;
      cause_ = e;
      cause_actor_ = i;
    }
    done = --left_ == 0 && interrupts_done_;
    // The grace timer is still pending: abort it, so that the run's end does not wait.
    if (left_ == 0 && grace_pending_) grace_signal_.emit(net::cancellation_type::terminal);
  }
  // Once the run is interrupted, an operation_aborted is the interrupt's doing.
  if (e && (first || !is_operation_aborted(e))) report(i, e, first);
  if (first) net::post(ex_, [self = shared_from_this()] { self->run_interrupts(); });
  if (done) finish();
}

void run_core::report(std::size_t i, std::exception_ptr e, bool in_result) {
  if (auto const& h = actors_[i].a.on_failure) {
    try {
      h(e);
    } catch (...) {
      auto f = failure_of_actor(i, std::current_exception(), task_stage::handler);
      std::lock_guard lock(mutex_);
      extra_.push_back(std::move(f));
    }
  } else if (!in_result) {
    report_failure(kind_, name_, "had a failure nobody handled",
                   failure_of_actor(i, std::move(e), task_stage::execute));
  }
}

void run_core::interrupt(std::exception_ptr cause) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (interrupted_) return;
    interrupted_ = true;
    cause_ = std::move(cause);
  }
  try {
    net::post(ex_, [self = shared_from_this()] { self->run_interrupts(); });
  } catch (...) {
    std::terminate();  // an interrupt that cannot be delivered would hang the run
  }
}

void run_core::stop_actors() noexcept {
  std::vector<std::shared_ptr<restart_driver>> drivers;
  {
    std::lock_guard lock(mutex_);
    actors_stopped_ = true;
    drivers = drivers_;
  }
  for (auto const& d : drivers) d->stop(net::cancellation_type::terminal);
}

void run_core::run_interrupts() {
  std::exception_ptr cause;
  {
    std::lock_guard lock(mutex_);
    cause = cause_;
  }
  for (std::size_t i = actors_.size(); i-- > 0;) {
    if (!actors_[i].a.interrupt) continue;
    try {
      actors_[i].a.interrupt(cause);
    } catch (...) {
      auto f = failure_of_actor(i, std::current_exception(), task_stage::handler);
      std::lock_guard lock(mutex_);
      extra_.push_back(std::move(f));
    }
  }
  stop_actors();
  bool done = false;
  {
    std::lock_guard lock(mutex_);
    interrupts_done_ = true;
    done = left_ == 0;
    if (!done && grace_ != clock::duration::max()) {
      grace_pending_ = true;
      clock_.async_wait_for(
          ex_, grace_,
          net::bind_cancellation_slot(grace_signal_.slot(),
                                      [self = shared_from_this()](boost::system::error_code ec) {
                                        self->grace_ended(ec);
                                      }));
    }
  }
  if (done) finish();
}

void run_core::grace_ended(boost::system::error_code ec) {
  std::vector<std::size_t> late;
  {
    std::lock_guard lock(mutex_);
    grace_pending_ = false;
    grace_signal_.slot().clear();
    if (ec || left_ == 0) return;
    for (std::size_t i = 0; i < actors_.size(); ++i)
      if (running_[i]) late.push_back(i);
  }
  for (std::size_t i : late) {
    auto e = std::make_exception_ptr(boost::system::system_error(
        make_error_code(error::timed_out), "actor '" + actors_[i].a.name +
                                               "' still running after the shutdown grace of " +
                                               format_duration(grace_)));
    report(i, e, true);
    auto f = failure_of_actor(i, e, task_stage::execute);
    std::lock_guard lock(mutex_);
    late_.push_back(std::move(f));
  }
  stop_actors();  // cancelled again
}

void run_core::finish() {
  std::exception_ptr result;
  {
    std::lock_guard lock(mutex_);
    if (late_.empty() && extra_.empty()) {
      result = cause_;
    } else {
      std::vector<task_failure> all;
      if (cause_) {
        auto const i = cause_actor_;
        all.push_back(i < actors_.size()
                          ? make_failure(ids_[i], actors_[i].a.name, actors_[i].site, cause_)
                          : make_failure(0, std::string(), {}, cause_));
      }
      for (auto& f : late_) all.push_back(std::move(f));
      for (auto& f : extra_) all.push_back(std::move(f));
      late_.clear();
      extra_.clear();
      result = std::make_exception_ptr(task_errors(std::move(all)));
    }
  }
  complete(std::move(result));
}

void run_core::complete(std::exception_ptr result) {
  auto h = std::move(*handler_);
  handler_.reset();
  finished_.store(true, std::memory_order_release);
  h.post(std::move(result));
}

// ---------------------------------------------------------------- run_group_state

namespace {

/// "crew::run_group" for the kind "run group".
std::string api_name(char const* kind) {
  std::string s = std::string("crew::") + kind;
  for (auto& c : s)
    if (c == ' ') c = '_';
  return s;
}

}  // namespace

run_group_state::run_group_state(run_group_options options,
                                 std::shared_ptr<loop_settings const> loop)
    : options_(std::move(options)), loop_(std::move(loop)), kind_(loop_ ? "loop" : "run group") {
  if (options_.shutdown_grace < clock::duration::zero())
    throw std::invalid_argument(api_name(kind_) + ": options.shutdown_grace is negative (" +
                                format_duration(options_.shutdown_grace) + ")");
}

run_group_state::~run_group_state() {
  std::shared_ptr<run_core> core;
  {
    std::lock_guard lock(mutex_);
    core = running_.lock();
  }
  if (core)
    core->interrupt(std::make_exception_ptr(boost::system::system_error(
        make_error_code(error::shut_down), api_name(kind_) + " destroyed while running")));
}

void run_group_state::add(actor a, source_location site) {
  if (!a.execute)
    throw std::invalid_argument(api_name(kind_) + "::add: the actor '" + a.name +
                                "' has no execute function");
  std::lock_guard lock(mutex_);
  if (auto c = running_.lock(); c && !c->finished())
    throw boost::system::system_error(make_error_code(error::already_running),
                                      api_name(kind_) + "::add: the group is running");
  if (a.name.empty()) a.name = "actor " + std::to_string(actors_.size() + 1);
  actors_.push_back(actor_entry{std::move(a), site});
}

std::size_t run_group_state::size() const {
  std::lock_guard lock(mutex_);
  return actors_.size();
}

void run_group_state::interrupt() {
  std::shared_ptr<run_core> core;
  {
    std::lock_guard lock(mutex_);
    core = running_.lock();
    if (!core || core->finished()) {
      interrupt_pending_ = true;
      return;
    }
  }
  core->interrupt(nullptr);
}

void run_group_state::start_run(net::any_io_executor const& ex, run_handler handler) {
  // Once the run started it may complete, and its awaiter resume and destroy the group,
  // on another thread: nothing below touches `this` after start.
  std::shared_ptr<run_core> core;
  bool interrupt_now = false;
  {
    std::lock_guard lock(mutex_);
    if (auto c = running_.lock(); !c || c->finished()) {
      core = std::make_shared<run_core>(ex, options_, loop_, kind_, actors_, std::move(handler));
      running_ = core;
      interrupt_now = std::exchange(interrupt_pending_, false);
    }
  }
  if (!core) {
    stored_handler<void(std::exception_ptr)>(std::move(handler), ex)
        .post(std::make_exception_ptr(boost::system::system_error(
            make_error_code(error::already_running), "crew::run_group::async_run")));
    return;
  }
  core->start();
  if (interrupt_now) core->interrupt(nullptr);
}

}  // namespace detail
}  // namespace crew
