//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task manager: one run is a crew task (the body below) that runs each stage of
// each managed task as a child crew task, one at a time for initialize and cleanup,
// and each execute as a run-once restart driver, all at once. The kinds' rules live in
// execute_ended; everything else is the task and policy layers.
//
#include <crew/detail/enum_name.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/restart.hpp>
#include <crew/task_manager.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace crew {

char const* to_string(task_kind k) noexcept {
  return detail::enum_name(k, {"strict", "error", "stop_group"});
}

namespace detail {

void throw_null_managed(char const* who) {
  throw std::invalid_argument(std::string(who) + ": task is a null pointer");
}

namespace {

constexpr char const* owner_kind = "task manager";

void check_kind(char const* who, task_kind k) {
  if (k != task_kind::strict && k != task_kind::error && k != task_kind::stop_group)
    throw std::invalid_argument(std::string(who) + ": kind " +
                                std::to_string(static_cast<long long>(k)) +
                                " is not a crew::task_kind");
}

std::exception_ptr error_of(crew::error e, std::string what) {
  return std::make_exception_ptr(boost::system::system_error(make_error_code(e), what));
}

}  // namespace

/** A task manager's tasks and its one run. A mutex guards everything below it; it is
    never held while user code runs.
*/
class manager_core : public std::enable_shared_from_this<manager_core> {
 public:
  explicit manager_core(task_manager_options o) : options_(std::move(o)) {}

  void add(std::string name, std::shared_ptr<managed_base> task, task_kind kind,
           source_location site);
  void add_execute(std::string name, task_factory f, task_kind kind, source_location site);
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return added_;
  }
  void start_run(net::any_io_executor const& ex, run_handler handler);
  /// Shuts the run down (the first cause wins): null for stop() and the kinds'
  /// endings, operation_aborted for a cancelled run, shut_down for a destroyed manager.
  /// A request (stop or cancel) that finds the run ending already cancels the initialize
  /// or cleanup in flight.
  void shutdown(std::exception_ptr cause, bool request = false) noexcept;
  void cancel_key(std::uint64_t, net::cancellation_type) noexcept {
    shutdown(std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted,
                                                                 "task manager run cancelled")),
             true);
  }

 private:
  enum class phase { idle, initializing, executing, cleaning, done };

  struct managed_entry {
    std::string name;
    std::shared_ptr<managed_base> task;
    task_kind kind;
    source_location site;
  };

  /// One execute, of a managed task or an execute-only one.
  struct execute_run {
    std::string name;
    task_factory f;
    task_kind kind;
    source_location site;
    std::atomic<std::uint64_t> id{0};
    std::shared_ptr<restart_driver> driver;
  };
  using execute_ptr = std::shared_ptr<execute_run>;

  net::awaitable<void> body();
  net::awaitable<void> stage(std::size_t i, task_stage s);
  net::awaitable<void> executes_over();
  void start_executes();
  execute_ptr make_execute_locked(std::string name, task_factory f, task_kind kind,
                                  source_location site);
  void execute_ended(execute_run& r, std::exception_ptr e);
  void wake_locked() noexcept;
  void record(task_failure f) {
    std::lock_guard lock(mutex_);
    failures_.push_back(std::move(f));
  }
  void complete() noexcept;
  /// The run's task will never complete the run (its io_context is being destroyed):
  /// the run's handler goes now, while its executor still exists.
  void abandon() noexcept;
  struct run_end;

  task_manager_options const options_;
  net::any_io_executor ex_;  // set by start_run

  mutable std::mutex mutex_;
  phase phase_ = phase::idle;
  std::size_t added_ = 0;
  std::vector<managed_entry> tasks_;  // fixed once the run has started
  std::vector<execute_ptr> pending_;  // execute-only tasks waiting for the execute stage
  std::vector<execute_ptr> executes_;
  std::size_t executing_ = 0;        // executes that have not ended
  std::size_t stop_group_left_ = 0;  // stop_group executes that have not returned normally
  bool shutting_down_ = false;
  std::exception_ptr cause_;
  std::vector<task_failure> failures_;
  net::steady_timer* wake_ = nullptr;           // the body's wait for the executes, while it waits
  std::weak_ptr<restart_driver> stage_driver_;  // the initialize or cleanup in flight
  std::optional<stored_handler<void(std::exception_ptr)>> handler_;
};

