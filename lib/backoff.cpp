//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/backoff.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace crew {

namespace {

std::string ticks(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration<double, std::milli>(d).count()) + " ms";
}

}  // namespace

backoff::backoff(exponential_backoff e) {
  if (e.initial < duration::zero())
    throw std::invalid_argument("crew::exponential_backoff: initial is negative (" +
                                ticks(e.initial) + ")");
  if (e.max < duration::zero())
    throw std::invalid_argument("crew::exponential_backoff: max is negative (" + ticks(e.max) +
                                ")");
  if (!(e.multiplier >= 1.0))
    throw std::invalid_argument("crew::exponential_backoff: multiplier must be at least 1 (got " +
                                std::to_string(e.multiplier) + ")");
  if (!(e.jitter >= 0.0 && e.jitter <= 1.0))
    throw std::invalid_argument("crew::exponential_backoff: jitter must be within [0, 1] (got " +
                                std::to_string(e.jitter) + ")");
  v_ = e;
}

backoff backoff::constant(duration d) {
  if (d < duration::zero())
    throw std::invalid_argument("crew::backoff::constant: d is negative (" + ticks(d) + ")");
  backoff b;
  b.v_ = constant_t{d};
  return b;
}

backoff::duration backoff::delay(unsigned n) const {
  if (auto const* c = std::get_if<constant_t>(&v_)) return c->d;
  auto const* e = std::get_if<exponential_backoff>(&v_);
  if (!e) return duration::zero();
  // In double, so that large n saturates at max instead of overflowing.
  double d = static_cast<double>(e->initial.count()) *
             std::pow(e->multiplier, static_cast<double>(n == 0 ? 0 : n - 1));
  d = std::min(d, static_cast<double>(e->max.count()));
  if (e->jitter > 0.0) {
    thread_local std::minstd_rand engine{std::random_device{}()};
    std::uniform_real_distribution<double> spread(1.0 - e->jitter, 1.0 + e->jitter);
    d *= spread(engine);
  }
  return duration(static_cast<duration::rep>(d));
}

}  // namespace crew
