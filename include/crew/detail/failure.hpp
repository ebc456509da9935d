//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The failure path: one function builds every task_failure, one reports the failures
// nobody will see otherwise, in one format, through one replaceable sink (stderr by
// default; the runtime's error handler plugs in here). See docs/internals.md.
//
#ifndef CREW_DETAIL_FAILURE_HPP
#define CREW_DETAIL_FAILURE_HPP

#include <crew/error.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace crew::detail {

class task_node;

/// The record of a failure of task `n`: its identity, `e` (never null) and the trace of
/// where `e` was thrown.
task_failure make_failure(task_node const& n, std::exception_ptr e,
                          task_stage stage = task_stage::execute);

/// The same for a failure that happened outside the task, under the identity it had
/// (an interrupt callback, a handler, a grace period running out).
task_failure make_failure(std::uint64_t id, std::string name, source_location site,
                          std::exception_ptr e, task_stage stage = task_stage::execute);

/// A failure with the identity of another: a handler's failure while handling `f`.
task_failure make_failure(task_failure const& f, std::exception_ptr e, task_stage stage);

/** Failures that no wait, no handler and no result will show: what the sink gets. */
struct failure_report {
  /// "task group", "run group", "loop", "supervisor"...
  char const* owner_kind = "";
  /// The owner's name; may be empty.
  std::string owner_name;
  /// What happened, as the report's first line says it: "ended with failures nobody
  /// waited for".
  char const* event = "";
  std::vector<task_failure> failures;
  /// Failures counted but not kept (a retention bound).
  std::size_t dropped = 0;
};

/// Hands `report` to the sink; never throws. A report without failures is ignored.
void report_failures(failure_report report) noexcept;

/// One failure, for the owners that report as failures happen.
void report_failure(char const* owner_kind, std::string const& owner_name, char const* event,
                    task_failure failure) noexcept;

/// Where reports go. The default writes `write_report` to stderr.
using failure_sink = std::function<void(failure_report const&)>;

/// Replaces the sink (null restores the default); returns the previous one. Process-wide,
/// thread-safe; a sink that throws is ignored.
failure_sink set_failure_sink(failure_sink sink);

/// crew's one format: `crew: <kind> '<name>' <event>: <count>`, then every failure as
/// `operator<<(task_failure)` prints it (a line and its trace), indented; then
/// `  ... and N more` for dropped ones.
void write_report(std::ostream& os, failure_report const& report);

/** Failures kept with a retention bound: past it a failure is counted, not stored. */
class failure_list {
 public:
  explicit failure_list(std::size_t bound) noexcept : bound_(bound) {}

  /// Keeps `f`, or counts it when the bound is reached; true if it was kept.
  bool add(task_failure&& f);

  bool empty() const noexcept { return kept_.empty() && dropped_ == 0; }
  std::vector<task_failure> const& kept() const noexcept { return kept_; }
  std::size_t dropped() const noexcept { return dropped_; }

  /// The failures as a `task_errors` (null when empty), leaving this list empty.
  std::exception_ptr take_errors();

  /// The failures as a report, leaving this list empty.
  failure_report take_report(char const* owner_kind, std::string owner_name, char const* event);

 private:
  std::vector<task_failure> kept_;
  std::size_t dropped_ = 0;
  std::size_t bound_;
};

}  // namespace crew::detail

#endif
