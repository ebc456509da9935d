//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/duration.hpp>

#include <cstdint>
#include <string>

namespace crew::detail {

std::string format_duration(std::chrono::nanoseconds d) {
  using std::chrono::nanoseconds;
  if (d == nanoseconds::max()) return "duration::max()";
  if (d == nanoseconds::min()) return "duration::min()";
  if (d == nanoseconds::zero()) return "0 s";
  struct unit {
    std::int64_t ns;
    char const* suffix;
  };
  static constexpr unit units[] = {
      {3'600'000'000'000, "h"}, {60'000'000'000, "min"}, {1'000'000'000, "s"},
      {1'000'000, "ms"},        {1'000, "us"},           {1, "ns"}};
  bool const negative = d < nanoseconds::zero();
  auto const magnitude = static_cast<std::uint64_t>(negative ? -d.count() : d.count());
  auto const* u = units;
  while (magnitude < static_cast<std::uint64_t>(u->ns)) ++u;
  auto const per = static_cast<std::uint64_t>(u->ns);
  auto whole = magnitude / per;
  // Thousandths of the unit, rounded half away from zero; fits: per <= 3.6e12.
  auto thousandths = (magnitude % per * 1000 + per / 2) / per;
  if (thousandths == 1000) {
    ++whole;
    thousandths = 0;
  }
  std::string s = negative ? "-" : "";
  s += std::to_string(whole);
  if (thousandths != 0) {
    std::string decimals = std::to_string(thousandths);
    decimals.insert(0, 3 - decimals.size(), '0');
    decimals.erase(decimals.find_last_not_of('0') + 1);
    s += '.' + decimals;
  }
  s += ' ';
  s += u->suffix;
  return s;
}

}  // namespace crew::detail
