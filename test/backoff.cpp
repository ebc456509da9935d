//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE crew_backoff
#include <crew/backoff.hpp>

#include <boost/test/unit_test.hpp>

#include "test_util.hpp"

#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using duration = crew::backoff::duration;

namespace {

constexpr double infinity = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr auto years_200 = std::chrono::duration_cast<duration>(std::chrono::years(200));

using crew_test::invalid_argument_of;

std::string refusal(crew::exponential_backoff e) {
  return invalid_argument_of([&] { (void)crew::backoff(e); });
}

}  // namespace

// ---------------------------------------------------------------- overflow

BOOST_AUTO_TEST_CASE(an_uncapped_exponential_delay_saturates_at_duration_max) {
  crew::backoff b = crew::exponential_backoff{1s, 2.0, duration::max(), 0.0};
  BOOST_TEST((b.delay(1) == 1s));
  BOOST_TEST((b.delay(34) == 1s * (1ll << 33)));  // still exact: 272 years
  BOOST_TEST((b.delay(35) == duration::max()));
  BOOST_TEST((b.delay(40) == duration::max()));  // used to be duration::min()
  BOOST_TEST((b.delay(64) == duration::max()));
  BOOST_TEST((b.delay(100000) == duration::max()));
  BOOST_TEST((b.delay(std::numeric_limits<unsigned>::max()) == duration::max()));
}

BOOST_AUTO_TEST_CASE(a_delay_capped_at_duration_max_is_duration_max) {
  // Converting duration::max() to double rounds it up to 2^63, out of range.
  crew::backoff flat = crew::exponential_backoff{duration::max(), 1.0, duration::max(), 0.0};
  BOOST_TEST((flat.delay(1) == duration::max()));
  BOOST_TEST((flat.delay(5) == duration::max()));
  crew::backoff steep = crew::exponential_backoff{1ns, 1e300, duration::max(), 0.0};
  BOOST_TEST((steep.delay(1) == 1ns));
  BOOST_TEST((steep.delay(2) == duration::max()));
  BOOST_TEST((steep.delay(3) == duration::max()));  // 1e600 overflows a double
}

BOOST_AUTO_TEST_CASE(delays_never_decrease_and_stay_within_zero_and_max) {
  for (auto const e : {crew::exponential_backoff{1s, 2.0, duration::max(), 0.0},
                       crew::exponential_backoff{1ns, 1.5, years_200, 0.0},
                       crew::exponential_backoff{100ms, 2.0, 30s, 0.0},
                       crew::exponential_backoff{1h, 1e10, duration::max() - 1ns, 0.0},
                       crew::exponential_backoff{0ns, 1e300, duration::max(), 0.0}}) {
    crew::backoff const b = e;
    duration previous = duration::zero();
    for (unsigned n = 1; n <= 200; ++n) {
      auto const d = b.delay(n);
      BOOST_TEST_INFO("n = " << n << ", initial = " << e.initial.count()
                             << " ns, multiplier = " << e.multiplier);
      BOOST_TEST((d >= previous && d <= e.max));
      previous = d;
    }
  }
}

BOOST_AUTO_TEST_CASE(a_zero_initial_delay_stays_zero_under_any_multiplier) {
  // 0 * inf, once the power overflowed, used to give NaN and then a negative delay.
  crew::backoff b = crew::exponential_backoff{0ns, std::numeric_limits<double>::max(), 1h, 0.0};
  for (unsigned n : {1u, 2u, 3u, 1000u}) BOOST_TEST((b.delay(n) == 0ns));
}

BOOST_AUTO_TEST_CASE(the_first_delay_is_initial_capped_at_max) {
  crew::backoff b = crew::exponential_backoff{10s, 2.0, 1s, 0.0};
  BOOST_TEST((b.delay(0) == 1s));
  BOOST_TEST((b.delay(1) == 1s));
  crew::backoff c = crew::exponential_backoff{250ms, 3.0, 1h, 0.0};
  BOOST_TEST((c.delay(0) == 250ms));  // as the first
  BOOST_TEST((c.delay(1) == 250ms));
  BOOST_TEST((c.delay(2) == 750ms));
}

// ---------------------------------------------------------------- jitter

BOOST_AUTO_TEST_CASE(full_jitter_on_a_200_year_cap_stays_within_zero_and_the_cap) {
  crew::backoff b = crew::exponential_backoff{years_200, 2.0, years_200, 1.0};
  int below = 0;
  for (int i = 0; i < 2000; ++i) {
    auto const d = b.delay(1 + static_cast<unsigned>(i % 3));
    BOOST_TEST_REQUIRE((d >= 0ns && d <= years_200));  // used to go negative
    if (d < years_200 / 2) ++below;
  }
  BOOST_TEST(below > 0);  // it does spread
  crew::backoff widest = crew::exponential_backoff{duration::max(), 1.0, duration::max(), 1.0};
  for (int i = 0; i < 2000; ++i) {
    auto const d = widest.delay(7);
    BOOST_TEST_REQUIRE((d >= 0ns && d <= duration::max()));
  }
}