/// The handler of the run's own task.
struct manager_core::run_end {
  std::shared_ptr<manager_core> core;

  run_end(std::shared_ptr<manager_core> c) noexcept : core(std::move(c)) {}
  run_end(run_end&&) noexcept = default;
  run_end& operator=(run_end&&) = delete;

  /// The body completed the run, unless it threw (a bug in crew): then this does.
  void operator()(std::exception_ptr e) {
    auto const c = std::move(core);
    std::optional<stored_handler<void(std::exception_ptr)>> h;
    {
      std::lock_guard lock(c->mutex_);
      if (!c->handler_) return;
      c->phase_ = phase::done;
      h.emplace(std::move(*c->handler_));
      c->handler_.reset();
    }
    h->post(e ? std::move(e) : error_of(error::shut_down, "crew::task_manager: the run ended"));
  }

  /// Destroyed without a call: the run's task never ran, its io_context went first.
  ~run_end() {
    if (core) core->abandon();
  }
};

void manager_core::add(std::string name, std::shared_ptr<managed_base> task, task_kind kind,
                       source_location site) {
  check_kind("crew::task_manager::add", kind);
  std::lock_guard lock(mutex_);
  if (phase_ == phase::cleaning || phase_ == phase::done ||
      (phase_ != phase::idle && shutting_down_))
    throw boost::system::system_error(make_error_code(error::shut_down),
                                      "crew::task_manager::add: the manager has shut down");
  if (phase_ != phase::idle)
    throw boost::system::system_error(make_error_code(error::already_running),
                                      "crew::task_manager::add: the manager is running");
  if (name.empty()) name = "task " + std::to_string(added_ + 1);
  tasks_.push_back(managed_entry{std::move(name), std::move(task), kind, site});
  ++added_;
}

void manager_core::add_execute(std::string name, task_factory f, task_kind kind,
                               source_location site) {
  check_kind("crew::task_manager::add_execute_task", kind);
  execute_ptr started;
  {
    std::lock_guard lock(mutex_);
    if (phase_ == phase::cleaning || phase_ == phase::done ||
        (phase_ != phase::idle && shutting_down_))
      throw boost::system::system_error(
          make_error_code(error::shut_down),
          "crew::task_manager::add_execute_task: the manager has shut down");
    if (name.empty()) name = "task " + std::to_string(added_ + 1);
    auto r = make_execute_locked(std::move(name), std::move(f), kind, site);
    ++added_;
    if (phase_ == phase::executing)
      started = std::move(r);
    else
      pending_.push_back(std::move(r));
  }
  // A shutdown that came in between has stopped the driver already: it ends at once.
  if (started) started->driver->start();
}

auto manager_core::make_execute_locked(std::string name, task_factory f, task_kind kind,
                                       source_location site) -> execute_ptr {
  auto r = std::make_shared<execute_run>();
  r->name = std::move(name);
  r->f = std::move(f);
  r->kind = kind;
  r->site = site;
  if (phase_ != phase::executing) return r;
  auto* raw = r.get();  // the driver's handler owns `r`
  r->driver = std::make_shared<restart_driver>(
      ex_, clock::steady(),
      make_once_policy(std::move(r->f), r->name, site, [raw](std::uint64_t id) { raw->id = id; }),
      owner_kind, options_.name, run_handler([self = shared_from_this(), r](std::exception_ptr e) {
        self->execute_ended(*r, std::move(e));
      }));
  executes_.push_back(r);
  ++executing_;
  if (kind == task_kind::stop_group) ++stop_group_left_;
  return r;
}

void manager_core::start_run(net::any_io_executor const& ex, run_handler handler) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    if (phase_ == phase::idle) {
      phase_ = phase::initializing;
      ex_ = plain_executor(ex);
      first = true;
    }
  }
  if (!first) {
    stored_handler<void(std::exception_ptr)>(std::move(handler), ex)
        .post(error_of(error::already_running,
                       "crew::task_manager::async_run: the manager ran already"));
    return;
  }
  auto slot = net::get_associated_cancellation_slot(handler);
  if (slot.is_connected())
    slot.template emplace<keyed_cancellation<manager_core>>(
        keyed_cancellation<manager_core>{weak_from_this(), 0});
  handler_.emplace(std::move(handler), ex_);
  run_once(ex_,
           task_factory::make([self = shared_from_this()] { return self->body(); }, owner_kind),
           owner_kind, options_.name.empty() ? std::string(owner_kind) : options_.name, {},
           run_end{shared_from_this()});
}

