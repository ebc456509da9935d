//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/run_core.hpp>
#include <crew/run_group.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
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

// The executor of the run whose actors are being started on this thread. Actors are
// made (execute() is called) when the run starts, inside async_run's initiation; the
// signal actor registers its signals right then, so that a signal sent once the run
// has started is never met by the default, fatal disposition.
thread_local net::any_io_executor const* starting_run_executor = nullptr;

net::awaitable<void> wait_for_signals(std::unique_ptr<net::signal_set> set,
                                      std::vector<int> signos) {
  if (!set) {  // not made by a starting run
    auto ex = co_await net::this_coro::executor;
    set = std::make_unique<net::signal_set>(ex);
    for (int s : signos) set->add(s);
  }
  // The set is the registration: it ends with the actor, and with it the handling.
  auto [ec, signo] = co_await set->async_wait(net::as_tuple(net::use_awaitable));
  if (ec) throw boost::system::system_error(ec, "crew::signals");
  throw signal_received(signo);
}

}  // namespace

actor signals(std::vector<int> signos) {
  if (signos.empty()) throw std::invalid_argument("crew::signals: signos is empty");
  for (int s : signos) {
    if (s <= 0 || s >= NSIG)
      throw std::invalid_argument("crew::signals: " + std::to_string(s) +
                                  " is not a signal number");
    if (s == SIGKILL || s == SIGSTOP)
      throw std::invalid_argument("crew::signals: signal " + std::to_string(s) +
                                  " cannot be caught");
  }
  actor a;
  a.name = "signals";
  a.execute = [signos = std::move(signos)] {
    std::unique_ptr<net::signal_set> set;
    if (starting_run_executor) {
      set = std::make_unique<net::signal_set>(*starting_run_executor);
      for (int s : signos) set->add(s);
    }
    return wait_for_signals(std::move(set), signos);
  };
  return a;
}

actor signals(std::initializer_list<int> signos) {
  return signals(std::vector<int>(signos));
}

namespace detail {

namespace {

struct run_cancellation {
  std::weak_ptr<run_core> core;

  void operator()(net::cancellation_type type) const {
    if (type == net::cancellation_type::none) return;
    if (auto c = core.lock())
      c->interrupt(std::make_exception_ptr(
          boost::system::system_error(net::error::operation_aborted, "run cancelled")));
  }
};

}  // namespace

void check_options(run_group_options const& o, char const* who) {
  if (o.shutdown_grace < clock::duration::zero())
    throw std::invalid_argument(std::string(who) + ": options.shutdown_grace is negative (" +
                                format_duration(o.shutdown_grace) + ")");
}

run_core::run_core(net::any_io_executor ex, run_group_options const& o, std::vector<actor> actors,
                   run_handler handler, char const* owner)
    : ex_(std::move(ex)),
      clock_(o.clock ? *o.clock : clock::steady()),
      grace_(o.shutdown_grace),
      name_(o.name),
      owner_(owner),
      actors_(std::move(actors)),
      group_(ex_),
      running_(actors_.size(), true),
      handler_(std::move(handler)) {}

void run_core::start() {
  auto slot = net::get_associated_cancellation_slot(*handler_);
  if (slot.is_connected())
    slot.template emplace<run_cancellation>(run_cancellation{weak_from_this()});
  if (actors_.empty()) {
    {
      std::lock_guard lock(mutex_);  // interrupt() may come from another thread
      interrupted_ = true;           // nothing to interrupt, ever
    }
    complete(nullptr);
    return;
  }
  // Every actor is made before any starts; one whose execute() throws has returned
  // with that, at once.
  std::vector<std::pair<std::optional<net::awaitable<void>>, std::exception_ptr>> bodies(
      actors_.size());
  auto const outer = std::exchange(starting_run_executor, &ex_);
  for (std::size_t i = 0; i < actors_.size(); ++i) {
    try {
      bodies[i].first.emplace(actors_[i].execute());
    } catch (...) {
      bodies[i].second = std::current_exception();
    }
  }
  starting_run_executor = outer;
  for (std::size_t i = 0; i < actors_.size(); ++i) {
    spawn_options so;
    so.name = actors_[i].name;
    group_.spawn(actor_body(shared_from_this(), i, std::move(bodies[i].first), bodies[i].second),
                 std::move(so));
  }
  group_.async_wait([self = shared_from_this()](std::exception_ptr e) { self->returned_all(e); });
}

net::awaitable<void> run_core::actor_body(std::shared_ptr<run_core> self, std::size_t i,
                                          std::optional<net::awaitable<void>> body,
                                          std::exception_ptr failed) {
  std::exception_ptr e = failed;
  if (body) {
    try {
      co_await std::move(*body);
    } catch (...) {
      e = std::current_exception();
    }
  }
  self->actor_returned(i, std::move(e));
}

task_failure run_core::make_failure(std::size_t i, std::exception_ptr e, task_stage stage) const {
  task_failure f;
  if (i < actors_.size()) f.name = actors_[i].name;
  f.trace = throw_site_trace(e);
  f.exception = std::move(e);
  f.stage = stage;
  return f;
}

void run_core::actor_returned(std::size_t i, std::exception_ptr e) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    running_[i] = false;
    if (!interrupted_) {
      interrupted_ = true;
      first = true;
      cause_ = e;
      cause_actor_ = i;
    }
  }
  // Once the run is interrupted, an operation_aborted is the interrupt's doing.
  if (e && (first || !is_operation_aborted(e))) report(i, e, first);
  if (first) net::post(ex_, [self = shared_from_this()] { self->run_interrupts(); });
}

