//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The runtime's named background workers. A worker is a policy over the restart
// driver: each run is a crew task named after the worker, and the policy applies the
// worker's restart kind, backoff and max_restarts, records its status and reports each
// failed run through the failure path. A process-wide registry maps names to workers.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/enum_name.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/restart.hpp>
#include <crew/runtime.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace crew {

char const* to_string(worker_state s) noexcept {
  return detail::enum_name(s, {"running", "waiting", "stopped", "finished", "failed"});
}

namespace detail {

namespace {

using stop_handler = stored_handler<void(std::exception_ptr)>;

/** Tells whether an execution context still exists: its flag drops when the context
    shuts down its services, at the start of its destruction.
*/
class context_watch final : public net::execution_context::service {
 public:
  static inline net::execution_context::id id;

  explicit context_watch(net::execution_context& ctx)
      : net::execution_context::service(ctx), alive_(std::make_shared<std::atomic<bool>>(true)) {}

  std::shared_ptr<std::atomic<bool> const> alive() const noexcept { return alive_; }

 private:
  void shutdown() override { alive_->store(false, std::memory_order_release); }

  std::shared_ptr<std::atomic<bool>> const alive_;
};

/** A stop waiting for `remaining` workers to end (one for async_stop_worker). */
struct stop_op {
  std::optional<stop_handler> handler;  // guarded by the registry's mutex
  std::size_t remaining = 0;            // guarded by the registry's mutex

  void cancel_key(std::uint64_t, net::cancellation_type) noexcept;
};

struct worker {
  worker(std::string n, net::any_io_executor e, std::shared_ptr<std::atomic<bool> const> alive)
      : name(std::move(n)), ex(std::move(e)), context_alive(std::move(alive)) {}

  /// Where a stop of this worker completes: its executor, unless its context is gone.
  net::any_io_executor completion_executor() const {
    if (context_alive->load(std::memory_order_acquire)) return ex;
    return net::system_executor();
  }

  std::string const name;
  net::any_io_executor const ex;  // untracked: an ended worker keeps no context busy
  std::shared_ptr<std::atomic<bool> const> const context_alive;

  // Guarded by the registry's mutex.
  worker_state state = worker_state::running;
  std::size_t restarts = 0;
  std::exception_ptr last_error;
  bool ended = false;
  std::shared_ptr<restart_driver> driver;  // until it ended
  std::vector<std::shared_ptr<stop_op>> waiters;
};

/// Never destroyed: workers may end during static destruction.
struct worker_registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<worker>, std::less<>> workers;
};

worker_registry& registry() {
  static worker_registry* const r = new worker_registry;
  return *r;
}

std::exception_ptr aborted() {
  return std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted));
}

void stop_op::cancel_key(std::uint64_t, net::cancellation_type) noexcept {
  std::optional<stop_handler> h;
  {
    std::lock_guard lock(registry().mutex);
    if (!handler) return;
    h.emplace(std::move(*handler));
    handler.reset();
  }
  h->post(aborted());
}

/// Completes the stop now, unless it already completed (or was cancelled).
void complete_now(stop_op& op) {
  std::optional<stop_handler> h;
  {
    std::lock_guard lock(registry().mutex);
    if (!op.handler) return;
    h.emplace(std::move(*op.handler));
    op.handler.reset();
  }
  h->post(nullptr);
}

/// Makes `op`'s handler cancellable through its slot, before anyone else can see `op`.
void connect_slot(std::shared_ptr<stop_op> const& op) {
  auto slot = net::get_associated_cancellation_slot(op->handler->handler());
  if (slot.is_connected())
    slot.template emplace<keyed_cancellation<stop_op>>(keyed_cancellation<stop_op>{op, 0});
}

/// Adds `op` to the worker's waiters; the caller holds the registry's mutex.
void add_waiter_locked(worker& w, std::shared_ptr<stop_op> const& op) {
  std::erase_if(w.waiters, [](auto const& o) { return !o->handler; });
  w.waiters.push_back(op);
  ++op->remaining;
}

std::shared_ptr<worker> find_or_throw_locked(std::string_view name, char const* who) {
  auto& reg = registry();
  auto it = reg.workers.find(name);
  if (it == reg.workers.end())
    throw std::invalid_argument(std::string(who) + ": no worker named '" + std::string(name) + "'");
  return it->second;
}

struct worker_settings {
  crew::restart restart;
  crew::backoff backoff;
  std::size_t max_restarts;
};

class worker_policy final : public restart_policy {
 public:
  worker_policy(std::shared_ptr<worker> w, task_factory f, worker_settings s, source_location site)
      : worker_(std::move(w)), factory_(std::move(f)), settings_(std::move(s)), site_(site) {}

  task_body make_run(std::size_t n, task_spec& spec) override {
    spec.name = worker_->name;
    spec.site = site_;
    {
      std::lock_guard lock(registry().mutex);
      worker_->state = worker_state::running;
      worker_->restarts = n - 1;
    }
    return factory_.bind();
  }

  restart_decision next(run_outcome&& o) override {
    bool const failed = o.what == run_outcome::kind::failure;
    std::size_t restarts;
    {
      std::lock_guard lock(registry().mutex);
      if (failed) worker_->last_error = o.error;
      restarts = worker_->restarts;
    }
    if (failed)
      report_failure("background worker", worker_->name, "had a failed run", std::move(*o.failure));
    if (o.stopping) return end(worker_state::stopped);
    bool const again = settings_.restart == crew::restart::permanent ||
                       (settings_.restart == crew::restart::transient && failed);
    if (!again || restarts >= settings_.max_restarts)
      return end(failed ? worker_state::failed : worker_state::finished);
    // As a loop's backoff: consecutive failures make the wait grow; a run that returned
    // normally starts the sequence again.
    auto const delay = settings_.backoff.delay(failed ? ++failures_ : 1);
    if (!failed) failures_ = 0;
    {
      std::lock_guard lock(registry().mutex);
      if (delay > clock::duration::zero()) worker_->state = worker_state::waiting;
    }
    return restart_decision::restart(delay);
  }