BOOST_AUTO_TEST_CASE(jitter_spreads_within_its_bounds_and_never_past_max) {
  crew::backoff b = crew::exponential_backoff{1s, 2.0, 4s, 0.5};
  bool spread_at_the_cap = false;
  for (int i = 0; i < 1000; ++i) {
    for (unsigned n = 1; n <= 5; ++n) {
      duration const base = std::min<duration>(1s * (1 << (n - 1)), 4s);
      auto const d = b.delay(n);
      BOOST_TEST_REQUIRE((d >= base / 2 && d <= std::min<duration>(base * 3 / 2, 4s)));
      if (n == 5 && d < 4s) spread_at_the_cap = true;
    }
  }
  BOOST_TEST(spread_at_the_cap);
  crew::backoff none = crew::exponential_backoff{1s, 2.0, 4s, 0.0};
  for (int i = 0; i < 100; ++i) BOOST_TEST((none.delay(2) == 2s));
}

// ---------------------------------------------------------------- constant

BOOST_AUTO_TEST_CASE(constant_delays_including_duration_max) {
  auto const forever = crew::backoff::constant(duration::max());
  BOOST_TEST(!forever.is_none());
  for (unsigned n : {0u, 1u, 2u, 1000u, std::numeric_limits<unsigned>::max()})
    BOOST_TEST((forever.delay(n) == duration::max()));
  auto const zero = crew::backoff::constant(0s);
  BOOST_TEST((zero.delay(3) == 0s));
  BOOST_TEST((crew::backoff::none().delay(std::numeric_limits<unsigned>::max()) == 0s));
}

// ---------------------------------------------------------------- bad input

BOOST_AUTO_TEST_CASE(non_finite_fields_are_refused_naming_the_field_and_the_value) {
  // An infinite multiplier used to pass, and then delays became NaN and negative.
  BOOST_TEST(refusal({1s, infinity, 30s, 0.0}) ==
             "crew::exponential_backoff: multiplier must be a finite number of at least 1 "
             "(got inf)");
  BOOST_TEST(refusal({0s, infinity, 30s, 0.0}) ==
             "crew::exponential_backoff: multiplier must be a finite number of at least 1 "
             "(got inf)");
  BOOST_TEST(refusal({1s, -infinity, 30s, 0.0}) ==
             "crew::exponential_backoff: multiplier must be a finite number of at least 1 "
             "(got -inf)");
  BOOST_TEST(refusal({1s, not_a_number, 30s, 0.0}) ==
             "crew::exponential_backoff: multiplier must be a finite number of at least 1 "
             "(got nan)");
  BOOST_TEST(refusal({1s, 2.0, 30s, not_a_number}) ==
             "crew::exponential_backoff: jitter must be a number within [0, 1] (got nan)");
  BOOST_TEST(refusal({1s, 2.0, 30s, infinity}) ==
             "crew::exponential_backoff: jitter must be a number within [0, 1] (got inf)");
}

BOOST_AUTO_TEST_CASE(out_of_range_fields_are_refused_naming_the_field_and_the_value) {
  BOOST_TEST(refusal({1s, 0.5, 30s, 0.0}) ==
             "crew::exponential_backoff: multiplier must be a finite number of at least 1 "
             "(got 0.5)");
  BOOST_TEST(refusal({1s, 0.9999999, 30s, 0.0}) ==
             "crew::exponential_backoff: multiplier must be a finite number of at least 1 "
             "(got 0.9999999)");
  BOOST_TEST(refusal({1s, 2.0, 30s, 1.5}) ==
             "crew::exponential_backoff: jitter must be a number within [0, 1] (got 1.5)");
  BOOST_TEST(refusal({1s, 2.0, 30s, -0.1}) ==
             "crew::exponential_backoff: jitter must be a number within [0, 1] (got -0.1)");
  BOOST_TEST(refusal({-1ms, 2.0, 30s, 0.0}) ==
             "crew::exponential_backoff: initial is negative (-1 ms)");
  BOOST_TEST(refusal({1s, 2.0, -1500ms, 0.0}) ==
             "crew::exponential_backoff: max is negative (-1.5 s)");
  BOOST_TEST(invalid_argument_of([] { crew::backoff::constant(-1ns); }) ==
             "crew::backoff::constant: d is negative (-1 ns)");
  BOOST_TEST(invalid_argument_of([] { crew::backoff::constant(duration::min()); }) ==
             "crew::backoff::constant: d is negative (duration::min())");
  // The edges are accepted.
  BOOST_TEST(refusal({0s, 1.0, 0s, 0.0}) == "(no invalid_argument thrown)");
  BOOST_TEST(refusal({duration::max(), std::numeric_limits<double>::max(), duration::max(), 1.0}) ==
             "(no invalid_argument thrown)");
}