void manager_core::abandon() noexcept {
  std::optional<stored_handler<void(std::exception_ptr)>> h;
  {
    std::lock_guard lock(mutex_);
    if (!handler_) return;
    phase_ = phase::done;
    h.emplace(std::move(*handler_));
    handler_.reset();
  }
}

void manager_core::shutdown(std::exception_ptr cause, bool request) noexcept {
  std::vector<execute_ptr> running;
  std::shared_ptr<restart_driver> stage;
  {
    std::lock_guard lock(mutex_);
    if (phase_ == phase::done) return;
    if (request && (shutting_down_ || phase_ == phase::cleaning)) {
      // The run is ending already: a request now cancels the initialize or cleanup in
      // flight, the way out of a stage that hangs.
      stage = stage_driver_.lock();
    }
  }
  if (stage) {
    stage->stop(net::cancellation_type::terminal);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_ || phase_ == phase::cleaning || phase_ == phase::done) return;
    shutting_down_ = true;
    cause_ = std::move(cause);
    if (phase_ != phase::executing) return;  // the body looks at shutting_down_
    running = executes_;
    wake_locked();
  }
  for (auto const& r : running) r->driver->stop(net::cancellation_type::terminal);
}

net::awaitable<void> manager_core::body() {
  // If this frame is destroyed before the run completed, its io_context is going.
  struct abandoned {
    std::shared_ptr<manager_core> core;
    ~abandoned() { core->abandon(); }
  } const guard{shared_from_this()};
  std::size_t const n = tasks_.size();  // add() refuses once the run has started
  std::size_t i = 0;
  for (; i < n; ++i) {
    co_await stage(i, task_stage::initialize);
    std::lock_guard lock(mutex_);
    if (!failures_.empty()) break;
  }
  if (i < n) {
    {
      std::lock_guard lock(mutex_);
      phase_ = phase::cleaning;
      pending_.clear();  // never started: nothing of theirs ran
    }
    // Initialization failed at i: i and everything before it is cleaned up.
    for (std::size_t j = i + 1; j-- > 0;) co_await stage(j, task_stage::cleanup);
  } else {
    start_executes();
    co_await executes_over();
    {
      std::lock_guard lock(mutex_);
      phase_ = phase::cleaning;
    }
    for (std::size_t j = n; j-- > 0;) co_await stage(j, task_stage::cleanup);
  }
  complete();
}

net::awaitable<void> manager_core::stage(std::size_t i, task_stage s) {
  auto const& t = tasks_[i];
  std::atomic<std::uint64_t> id{0};
  auto f = task_factory::make(
      [task = t.task, s] {
        return s == task_stage::initialize ? task->initialize() : task->cleanup();
      },
      owner_kind);
  auto op =
      drive(clock::steady(),
            make_once_policy(std::move(f), t.name, t.site, [&id](std::uint64_t v) { id = v; }),
            owner_kind, options_.name, [this](std::shared_ptr<restart_driver> const& d) {
              std::lock_guard lock(mutex_);
              stage_driver_ = d;
            });
  auto e = co_await std::move(op);
  {
    std::lock_guard lock(mutex_);
    stage_driver_.reset();
  }
  if (e) record(make_failure(id, t.name, t.site, std::move(e), s));
}

void manager_core::start_executes() {
  std::vector<execute_ptr> start;
  bool idle = false;
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) {
      phase_ = phase::cleaning;
      pending_.clear();  // never started: nothing of theirs ran
      return;
    }
    phase_ = phase::executing;
    for (auto const& t : tasks_)
      start.push_back(make_execute_locked(
          t.name, task_factory::make([task = t.task] { return task->execute(); }, owner_kind),
          t.kind, t.site));
    for (auto& p : pending_)
      start.push_back(make_execute_locked(std::move(p->name), std::move(p->f), p->kind, p->site));
    pending_.clear();
    idle = start.empty() && !options_.allow_idle;
  }
  for (auto const& r : start) r->driver->start();
  if (idle) shutdown(nullptr);
}

