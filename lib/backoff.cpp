//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/backoff.hpp>
#include <crew/detail/duration.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace crew {

namespace {

/// The shortest text that reads back as `x`: "2.5", "inf", "nan".
std::string number(double x) {
  char buffer[32];
  auto const r = std::to_chars(buffer, buffer + sizeof buffer, x);
  return std::string(buffer, r.ptr);
}

[[noreturn]] void refuse(std::string const& what) {
  throw std::invalid_argument("crew::exponential_backoff: " + what);
}

}  // namespace

backoff::backoff(exponential_backoff e) {
  using detail::format_duration;
  if (e.initial < duration::zero())
    refuse("initial is negative (" + format_duration(e.initial) + ")");
  if (e.max < duration::zero()) refuse("max is negative (" + format_duration(e.max) + ")");
  if (!(std::isfinite(e.multiplier) && e.multiplier >= 1.0))
    refuse("multiplier must be a finite number of at least 1 (got " + number(e.multiplier) + ")");
  if (!(e.jitter >= 0.0 && e.jitter <= 1.0))
    refuse("jitter must be a number within [0, 1] (got " + number(e.jitter) + ")");
  v_ = e;
}

backoff backoff::constant(duration d) {
  if (d < duration::zero())
    throw std::invalid_argument("crew::backoff::constant: d is negative (" +
                                detail::format_duration(d) + ")");
  backoff b;
  b.v_ = constant_t{d};
  return b;
}

backoff::duration backoff::delay(unsigned n) const {
  if (auto const* c = std::get_if<constant_t>(&v_)) return c->d;
  auto const* e = std::get_if<exponential_backoff>(&v_);
  if (!e || e->initial == duration::zero()) return duration::zero();
  // In long double, where initial * multiplier^(n-1) may reach infinity but never
  // wraps; the result is compared with the cap before it becomes an integer again.
  auto const cap = static_cast<long double>(e->max.count());
  long double d = static_cast<long double>(e->initial.count()) *
                  std::pow(static_cast<long double>(e->multiplier), n == 0 ? 0u : n - 1);
  d = std::min(d, cap);
  if (e->jitter > 0.0) {
    thread_local std::minstd_rand engine{std::random_device{}()};
    std::uniform_real_distribution<double> spread(1.0 - e->jitter, 1.0 + e->jitter);
    d *= spread(engine);
  }
  if (!(d < cap)) return e->max;
  if (!(d > 0)) return duration::zero();
  return duration(static_cast<duration::rep>(d));
}

}  // namespace crew
