//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_DURATION_HPP
#define CREW_DETAIL_DURATION_HPP

#include <chrono>
#include <string>

namespace crew::detail {

/// `d` as a person reads it, the one format every crew message uses:
/// "0 s", "1.5 s", "100 ms", "250 us", "1 ns", "2 h", "1.5 min", "-1 ns", "-100 ms".
/// The largest unit (h, min, s, ms, us, ns) in which |d| >= 1, with up to 3 decimals
/// (rounded half away from zero), trailing zeros trimmed. duration::max() prints
/// "duration::max()", min() "duration::min()".
std::string format_duration(std::chrono::nanoseconds d);

/// a + b clamped to [Duration::min(), Duration::max()].
template <class Duration>
constexpr Duration saturating_add(Duration a, Duration b) noexcept {
  if (b > Duration::zero() && a > Duration::max() - b) return Duration::max();
  if (b < Duration::zero() && a < Duration::min() - b) return Duration::min();
  return a + b;
}

/// t + d clamped to [time_point::min(), time_point::max()] instead of overflowing (any
/// sign of d).
template <class Clock, class Duration>
constexpr std::chrono::time_point<Clock, Duration> saturating_add(
    std::chrono::time_point<Clock, Duration> t, Duration d) noexcept {
  return std::chrono::time_point<Clock, Duration>(detail::saturating_add(t.time_since_epoch(), d));
}

}  // namespace crew::detail

#endif