  std::exception_ptr stopped() override {
    end(worker_state::stopped);
    return nullptr;
  }

 private:
  /// The worker ended as `s` says: its stops complete.
  restart_decision end(worker_state s) noexcept {
    std::vector<stop_handler> done;
    std::shared_ptr<restart_driver> driver;  // the driver holds itself until it completes
    std::vector<std::shared_ptr<stop_op>> waiters;
    {
      std::lock_guard lock(registry().mutex);
      if (worker_->ended) return restart_decision::stop();
      worker_->ended = true;
      worker_->state = s;
      driver = std::move(worker_->driver);
      waiters.swap(worker_->waiters);
      done.reserve(waiters.size());
      for (auto const& op : waiters) {
        if (!op->handler || --op->remaining != 0) continue;
        done.emplace_back(std::move(*op->handler));
        op->handler.reset();
      }
    }
    for (auto& h : done) h.post(nullptr);
    return restart_decision::stop();
  }

  std::shared_ptr<worker> const worker_;
  task_factory factory_;
  worker_settings const settings_;
  source_location const site_;
  unsigned failures_ = 0;  // consecutive failed runs
};

void validate(std::string const& name, task_factory const& factory, worker_options const& options) {
  if (name.empty()) throw std::invalid_argument("crew::start_worker: name is empty");
  if (!factory)
    throw std::invalid_argument("crew::start_worker: the factory of worker '" + name + "' is null");
  switch (options.restart) {
    case restart::permanent:
    case restart::transient:
    case restart::temporary:
      return;
  }
  throw std::invalid_argument(
      "crew::start_worker: options.restart of worker '" + name +
      "' is not a crew::restart: " + std::to_string(static_cast<int>(options.restart)));
}

}  // namespace

void start_worker(net::any_io_executor const& ex, std::string name, task_factory factory,
                  worker_options const& options, source_location site) {
  validate(name, factory, options);
  auto e = net::prefer(plain_executor(ex), net::execution::outstanding_work.untracked);
  auto alive = net::use_service<context_watch>(net::query(e, net::execution::context)).alive();
  auto w = std::make_shared<worker>(name, e, std::move(alive));
  auto policy = std::make_unique<worker_policy>(
      w, std::move(factory),
      worker_settings{options.restart, options.backoff, options.max_restarts}, site);
  auto driver = std::make_shared<restart_driver>(
      e, options.clock ? *options.clock : clock::steady(), std::move(policy), "background worker",
      name, restart_driver::handler_type([](std::exception_ptr) {}));
  std::shared_ptr<worker> replaced;  // released after the lock: it may hold a user's exception
  {
    auto& reg = registry();
    std::lock_guard lock(reg.mutex);
    auto it = reg.workers.find(name);
    if (it != reg.workers.end()) {
      auto const& old = *it->second;
      if (!old.ended)
        throw std::invalid_argument(
            "crew::start_worker: a worker named '" + name + "' is already running" +
            (old.state == worker_state::waiting ? " (waiting to run again)" : ""));
      replaced = std::move(it->second);
      it->second = w;
    } else {
      reg.workers.emplace(name, w);
    }
    w->driver = driver;
  }
  driver->start();
}

void stop_worker(std::string const& name, runtime_handler handler) {
  std::shared_ptr<worker> w;
  {
    std::lock_guard lock(registry().mutex);
    w = find_or_throw_locked(name, "crew::async_stop_worker");
  }
  auto op = std::make_shared<stop_op>();
  op->handler.emplace(std::move(handler), w->completion_executor());
  connect_slot(op);
  std::shared_ptr<restart_driver> driver;
  {
    std::lock_guard lock(registry().mutex);
    if (!w->ended) {
      add_waiter_locked(*w, op);
      driver = w->driver;
    }
  }
  if (driver)
    driver->stop();
  else
    complete_now(*op);
}

void stop_all_workers(runtime_handler handler) {
  auto op = std::make_shared<stop_op>();
  // No worker's executor is the stop's: a handler without one runs on the system executor.
  op->handler.emplace(std::move(handler), net::system_executor());
  connect_slot(op);
  std::vector<std::shared_ptr<restart_driver>> drivers;
  {
    std::lock_guard lock(registry().mutex);
    for (auto const& [name, w] : registry().workers) {
      if (w->ended) continue;
      add_waiter_locked(*w, op);
      drivers.push_back(w->driver);
    }
  }
  if (drivers.empty()) complete_now(*op);
  for (auto const& d : drivers) d->stop();
}

// A name, once used, stays in the registry: a check made before an operation's
// initiation still holds when it runs.
void require_worker(std::string_view name, char const* who) {
  std::lock_guard lock(registry().mutex);
  (void)find_or_throw_locked(name, who);
}

worker_info worker_status(std::string_view name) {
  std::lock_guard lock(registry().mutex);
  auto const w = find_or_throw_locked(name, "crew::worker_status");
  worker_info info;
  info.state = w->state;
  info.restarts = w->restarts;
  info.last_error = w->last_error;
  return info;
}

}  // namespace detail
}  // namespace crew