void manager_core::execute_ended(execute_run& r, std::exception_ptr e) {
  std::optional<task_failure> failure;
  if (e) failure = make_failure(r.id, r.name, r.site, e, task_stage::execute);
  bool end_all = false;
  {
    std::lock_guard lock(mutex_);
    --executing_;
    if (e) {
      // Once shutting down, an operation_aborted is the shutdown's own doing.
      if (!shutting_down_ || !is_operation_aborted(e)) {
        failures_.push_back(std::move(*failure));
        end_all = true;
      }
    } else if (!shutting_down_) {
      if (r.kind == task_kind::strict) {
        failures_.push_back(make_failure(
            r.id, r.name, r.site,
            error_of(error::task_stopped_unexpectedly, "task '" + r.name + "' returned"),
            task_stage::execute));
        end_all = true;
      } else if (r.kind == task_kind::stop_group) {
        end_all = --stop_group_left_ == 0;
      }
    }
    if (executing_ == 0 && !options_.allow_idle) end_all = true;
    if (shutting_down_ && executing_ == 0) wake_locked();
  }
  if (end_all) shutdown(nullptr);
}

void manager_core::wake_locked() noexcept {
  if (wake_ && shutting_down_ && executing_ == 0) {
    boost::system::error_code ignored;
    wake_->cancel(ignored);
    wake_ = nullptr;
  }
}

net::awaitable<void> manager_core::executes_over() {
  // A timer in this frame, not a handler stored here: if the io_context is destroyed
  // meanwhile, the wait goes with it, and with the wait this frame.
  net::steady_timer timer(ex_, net::steady_timer::time_point::max());
  struct unhook {
    manager_core& core;
    ~unhook() {
      std::lock_guard lock(core.mutex_);
      core.wake_ = nullptr;
    }
  } guard{*this};
  auto token = net::as_tuple(net::use_awaitable);
  co_await net::async_initiate<decltype(token), void(boost::system::error_code)>(
      [&](auto handler) {
        std::lock_guard lock(mutex_);
        timer.async_wait(std::move(handler));
        if (phase_ != phase::executing) {
          timer.cancel();  // nothing started
        } else {
          wake_ = &timer;
          wake_locked();
        }
      },
      token);
}

void manager_core::complete() noexcept {
  std::exception_ptr result;
  std::optional<stored_handler<void(std::exception_ptr)>> h;
  {
    std::lock_guard lock(mutex_);
    phase_ = phase::done;
    executes_.clear();
    tasks_.clear();  // the run is over: the manager lets go of its tasks
    if (failures_.empty()) {
      result = cause_;
    } else {
      try {
        result = std::make_exception_ptr(task_errors(std::move(failures_)));
      } catch (...) {
        result = std::current_exception();
      }
      failures_.clear();
    }
    h.emplace(std::move(*handler_));
    handler_.reset();
  }
  h->post(std::move(result));
}

// ---------------------------------------------------------------- task_manager_state

task_manager_state::task_manager_state(task_manager_options options)
    : core_(std::make_shared<manager_core>(std::move(options))) {}

task_manager_state::~task_manager_state() {
  if (core_)
    core_->shutdown(error_of(error::shut_down, "crew::task_manager destroyed while running"));
}

void task_manager_state::add(std::string name, std::shared_ptr<managed_base> task, task_kind kind,
                             source_location site) {
  core_->add(std::move(name), std::move(task), kind, site);
}

void task_manager_state::add_execute(std::string name, task_factory f, task_kind kind,
                                     source_location site) {
  core_->add_execute(std::move(name), std::move(f), kind, site);
}

void task_manager_state::stop() {
  core_->shutdown(nullptr, true);
}

std::size_t task_manager_state::size() const {
  return core_->size();
}

void task_manager_state::start_run(net::any_io_executor const& ex, run_handler handler) {
  core_->start_run(ex, std::move(handler));
}

}  // namespace detail
}  // namespace crew
