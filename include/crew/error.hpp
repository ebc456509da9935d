//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_ERROR_HPP
#define CREW_ERROR_HPP

#include <crew/config.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/source_location.hpp>

#include <boost/stacktrace/stacktrace.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <cstdint>
#include <exception>
#include <iosfwd>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace crew {

/** Conditions crew itself reports, in the category `crew::error_category()`. */
enum class error {
  /// A timed wait ran out before the tasks finished; the tasks go on.
  timed_out = 1,
  /// A run group's signal actor caught a signal.
  signal_received,
  /// A circuit breaker is open and fails calls fast.
  circuit_open,
  /// A half-open circuit breaker already has its maximum of trial calls.
  too_many_requests,
  /// A retry gave up after its last attempt.
  retries_exhausted,
  /// The operation is already running.
  already_running,
  /// The owner was destroyed or shut down before the operation could finish.
  shut_down,
  /// A limit refused the request.
  limit_reached,
  /// A task that must run until shutdown returned on its own.
  task_stopped_unexpectedly,
};

/// The category of `crew::error`; its name is "crew".
boost::system::error_category const& error_category() noexcept;

/// Makes an error_code in crew's category, for ADL and `ec == crew::error::x`.
inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/** Thrown by a run group's signal actor when it catches a signal. */
class signal_received : public std::runtime_error {
 public:
  /// @param signo The signal number, such as `SIGTERM`.
  explicit signal_received(int signo);

  /// The signal that was caught.
  int signo() const noexcept { return signo_; }

  /// `crew::error::signal_received`, to test the cause by code.
  boost::system::error_code code() const noexcept {
    return make_error_code(error::signal_received);
  }

 private:
  int signo_;
};

/** The part of a task's life in which it failed. */
enum class task_stage {
  execute,     ///< the task's body
  initialize,  ///< a managed task's initialize()
  cleanup,     ///< a managed task's cleanup()
  handler,     ///< an on_failure handler that threw while handling another failure
};

/// "execute", "initialize", "cleanup" or "handler".
char const* to_string(task_stage s) noexcept;

/** One failed task: who it was, where it was spawned, what it threw and where.

    `trace` is the stack of the frame that *threw* when throw-site traces are on
    (the default); it is empty for an error_code a task returned, which never
    throws, and for exceptions made with `std::make_exception_ptr`. Frames are
    symbolised only when the trace is printed.
*/
struct task_failure {
  /// The task's process-wide id; ids start at 1.
  std::uint64_t id = 0;
  /// The name given at spawn, or empty.
  std::string name;
  /// Where the task was spawned.
  source_location spawn_site;
  /// The exception; never null. A returned error_code is a `boost::system::system_error`.
  std::exception_ptr exception;
  /// Where the exception was thrown (see above). Empty by default: a default-constructed
  /// boost::stacktrace would capture the stack of whoever builds the record.
  boost::stacktrace::stacktrace trace{0, 0};
  /// The stage that failed.
  task_stage stage = task_stage::execute;
  /// The position, counted from 0, of the item the task handled in its input: an
  /// `async_gather` item, a worker pool's submission, a pipeline item. Empty for a task
  /// that handles no item of a sequence.
  std::optional<std::size_t> index;

  /// The exception's `what()`, or a fixed text for exceptions not derived from std::exception.
  char const* what() const noexcept;

  /// The exception as an `E`, or null. Never rethrows.
  template <class E>
  E const* as() const noexcept {
    return detail::exception_cast<E>(exception);
  }

  /// Rethrows the exception.
  [[noreturn]] void rethrow() const { std::rethrow_exception(exception); }
};

/// One line: `task 'name' #id item N (stage) spawned at file:line: what`.
std::string to_string(task_failure const& f);

/// The line of `to_string` followed by the throw-site trace, if any.
std::ostream& operator<<(std::ostream& os, task_failure const& f);

/** Every failure of a group of tasks, in the order they were recorded.

    The counterpart of Go's `errors.Join` and Python's `ExceptionGroup`. Copies share
    the same failures. A group keeps a bounded number of failures between two waits
    (`task_group_options::keep_failures`); the ones past the bound are counted in
    `dropped()`.
*/
class task_errors : public std::exception {
 public:
  /// @throws std::invalid_argument if `failures` is empty.
  explicit task_errors(std::vector<task_failure> failures, std::size_t dropped = 0);

  /// Every failure kept, first recorded first.
  std::vector<task_failure> const& failures() const noexcept;

  /// How many more failures happened and were not kept.
  std::size_t dropped() const noexcept;

  /// The first failure recorded; for `cancel_on_first`, the one that cancelled the rest.
  task_failure const& first() const noexcept { return failures().front(); }

  std::size_t size() const noexcept { return failures().size(); }

  /// True if some failure, or a nested task_errors, holds an `E`.
  template <class E>
  bool contains() const noexcept {
    return find<E>() != nullptr;
  }

  /// The first exception that is an `E`, searching nested task_errors too; or null.
  template <class E>
  E const* find() const noexcept;

  /// Rethrows the first failure's exception.
  [[noreturn]] void rethrow_first() const { first().rethrow(); }

  /// A count, then every failure on its own line, then "... and N more" for the dropped.
  char const* what() const noexcept override;

 private:
  struct impl;
  std::shared_ptr<impl const> impl_;
};

template <class E>
E const* task_errors::find() const noexcept {
  for (auto const& f : failures()) {
    if (auto const* e = f.as<E>()) return e;
    if constexpr (!std::is_same_v<std::remove_cv_t<E>, task_errors>) {
      if (auto const* nested = f.as<task_errors>())
        if (auto const* e = nested->find<E>()) return e;
    }
  }
  return nullptr;
}

/** Turns throw-site traces on or off for the whole process, at run time.

    When on (the default, unless the environment sets `CREW_THROW_SITE_TRACES=0`),
    every `throw` records the frames of the throwing thread; a task_failure's `trace`
    then names the function that threw. Off, throwing costs what it costs without crew.
*/
void set_throw_site_traces(bool enabled) noexcept;

/// Whether throw-site traces are on.
bool throw_site_traces() noexcept;

/** The stack recorded when the exception in `e` was thrown.

    Empty if traces were off at the time, if `e` is null, or if the exception was
    never thrown (`std::make_exception_ptr`). Cheap: frames are symbolised on print.
*/
boost::stacktrace::stacktrace throw_site_trace(std::exception_ptr const& e);

}  // namespace crew

namespace boost::system {
template <>
struct is_error_code_enum<crew::error> : std::true_type {};
}  // namespace boost::system

#endif