void run_core::report(std::size_t i, std::exception_ptr e, bool in_result) {
  if (auto const& h = actors_[i].on_failure) {
    try {
      h(e);
    } catch (...) {
      auto f = make_failure(i, std::current_exception(), task_stage::handler);
      std::lock_guard lock(mutex_);
      extra_.push_back(std::move(f));
    }
  } else if (!in_result) {
    report_failure(owner_, name_, "had a failure nobody handled",
                   make_failure(i, std::move(e), task_stage::execute));
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

void run_core::run_interrupts() {
  std::exception_ptr cause;
  {
    std::lock_guard lock(mutex_);
    cause = cause_;
  }
  for (std::size_t i = actors_.size(); i-- > 0;) {
    if (!actors_[i].interrupt) continue;
    try {
      actors_[i].interrupt(cause);
    } catch (...) {
      auto f = make_failure(i, std::current_exception(), task_stage::handler);
      std::lock_guard lock(mutex_);
      extra_.push_back(std::move(f));
    }
  }
  group_.cancel(net::cancellation_type::terminal);
  bool done = false;
  {
    std::lock_guard lock(mutex_);
    interrupts_done_ = true;
    done = all_returned_;
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
    if (ec || all_returned_) return;
    for (std::size_t i = 0; i < actors_.size(); ++i)
      if (running_[i]) late.push_back(i);
  }
  for (std::size_t i : late) {
    auto e = std::make_exception_ptr(boost::system::system_error(
        make_error_code(error::timed_out), "actor '" + actors_[i].name +
                                               "' still running after the shutdown grace of " +
                                               format_duration(grace_)));
    report(i, e, true);
    auto f = make_failure(i, e, task_stage::execute);
    std::lock_guard lock(mutex_);
    late_.push_back(std::move(f));
  }
  group_.cancel(net::cancellation_type::terminal);
}

void run_core::returned_all(std::exception_ptr e) {
  bool done = false;
  {
    std::lock_guard lock(mutex_);
    all_returned_ = true;
    if (e) {
      // Only a failure of crew's own wrapper could land here; keep it.
      extra_.push_back(make_failure(actors_.size(), std::move(e), task_stage::execute));
    }
    // The timer is still pending (grace_ended has not run): abort it, so that the
    // run's end does not wait for it.
    if (grace_pending_) grace_signal_.emit(net::cancellation_type::terminal);
    done = interrupts_done_;
  }
  if (done) finish();
}

void run_core::finish() {
  std::exception_ptr result;
  {
    std::lock_guard lock(mutex_);
    if (late_.empty() && extra_.empty()) {
      result = cause_;
    } else {
      std::vector<task_failure> all;
      if (cause_) all.push_back(make_failure(cause_actor_, cause_, task_stage::execute));
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
  complete_at_once(ex_, std::move(h), std::move(result));
}

void interrupt_run(run_core& core, std::exception_ptr cause) noexcept {
  core.interrupt(std::move(cause));
}

bool run_in_progress(std::weak_ptr<run_core> const& core) noexcept {
  auto c = core.lock();
  return c && !c->finished();
}

void complete_at_once(net::any_io_executor const& ex, run_handler handler, std::exception_ptr e) {
  net::post(ex, net::append(std::move(handler), std::move(e)));
}

std::shared_ptr<run_core> make_run(net::any_io_executor const& ex, run_group_options const& options,
                                   std::vector<actor> const& actors, run_handler handler,
                                   char const* owner) {
  return std::make_shared<run_core>(ex, options, actors, std::move(handler), owner);
}

void start_run(run_core& core) {
  core.start();
}

}  // namespace detail
}  // namespace crew
