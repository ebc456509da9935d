//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_CRON_HPP
#define CREW_CRON_HPP

// Deliberately light: no Asio, no date/tz. The time zone lives behind a pointer.
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace crew {

namespace detail {
struct cron_program;
struct cron_error_data;
}  // namespace detail

/** A bad cron spec: names the field, the 0-based character position of the offending
    token in the spec, and why.

    A `std::invalid_argument`, so generic "bad input" handlers catch it. `what()` is one
    line naming all of it, for instance

        crew::cron_expression: bad spec "0 0 32 * *": day of month at position 4: 32 is above the
   maximum 31

    (control characters in the spec are escaped, and a very long spec is cut short in
    `what()`; `spec()` is the whole spec as given).
*/
class cron_error : public std::invalid_argument {
 public:
  cron_error(std::string spec, std::string field, std::size_t position, std::string reason);

  /// The spec as given to `cron_expression::parse`.
  std::string const& spec() const noexcept;

  /// "second", "minute", "hour", "day of month", "month", "day of week", "descriptor",
  /// "@every", "CRON_TZ" or "spec" (the spec as a whole: empty, wrong field count).
  std::string const& field() const noexcept;

  /// The 0-based character (byte) offset in `spec()` of the offending token.
  std::size_t position() const noexcept;

  /// Why, e.g. "32 is above the maximum 31".
  std::string const& reason() const noexcept;

 private:
  std::shared_ptr<detail::cron_error_data const> data_;  // copying never throws
};

/** A parsed cron spec: when its job runs.

    5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first;
    `* , - / ?`, month and weekday names, `@yearly @annually @monthly @weekly @daily
    @midnight @hourly`, `@every <duration>`, and a `CRON_TZ=Area/City ` (or `TZ=`)
    prefix. See docs/cron.md for the exact rules (day-of-month/day-of-week OR rule,
    daylight-saving gaps and repeats, specs that never match).

    Immutable: cheap to copy (one shared pointer) and safe to use from several threads
    at once.
*/
class cron_expression {
 public:
  using time_point = std::chrono::system_clock::time_point;

  /// Parses `spec`. Without a CRON_TZ= prefix the schedule is in the local time zone
  /// (TZ, else /etc/localtime), as cron(8) and robfig/cron. @throws cron_error
  static cron_expression parse(std::string_view spec);

  /// The same, with `time_zone` (an IANA name such as "UTC" or "Europe/London") as the
  /// zone when the spec has no CRON_TZ= prefix. @throws cron_error (field "CRON_TZ")
  /// for an unknown zone, even when the spec names its own.
  static cron_expression parse(std::string_view spec, std::string_view time_zone);

  /// The first activation strictly after `after`; empty when the spec never matches
  /// again (an impossible date such as February 30, or no activation before
  /// `time_point::max()`).
  std::optional<time_point> next(time_point after) const;

  /// The spec as given.
  std::string const& spec() const noexcept;

  /// The name of the zone the schedule is computed in ("UTC", "Europe/London").
  std::string const& time_zone() const noexcept;

  /// For `@every <d>`: the period; otherwise empty.
  std::optional<std::chrono::system_clock::duration> every() const noexcept;

 private:
  explicit cron_expression(std::shared_ptr<detail::cron_program const> p) noexcept;
  std::shared_ptr<detail::cron_program const> p_;
};

}  // namespace crew

#endif
