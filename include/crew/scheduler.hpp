//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_SCHEDULER_HPP
#define CREW_SCHEDULER_HPP

#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/cron.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// What a run that comes due while the job's previous run still runs does.
enum class overlap_policy {
  skip,   ///< it is skipped (counted in `scheduler_entry::skipped`)
  queue,  ///< it runs as soon as the previous run ends, one after another
  allow,  ///< it runs now, beside the previous one
};

/** Options of one scheduled job. */
struct job_options {
  overlap_policy overlap = overlap_policy::skip;
  /// Each run starts up to this much later than its due time, chosen at random, so
  /// that jobs due at the same time spread out. Zero: none.
  clock::duration jitter{};
};

/** Options of a scheduler. */
struct scheduler_options {
  /// Appears in diagnostics.
  std::string name{};
  /// The clock every wait runs on, and whose `system_now()` cron specs are computed
  /// in; null means `crew::clock::steady()`. A test passes a `crew::manual_clock`.
  crew::clock* clock = nullptr;
  /// Called once per failed run, on the scheduler's executor, one call at a time.
  /// Without it, each failure goes to the runtime's failure path as it happens
  /// (stderr, or `crew::runtime`'s error and exception handlers).
  std::function<void(task_failure const&)> on_failure{};
  /// The time zone of cron specs without a `CRON_TZ=` prefix; empty: the local zone.
  std::string time_zone{};
  /// How long a cron entry waits at most before it reads the wall clock again, so
  /// that a wall-clock step (NTP, a suspended machine) delays a run by at most this
  /// much. Zero or `duration::max()`: never; the wait is computed once per run.
  clock::duration wall_clock_check = std::chrono::minutes(1);
};

/// How a job's last run ended.
enum class job_outcome { none, succeeded, failed, cancelled };

/** One entry of a scheduler, as `entries()` reports it. */
struct scheduler_entry {
  std::string name;
  /// `@every 5 s`, `@once 10 s`, or the cron spec as given.
  std::string spec;
  /// When the next run is due (without jitter); empty when none will come.
  std::optional<std::chrono::system_clock::time_point> next_run;
  /// When the last run started; empty before the first.
  std::optional<std::chrono::system_clock::time_point> last_run;
  job_outcome last_outcome = job_outcome::none;
  /// What the last failed run threw or returned.
  std::string last_error;
  std::uint64_t runs = 0;      ///< runs started
  std::uint64_t failures = 0;  ///< runs that failed
  std::uint64_t skipped = 0;   ///< due times skipped: overlapping, or missed while late
  std::size_t running = 0;     ///< runs in flight
  std::size_t queued = 0;      ///< runs due and waiting for the previous one (queue)
};

char const* to_string(overlap_policy p) noexcept;
char const* to_string(job_outcome o) noexcept;
std::ostream& operator<<(std::ostream& os, job_outcome o);
/// One line: `backup  0 3 * * *  next 2026-12-01 03:00:00 UTC  last succeeded …`.
std::ostream& operator<<(std::ostream& os, scheduler_entry const& e);

namespace detail {
class scheduler_core;
struct scheduler_config {
  scheduler_options options;
};

enum class schedule_kind { every, once, cron };

struct job_spec {
  std::string name;
  schedule_kind kind;
  clock::duration period{};  // every: the period; once: the delay
  std::optional<cron_expression> expr;
  job_options options;
  task_factory factory;
  source_location site;
};

std::shared_ptr<scheduler_core> make_scheduler_core(net::any_io_executor ex,
                                                    scheduler_options options);
void scheduler_add(scheduler_core& core, job_spec&& spec, char const* who);
cron_expression scheduler_parse(scheduler_core const& core, std::string_view spec);
bool scheduler_cancel(scheduler_core& core, std::string_view name) noexcept;
std::vector<scheduler_entry> scheduler_entries(scheduler_core const& core);
std::optional<scheduler_entry> scheduler_find(scheduler_core const& core, std::string_view name);
using stop_handler = net::any_completion_handler<void(boost::system::error_code)>;
void scheduler_stop(scheduler_core& core, stop_handler handler);
void scheduler_shutdown(scheduler_core& core) noexcept;

/// The initiation of async_stop, as Asio's own initiations are.
template <class Executor>
class initiate_scheduler_stop {
 public:
  using executor_type = Executor;
  initiate_scheduler_stop(Executor const& ex, scheduler_core& core) : ex_(ex), core_(&core) {}
  executor_type get_executor() const noexcept { return ex_; }
  template <class Handler>
  void operator()(Handler&& handler) const {
    scheduler_stop(*core_, stop_handler(std::forward<Handler>(handler)));
  }

 private:
  Executor ex_;
  scheduler_core* core_;
};
}  // namespace detail

