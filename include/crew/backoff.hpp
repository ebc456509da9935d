//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_BACKOFF_HPP
#define CREW_BACKOFF_HPP

#include <crew/config.hpp>

#include <chrono>
#include <variant>

namespace crew {

/** Delays that grow by `multiplier` after each consecutive failure (cenkalti/backoff).

    The n-th delay is `initial * multiplier^(n-1)`, capped at `max`, then spread by
    `jitter`: multiplied by a random factor in `[1 - jitter, 1 + jitter]`, and capped
    at `max` again. It never overflows: however large n grows, it stays at `max`.
*/
struct exponential_backoff {
  std::chrono::steady_clock::duration initial = std::chrono::milliseconds(100);
  double multiplier = 2.0;
  std::chrono::steady_clock::duration max = std::chrono::seconds(30);
  double jitter = 0.0;
};

/** The wait before the next attempt of a retry, or the next start of a loop's actor.

    Built from an `exponential_backoff`, or with `backoff::constant(d)` or
    `backoff::none()` (the default: no wait).
*/
class backoff {
 public:
  using duration = std::chrono::steady_clock::duration;

  /// No wait.
  backoff() noexcept = default;

  /// @throws std::invalid_argument naming the field and its value: a negative `initial`
  /// or `max`, a `multiplier` that is not a finite number of at least 1, or a `jitter`
  /// that is not a number within [0, 1].
  backoff(exponential_backoff e);  // NOLINT: implicit on purpose

  /// The same wait every time. @throws std::invalid_argument if `d` is negative.
  static backoff constant(duration d);

  /// No wait.
  static backoff none() noexcept { return {}; }

  /// The wait after the `n`-th consecutive failure; `n` starts at 1. Never negative;
  /// an exponential backoff's never exceeds its `max`. Jitter draws from a per-thread
  /// random engine.
  duration delay(unsigned n) const;

  /// Whether this is `none()`.
  bool is_none() const noexcept { return std::holds_alternative<std::monostate>(v_); }

 private:
  struct constant_t {
    duration d;
  };
  std::variant<std::monostate, constant_t, exponential_backoff> v_;
};

}  // namespace crew

#endif
