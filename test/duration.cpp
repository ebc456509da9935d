//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE crew_duration
#include <crew/detail/duration.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>

using namespace std::chrono_literals;
using crew::detail::format_duration;
using crew::detail::saturating_add;
using ns = std::chrono::nanoseconds;

BOOST_AUTO_TEST_CASE(format_duration_uses_the_largest_unit_of_at_least_one) {
  BOOST_TEST(format_duration(0s) == "0 s");
  BOOST_TEST(format_duration(1ns) == "1 ns");
  BOOST_TEST(format_duration(999ns) == "999 ns");
  BOOST_TEST(format_duration(1us) == "1 us");
  BOOST_TEST(format_duration(250us) == "250 us");
  BOOST_TEST(format_duration(100ms) == "100 ms");
  BOOST_TEST(format_duration(1500ms) == "1.5 s");
  BOOST_TEST(format_duration(1s) == "1 s");
  BOOST_TEST(format_duration(59s) == "59 s");
  BOOST_TEST(format_duration(60s) == "1 min");
  BOOST_TEST(format_duration(90s) == "1.5 min");
  BOOST_TEST(format_duration(2h) == "2 h");
  BOOST_TEST(format_duration(100000h) == "100000 h");
}

BOOST_AUTO_TEST_CASE(format_duration_keeps_up_to_three_decimals_without_trailing_zeros) {
  BOOST_TEST(format_duration(1010ms) == "1.01 s");
  BOOST_TEST(format_duration(1001ms) == "1.001 s");
  BOOST_TEST(format_duration(1234567ns) == "1.235 ms");  // rounded half away from zero
  BOOST_TEST(format_duration(1234499ns) == "1.234 ms");
  BOOST_TEST(format_duration(1000400ns) == "1 ms");  // rounds to no decimals at all
  BOOST_TEST(format_duration(1999600ns) == "2 ms");  // carries into the whole part
  BOOST_TEST(format_duration(-1999600ns) == "-2 ms");
  BOOST_TEST(format_duration(1ns + 1s) == "1 s");
  BOOST_TEST(format_duration(3h + 30min) == "3.5 h");
}

BOOST_AUTO_TEST_CASE(format_duration_of_negative_and_extreme_values) {
  BOOST_TEST(format_duration(-1ns) == "-1 ns");
  BOOST_TEST(format_duration(-100ms) == "-100 ms");
  BOOST_TEST(format_duration(-1500ms) == "-1.5 s");
  BOOST_TEST(format_duration(ns::max()) == "duration::max()");
  BOOST_TEST(format_duration(ns::min()) == "duration::min()");
  BOOST_TEST(format_duration(ns::max() - 1ns) == "2562047.788 h");
  BOOST_TEST(format_duration(ns::min() + 1ns) == "-2562047.788 h");
  // Coarser durations convert to nanoseconds exactly.
  BOOST_TEST(format_duration(std::chrono::seconds(-3)) == "-3 s");
}

BOOST_AUTO_TEST_CASE(saturating_add_of_durations_clamps_at_both_ends) {
  BOOST_TEST((saturating_add(1s, 2s) == 3s));
  BOOST_TEST((saturating_add(ns(5), ns(-7)) == ns(-2)));
  BOOST_TEST((saturating_add(ns::max(), ns(1)) == ns::max()));
  BOOST_TEST((saturating_add(ns::max() - 1ns, ns::max()) == ns::max()));
  BOOST_TEST((saturating_add(ns(1), ns::max()) == ns::max()));
  BOOST_TEST((saturating_add(ns(0), ns::max()) == ns::max()));
  BOOST_TEST((saturating_add(ns::max(), ns::min()) == ns(-1)));  // in range: exact
  BOOST_TEST((saturating_add(ns::min(), ns(-1)) == ns::min()));
  BOOST_TEST((saturating_add(ns(-1), ns::min()) == ns::min()));
  BOOST_TEST((saturating_add(ns::min(), ns::min()) == ns::min()));
  BOOST_TEST((saturating_add(ns::min(), ns::max()) == ns(-1)));
  static_assert(saturating_add(ns::max(), ns::max()) == ns::max());
}

BOOST_AUTO_TEST_CASE(saturating_add_to_a_time_point_clamps_at_both_ends) {
  using tp = std::chrono::steady_clock::time_point;
  tp const t(1h);
  BOOST_TEST((saturating_add(t, ns(1s)) == tp(1h + 1s)));
  BOOST_TEST((saturating_add(t, ns(-2h)) == tp(-1h)));
  BOOST_TEST((saturating_add(t, ns::max()) == tp::max()));
  BOOST_TEST((saturating_add(t, ns::max() - 1ns) == tp::max()));
  BOOST_TEST((saturating_add(tp::max(), ns::max()) == tp::max()));
  BOOST_TEST((saturating_add(tp::max(), ns(-1)) == tp::max() - ns(1)));
  BOOST_TEST((saturating_add(t, ns::min()) == tp::min() + ns(1h)));  // in range: exact
  BOOST_TEST((saturating_add(tp(-1h), ns::min()) == tp::min()));
  BOOST_TEST((saturating_add(tp::min(), ns::min()) == tp::min()));
  using sys = std::chrono::sys_time<std::chrono::seconds>;
  BOOST_TEST((saturating_add(sys::max(), std::chrono::seconds(1)) == sys::max()));
}