/** Runs jobs at fixed periods, once after a delay, or on cron schedules.

    Each run of a job is a crew task of the scheduler (the runtime's hooks, stats and
    dump see it), a root with its own trace, named after its entry. A failed run is
    recorded with its throw-site trace, handed to `on_failure` (or the runtime's
    failure path), and the job is still run at its next due time. Each entry is
    driven by a policy over crew's restart driver, waiting on the scheduler's
    `crew::clock`: with a `crew::manual_clock`, months of schedule run in
    milliseconds.

    Periods and delays are steady time; cron specs are wall time (the clock's
    `system_now()`), in their `CRON_TZ=` zone or `scheduler_options::time_zone`.

    All member functions may be called from any thread. Destroying the scheduler stops
    every entry and cancels the runs in flight; it never blocks.

    @tparam Executor The executor jobs run on; `any_io_executor` by default.
*/
template <class Executor = net::any_io_executor>
class basic_scheduler : public detail::io_object<basic_scheduler, Executor, scheduler_options,
                                                 std::shared_ptr<detail::scheduler_core>> {
 public:
  using executor_type = Executor;
  using basic_scheduler::io_object::io_object;

  basic_scheduler(basic_scheduler&& other) noexcept = default;
  /// Shuts this scheduler down, as the destructor does, then takes over `other`'s.
  basic_scheduler& operator=(basic_scheduler&& other) noexcept;
  /// Stops every entry, cancels the runs in flight, and returns at once.
  ~basic_scheduler();

  /** Runs `factory()` every `period`: first at `period` from now, then at fixed
      intervals (start + k × period). A run that comes due while the last one runs is
      skipped, queued or run beside it, as `options.overlap` says.

      @param factory A callable returning `awaitable<void>` or `awaitable<error_code>`,
      called once per run, inside the run's task.
      @throws std::invalid_argument if `name` is empty or taken, `period` is not
      positive, `jitter` is negative, or `factory` is empty.
      @throws boost::system::system_error with `crew::error::shut_down` after a stop.
  */
  template <class F>
  void every(std::string name, clock::duration period, F&& factory,
             source_location site = source_location::current()) {
    add(std::move(name), detail::schedule_kind::every, period, {}, std::forward<F>(factory), {},
        "crew::scheduler::every", site);
  }
  template <class F>
  void every(std::string name, clock::duration period, F&& factory, job_options options,
             source_location site = source_location::current()) {
    add(std::move(name), detail::schedule_kind::every, period, {}, std::forward<F>(factory),
        options, "crew::scheduler::every", site);
  }

  /** Runs `factory()` once, `delay` from now; the entry is removed when the run ended.
      @throws std::invalid_argument if `name` is empty or taken, or `delay` is negative.
  */
  template <class F>
  void once(std::string name, clock::duration delay, F&& factory,
            source_location site = source_location::current()) {
    add(std::move(name), detail::schedule_kind::once, delay, {}, std::forward<F>(factory), {},
        "crew::scheduler::once", site);
  }

  /** Runs `factory()` at the times the cron spec names (see `crew::cron_expression`).
      @throws crew::cron_error for a bad spec; std::invalid_argument as `every`.
  */
  template <class F>
  void cron(std::string name, std::string_view spec, F&& factory,
            source_location site = source_location::current()) {
    cron(std::move(name), spec, std::forward<F>(factory), job_options{}, site);
  }
  template <class F>
  void cron(std::string name, std::string_view spec, F&& factory, job_options options,
            source_location site = source_location::current()) {
    auto expr = detail::scheduler_parse(state(), spec);
    add(std::move(name), detail::schedule_kind::cron, {}, std::move(expr), std::forward<F>(factory),
        options, "crew::scheduler::cron", site);
  }
  /// The same with a parsed expression.
  template <class F>
  void cron(std::string name, cron_expression expr, F&& factory,
            source_location site = source_location::current()) {
    cron(std::move(name), std::move(expr), std::forward<F>(factory), job_options{}, site);
  }
  template <class F>
  void cron(std::string name, cron_expression expr, F&& factory, job_options options,
            source_location site = source_location::current()) {
    add(std::move(name), detail::schedule_kind::cron, {}, std::move(expr), std::forward<F>(factory),
        options, "crew::scheduler::cron", site);
  }

  /// Removes the entry `name`: no run starts any more, and its runs in flight are
  /// cancelled. Returns false if there is no such entry.
  bool cancel(std::string_view name) noexcept {
    return this->state_ && detail::scheduler_cancel(*this->state_, name);
  }

  /// Every entry, in name order.
  std::vector<scheduler_entry> entries() const {
    return this->state_ ? detail::scheduler_entries(*this->state_) : std::vector<scheduler_entry>{};
  }

  /// The entry `name`, if there is one.
  std::optional<scheduler_entry> entry(std::string_view name) const {
    return this->state_ ? detail::scheduler_find(*this->state_, name) : std::nullopt;
  }

  /** Stops: no run starts any more (adding an entry throws `shut_down`), and the
      operation completes once the runs in flight ended. The scheduler stays stopped.

      @par Completion signature
      `void(boost::system::error_code)`: success once the runs in flight ended, or
      `operation_aborted` if the operation was cancelled. Failed runs are not reported
      again: each went to `on_failure`, or the runtime's failure path, when it happened.

      @par Per-operation cancellation
      All types: cancels the runs in flight, and completes once they ended.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_stop(CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type)) {
    return net::async_initiate<CompletionToken, void(boost::system::error_code)>(
        detail::initiate_scheduler_stop<Executor>(this->ex_, state()), token);
  }

  /// `co_await s.stop()`: the awaitable form of async_stop; throws a
  /// `boost::system::system_error` for `operation_aborted`.
  template <class AwaitableExecutor = net::any_io_executor>
  net::awaitable<void, AwaitableExecutor> stop() {
    return async_stop(net::use_awaitable_t<AwaitableExecutor>{});
  }

 private:
  template <class F>
  void add(std::string name, detail::schedule_kind kind, clock::duration period,
           std::optional<cron_expression> expr, F&& factory, job_options options, char const* who,
           source_location site) {
    auto& core = state();
    detail::scheduler_add(
        core,
        detail::job_spec{std::move(name), kind, period, std::move(expr), options,
                         detail::task_factory::make(std::forward<F>(factory), who), site},
        who);
  }

  detail::scheduler_core& state() const;

  friend detail::io_access;
  static std::shared_ptr<detail::scheduler_core> make_state(Executor const& ex,
                                                            scheduler_options options) {
    return detail::make_scheduler_core(net::any_io_executor(ex), std::move(options));
  }
};

/// A scheduler on `any_io_executor`.
using scheduler = basic_scheduler<>;

}  // namespace crew

#include <crew/impl/scheduler.hpp>

#endif
