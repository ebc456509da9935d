//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The scheduler: a group core owns every task of it. Each entry is one long-lived
// task that drives a `ticker` policy over the restart driver: every run of the driver
// is a tick, and a tick that is due starts (or skips, or queues) a run of the job, a
// task of the same group. The job's body is wrapped so that its entry hears how it
// ended.
//
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/group_core.hpp>
#include <crew/detail/restart.hpp>
#include <crew/scheduler.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <iomanip>
#include <map>
#include <mutex>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace crew {

char const* to_string(overlap_policy p) noexcept {
  switch (p) {
    case overlap_policy::skip:
      return "skip";
    case overlap_policy::queue:
      return "queue";
    case overlap_policy::allow:
      return "allow";
  }
  return "unknown";
}

char const* to_string(job_outcome o) noexcept {
  switch (o) {
    case job_outcome::none:
      return "none";
    case job_outcome::succeeded:
      return "succeeded";
    case job_outcome::failed:
      return "failed";
    case job_outcome::cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, job_outcome o) {
  return os << to_string(o);
}

namespace {

void write_time(std::ostream& os, std::chrono::system_clock::time_point t) {
  auto const secs = std::chrono::floor<std::chrono::seconds>(t);
  std::time_t const tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  os << std::put_time(&tm, "%Y-%m-%d %H:%M:%S UTC");
}

}  // namespace

std::ostream& operator<<(std::ostream& os, scheduler_entry const& e) {
  std::ostringstream line;
  line << e.name << "  " << e.spec << "  next ";
  if (e.next_run)
    write_time(line, *e.next_run);
  else
    line << "never";
  line << "  runs " << e.runs << ", failures " << e.failures << ", skipped " << e.skipped;
  if (e.running != 0) line << ", running " << e.running;
  if (e.queued != 0) line << ", queued " << e.queued;
  line << "  last " << e.last_outcome;
  if (e.last_run) {
    line << " (";
    write_time(line, *e.last_run);
    line << ")";
  }
  if (e.last_outcome == job_outcome::failed) line << ": " << e.last_error;
  return os << line.str();
}

namespace detail {

namespace {

std::string describe(std::exception_ptr const& e) {
  try {
    std::rethrow_exception(e);
  } catch (std::exception const& x) {
    return x.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

std::string describe_period(char const* what, clock::duration d) {
  return std::string(what) + " " + format_duration(d);
}

}  // namespace

/// One entry: its schedule and what it did. Guarded by the scheduler's mutex.
struct schedule_entry {
  std::string name;
  std::string spec;
  schedule_kind kind;
  clock::duration period{};
  std::optional<cron_expression> expr;
  job_options options;
  task_factory factory;
  source_location site;

  // The next due time: steady for every and once, wall time for cron (empty: never).
  clock::time_point due{};
  std::optional<clock::system_time_point> due_wall;
  // The due time plus this run's jitter: when the tick really starts the run.
  clock::time_point fire{};
  clock::system_time_point fire_wall{};
  bool fired_once = false;  // once: its run started
  bool removed = false;     // cancelled, or the scheduler stopped
  std::weak_ptr<restart_driver> driver;
  std::vector<node_ref> jobs;  // runs in flight

  std::optional<clock::system_time_point> last_run;
  job_outcome last_outcome = job_outcome::none;
  std::string last_error;
  std::uint64_t runs = 0, failures = 0, skipped = 0;
  std::size_t running = 0, queued = 0;
};

class scheduler_core final : public std::enable_shared_from_this<scheduler_core> {
 public:
  scheduler_core(net::any_io_executor ex, scheduler_options options)
      : ex_(std::move(ex)),
        clock_(options.clock ? *options.clock : clock::steady()),
        name_(options.name),
        time_zone_(options.time_zone),
        wall_clock_check_(options.wall_clock_check),
        rng_(std::random_device{}()) {
    if (options.wall_clock_check < clock::duration::zero())
      throw std::invalid_argument(
          "crew::scheduler: options.wall_clock_check must not be "
          "negative, got " +
          format_duration(options.wall_clock_check));
    if (!options.time_zone.empty()) (void)cron_expression::parse("* * * * *", options.time_zone);
    task_group_options o;
    o.name = options.name;
    o.keep_failures = 1;  // each failure is handled as it happens, and then forgotten
    if (options.on_failure)
      o.on_failure = std::move(options.on_failure);
    else
      o.on_failure = [name = options.name](task_failure const& f) {
        report_failure("scheduler", name, "had a failed run", f);
      };
    jobs_ = std::make_shared<group_core>(ex_, o, "scheduler");
  }

  cron_expression parse(std::string_view spec) const {
    return time_zone_.empty() ? cron_expression::parse(spec)
                              : cron_expression::parse(spec, time_zone_);
  }

  void add(job_spec&& s, char const* who);
  bool cancel(std::string_view name) noexcept;
  std::vector<scheduler_entry> entries() const;
  std::optional<scheduler_entry> find(std::string_view name) const;
  void stop(stop_handler handler);
  void shutdown() noexcept;

  // The ticker's.
  void tick(schedule_entry& e);
  std::optional<clock::duration> next_wait(schedule_entry& e);
  void entry_ended(schedule_entry& e) noexcept;

 private:
  class ticker;

  void spawn_job_locked(std::shared_ptr<schedule_entry> const& e);
  void job_started(std::shared_ptr<schedule_entry> const& e);
  void job_ended(std::shared_ptr<schedule_entry> const& e, std::exception_ptr const& error,
                 bool cancelled) noexcept;
  net::awaitable<void> run_job(std::shared_ptr<schedule_entry> e);
  net::awaitable<void> run_entry(std::shared_ptr<schedule_entry> e);
  clock::duration jitter_locked(job_options const& o);
  std::vector<std::shared_ptr<restart_driver>> stop_entries_locked();
  scheduler_entry snapshot_locked(schedule_entry const& e, clock::time_point now,
                                  clock::system_time_point wall) const;

  net::any_io_executor const ex_;
  crew::clock& clock_;
  std::string const name_;
  std::string const time_zone_;
  clock::duration const wall_clock_check_;
  std::shared_ptr<group_core> jobs_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<schedule_entry>, std::less<>> entries_;
  bool stopped_ = false;
  std::mt19937_64 rng_;
};

// ---------------------------------------------------------------- the ticker policy

/// Each run of the driver is a tick. A tick that is due starts the job (as the entry's
/// overlap policy says) and moves the entry's due time; one that is not (the first,
/// which arms the entry, or a wall-clock check) does nothing.
class scheduler_core::ticker final : public restart_policy {
 public:
  ticker(std::shared_ptr<scheduler_core> core, std::shared_ptr<schedule_entry> e)
      : core_(std::move(core)), e_(std::move(e)) {}

  task_body make_run(std::size_t, task_spec& spec) override {
    spec.name = e_->name + " tick";
    spec.site = e_->site;
    core_->tick(*e_);
    return void_function([]() -> net::awaitable<void> { co_return; });
  }

  restart_decision next(run_outcome&& o) override {
    if (o.stopping) return restart_decision::stop();
    if (auto const d = core_->next_wait(*e_)) return restart_decision::restart(*d);
    return restart_decision::stop();
  }

  std::exception_ptr stopped() override { return nullptr; }

 private:
  std::shared_ptr<scheduler_core> core_;
  std::shared_ptr<schedule_entry> e_;
};

// ---------------------------------------------------------------- adding

void scheduler_core::add(job_spec&& s, char const* who) {
  auto const fail = [&](std::string const& what) {
    throw std::invalid_argument(std::string(who) + ": " + what);
  };
  if (s.name.empty()) fail("the name must not be empty");
  if (!s.factory) fail("the job '" + s.name + "' has an empty factory");
  if (s.options.jitter < clock::duration::zero())
    fail("options.jitter must not be negative, got " + format_duration(s.options.jitter));
  if (s.kind == schedule_kind::every && s.period <= clock::duration::zero())
    fail("the period of '" + s.name + "' must be positive, got " + format_duration(s.period));
  if (s.kind == schedule_kind::once && s.period < clock::duration::zero())
    fail("the delay of '" + s.name + "' must not be negative, got " + format_duration(s.period));

  auto e = std::make_shared<schedule_entry>();
  e->name = std::move(s.name);
  e->kind = s.kind;
  e->period = s.period;
  e->expr = std::move(s.expr);
  e->options = s.options;
  e->factory = std::move(s.factory);
  e->site = s.site;
  switch (e->kind) {
    case schedule_kind::every:
      e->spec = describe_period("@every", e->period);
      break;
    case schedule_kind::once:
      e->spec = describe_period("@once", e->period);
      break;
    case schedule_kind::cron:
      e->spec = e->expr->spec();
      break;
  }

  {
    std::lock_guard lock(mutex_);
    if (stopped_) throw boost::system::system_error(make_error_code(error::shut_down), who);
    if (entries_.count(e->name) != 0) fail("an entry named '" + e->name + "' exists");
    auto const now = clock_.now();
    if (e->kind == schedule_kind::cron) {
      e->due_wall = e->expr->next(clock_.system_now());
      if (e->due_wall) e->fire_wall = saturating_add(*e->due_wall, jitter_locked(e->options));
    } else {
      e->due = saturating_add(now, e->period);
      e->fire = saturating_add(e->due, jitter_locked(e->options));
    }
    entries_.emplace(e->name, e);
  }
  // The entry's task is a root of the scheduler, named after the entry.
  task_spec spec;
  spec.name = e->name;
  spec.site = e->site;
  static task_context const root;
  spec.context = &root;
  try {
    jobs_->spawn(void_function([self = shared_from_this(), e] { return self->run_entry(e); }),
                 std::move(spec), group_core::admit_mode::spawn);
  } catch (...) {
    std::lock_guard lock(mutex_);
    entries_.erase(e->name);
    throw;
  }
}

net::awaitable<void> scheduler_core::run_entry(std::shared_ptr<schedule_entry> e) {
  auto self = shared_from_this();
  std::exception_ptr result =
      co_await drive(clock_, std::make_unique<ticker>(self, e), "scheduler entry", e->name,
                     [&](std::shared_ptr<restart_driver> const& d) {
                       std::lock_guard lock(mutex_);
                       e->driver = d;
                       if (e->removed) d->stop();
                     });
  entry_ended(*e);
  if (result) std::rethrow_exception(result);
}

void scheduler_core::entry_ended(schedule_entry& e) noexcept {
  std::lock_guard lock(mutex_);
  e.removed = true;
  auto const it = entries_.find(e.name);
  if (it != entries_.end() && it->second.get() == &e && e.running == 0) entries_.erase(it);
}

clock::duration scheduler_core::jitter_locked(job_options const& o) {
  if (o.jitter <= clock::duration::zero()) return clock::duration::zero();
  std::uniform_int_distribution<clock::duration::rep> dist(0, o.jitter.count());
  return clock::duration(dist(rng_));
}

// ---------------------------------------------------------------- ticks

void scheduler_core::tick(schedule_entry& e) {
  std::shared_ptr<schedule_entry> entry;
  std::lock_guard lock(mutex_);
  if (stopped_ || e.removed) return;
  auto const it = entries_.find(e.name);
  if (it == entries_.end() || it->second.get() != &e) return;
  entry = it->second;
  auto const now = clock_.now();
  if (e.kind == schedule_kind::cron) {
    auto const wall = clock_.system_now();
    if (!e.due_wall || wall < e.fire_wall) return;  // armed, or a wall-clock check
    // The next due time after this one, and after now: due times missed while the
    // process was late (or the wall clock stepped forward) are skipped, not caught up.
    e.due_wall = e.expr->next(std::max(*e.due_wall, wall));
    if (e.due_wall) e.fire_wall = saturating_add(*e.due_wall, jitter_locked(e.options));
  } else {
    if (now < e.fire || e.fired_once) return;
    if (e.kind == schedule_kind::once) {
      e.fired_once = true;
    } else {
      // Fixed rate: the next due time on the grid start + k × period after now.
      e.due = saturating_add(e.due, e.period);
      if (e.due <= now && e.due != clock::time_point::max()) {
        auto const missed = (now - e.due) / e.period + 1;
        e.skipped += static_cast<std::uint64_t>(missed);
        e.due = saturating_add(e.due, e.period * missed);
      }
      e.fire = saturating_add(e.due, jitter_locked(e.options));
    }
  }
  if (e.running != 0 && e.options.overlap != overlap_policy::allow) {
    if (e.options.overlap == overlap_policy::skip)
      ++e.skipped;
    else
      ++e.queued;
    return;
  }
  spawn_job_locked(entry);
}

std::optional<clock::duration> scheduler_core::next_wait(schedule_entry& e) {
  std::lock_guard lock(mutex_);
  if (stopped_ || e.removed) return std::nullopt;
  if (e.kind == schedule_kind::cron) {
    if (!e.due_wall) return std::nullopt;
    auto const wall = clock_.system_now();
    auto wait = e.fire_wall > wall ? std::chrono::duration_cast<clock::duration>(e.fire_wall - wall)
                                   : clock::duration::zero();
    if (wall_clock_check_ > clock::duration::zero() && wait > wall_clock_check_)
      wait = wall_clock_check_;
    return wait;
  }
  if (e.fired_once) return std::nullopt;
  auto const now = clock_.now();
  if (e.fire == clock::time_point::max()) return clock::duration::max();
  return e.fire > now ? e.fire - now : clock::duration::zero();
}

// ---------------------------------------------------------------- runs

void scheduler_core::spawn_job_locked(std::shared_ptr<schedule_entry> const& e) {
  ++e->running;
  ++e->runs;
  e->last_run = clock_.system_now();
  task_spec spec;
  spec.name = e->name;
  spec.site = e->site;
  static task_context const root;  // each run is a root, with a trace of its own
  spec.context = &root;
  try {
    jobs_->spawn(void_function([self = shared_from_this(), e] { return self->run_job(e); }),
                 std::move(spec), group_core::admit_mode::spawn);
  } catch (...) {
    // Without memory for the run's task, the run is lost; the entry keeps its schedule.
    --e->running;
    ++e->failures;
    e->last_outcome = job_outcome::failed;
    e->last_error = "the run's task could not be made";
  }
}

net::awaitable<void> scheduler_core::run_job(std::shared_ptr<schedule_entry> e) {
  // The task keeps its callable, and with it this core, until the frame is gone.
  job_started(e);
  // Tells the entry how the run ended, also when the frame is destroyed with its
  // io_context before the run ended.
  struct guard {
    scheduler_core* core;
    std::shared_ptr<schedule_entry> const& e;
    std::exception_ptr error;
    bool cancelled = true;  // unless the body ended
    ~guard() { core->job_ended(e, error, cancelled); }
  } g{this, e, nullptr};
  task_body body = e->factory.bind();
  try {
    if (auto* f = std::get_if<void_function>(&body))
      co_await (*f)();
    else if (auto* c = std::get_if<code_function>(&body))
      g.error = failure_of(co_await (*c)());
    else if (auto* s = std::get_if<std_code_function>(&body))
      g.error = failure_of(co_await (*s)());
  } catch (...) {
    g.error = std::current_exception();
  }
  auto const cs = co_await net::this_coro::cancellation_state;
  g.cancelled =
      g.error && cs.cancelled() != net::cancellation_type::none && is_operation_aborted(g.error);
  if (g.error) std::rethrow_exception(g.error);
}

void scheduler_core::job_started(std::shared_ptr<schedule_entry> const& e) {
  task_node* const n = current_task();
  if (!n) return;
  n->add_ref();
  node_ref ref(n);
  std::lock_guard lock(mutex_);
  e->jobs.push_back(std::move(ref));
  if (e->removed) n->request_cancel(net::cancellation_type::terminal);
}

void scheduler_core::job_ended(std::shared_ptr<schedule_entry> const& e,
                               std::exception_ptr const& error, bool cancelled) noexcept {
  task_node* const n = current_task();
  std::vector<node_ref> gone;  // released after the unlock
  std::lock_guard lock(mutex_);
  auto const it =
      std::find_if(e->jobs.begin(), e->jobs.end(), [&](node_ref const& r) { return r.get() == n; });
  if (it != e->jobs.end()) {
    gone.push_back(std::move(*it));
    e->jobs.erase(it);
  }
  --e->running;
  if (cancelled) {
    e->last_outcome = job_outcome::cancelled;
  } else if (error) {
    ++e->failures;
    e->last_outcome = job_outcome::failed;
    try {
      e->last_error = describe(error);
    } catch (...) {
    }
  } else {
    e->last_outcome = job_outcome::succeeded;
  }
  // Not from a frame destroyed outside its task (its io_context is going away).
  if (n && e->queued != 0 && !e->removed && !stopped_) {
    --e->queued;
    spawn_job_locked(e);
  }
  if (e->removed && e->running == 0) {
    auto const found = entries_.find(e->name);
    if (found != entries_.end() && found->second == e) entries_.erase(found);
  }
}

// ---------------------------------------------------------------- cancel, stop, report

bool scheduler_core::cancel(std::string_view name) noexcept {
  std::shared_ptr<restart_driver> driver;
  std::vector<node_ref> runs;  // cancelled after the unlock: a cancellation runs handlers
  {
    std::lock_guard lock(mutex_);
    auto const it = entries_.find(name);
    if (it == entries_.end()) return false;
    auto e = it->second;
    entries_.erase(it);
    e->removed = true;
    e->queued = 0;
    driver = e->driver.lock();
    try {
      runs = e->jobs;
    } catch (...) {
    }
  }
  for (auto const& r : runs) r->request_cancel(net::cancellation_type::terminal);
  if (driver) driver->stop();
  return true;
}

std::vector<std::shared_ptr<restart_driver>> scheduler_core::stop_entries_locked() {
  std::vector<std::shared_ptr<restart_driver>> drivers;
  stopped_ = true;
  for (auto& [name, e] : entries_) {
    e->queued = 0;
    if (auto d = e->driver.lock()) drivers.push_back(std::move(d));
  }
  return drivers;
}

void scheduler_core::stop(stop_handler handler) {
  std::vector<std::shared_ptr<restart_driver>> drivers;
  {
    std::lock_guard lock(mutex_);
    drivers = stop_entries_locked();
  }
  for (auto& d : drivers) d->stop();
  // Every entry's task ends once its driver stopped; the runs in flight go on. The
  // group's wait covers them all, and its cancellation cancels them: the handler's
  // slot forwards to the wait's, noting that the stop was cancelled. The failures were
  // handled when they happened: the wait must not hand them over again.
  jobs_->forget_failures();
  struct stop_state {
    net::cancellation_signal forward;
    std::atomic<bool> cancelled{false};
  };
  auto st = std::make_shared<stop_state>();
  auto slot = net::get_associated_cancellation_slot(handler);
  if (slot.is_connected())
    slot.assign([st](net::cancellation_type type) {
      st->cancelled = true;
      st->forward.emit(type);
    });
  auto const hex = net::get_associated_executor(handler, ex_);
  auto done = [h = std::move(handler), st, slot](std::exception_ptr) mutable {
    if (slot.is_connected()) slot.clear();
    boost::system::error_code ec;
    if (st->cancelled) ec = net::error::operation_aborted;
    std::move(h)(ec);
  };
  jobs_->async_wait(wait_handler(net::bind_cancellation_slot(
                        st->forward.slot(), net::bind_executor(hex, std::move(done)))),
                    std::nullopt);
}

void scheduler_core::shutdown() noexcept {
  std::vector<std::shared_ptr<restart_driver>> drivers;
  {
    std::lock_guard lock(mutex_);
    try {
      drivers = stop_entries_locked();
    } catch (...) {
    }
  }
  for (auto& d : drivers) d->stop();
  // The failures went to on_failure (or the failure path) as they happened: the group
  // must not report them again as failures nobody waited for.
  jobs_->forget_failures();
  jobs_->shutdown();
}

scheduler_entry scheduler_core::snapshot_locked(schedule_entry const& e, clock::time_point now,
                                                clock::system_time_point wall) const {
  scheduler_entry s;
  s.name = e.name;
  s.spec = e.spec;
  if (!stopped_ && !e.removed) {
    if (e.kind == schedule_kind::cron) {
      s.next_run = e.due_wall;
    } else if (!e.fired_once && e.due != clock::time_point::max()) {
      auto const left = e.due > now ? e.due - now : clock::duration::zero();
      s.next_run = saturating_add(
          wall, std::chrono::duration_cast<clock::system_time_point::duration>(left));
    }
  }
  s.last_run = e.last_run;
  s.last_outcome = e.last_outcome;
  s.last_error = e.last_error;
  s.runs = e.runs;
  s.failures = e.failures;
  s.skipped = e.skipped;
  s.running = e.running;
  s.queued = e.queued;
  return s;
}

std::vector<scheduler_entry> scheduler_core::entries() const {
  auto const now = clock_.now();
  auto const wall = clock_.system_now();
  std::lock_guard lock(mutex_);
  std::vector<scheduler_entry> out;
  out.reserve(entries_.size());
  for (auto const& [name, e] : entries_) out.push_back(snapshot_locked(*e, now, wall));
  return out;
}

std::optional<scheduler_entry> scheduler_core::find(std::string_view name) const {
  auto const now = clock_.now();
  auto const wall = clock_.system_now();
  std::lock_guard lock(mutex_);
  auto const it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  return snapshot_locked(*it->second, now, wall);
}

// ---------------------------------------------------------------- the component's calls

std::shared_ptr<scheduler_core> make_scheduler_core(net::any_io_executor ex,
                                                    scheduler_options options) {
  return std::make_shared<scheduler_core>(std::move(ex), std::move(options));
}

void scheduler_add(scheduler_core& core, job_spec&& spec, char const* who) {
  core.add(std::move(spec), who);
}

cron_expression scheduler_parse(scheduler_core const& core, std::string_view spec) {
  return core.parse(spec);
}

bool scheduler_cancel(scheduler_core& core, std::string_view name) noexcept {
  return core.cancel(name);
}

std::vector<scheduler_entry> scheduler_entries(scheduler_core const& core) {
  return core.entries();
}

std::optional<scheduler_entry> scheduler_find(scheduler_core const& core, std::string_view name) {
  return core.find(name);
}

void scheduler_stop(scheduler_core& core, stop_handler handler) {
  core.stop(std::move(handler));
}

void scheduler_shutdown(scheduler_core& core) noexcept {
  core.shutdown();
}

}  // namespace detail
}  // namespace crew
