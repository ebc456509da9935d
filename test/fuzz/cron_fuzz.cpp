//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// libFuzzer target for crew::cron_expression: any input is a spec. parse() may throw
// crew::cron_error and nothing else; a spec that parses must answer next() from any
// instant, extremes included, quickly, with a time strictly after it; copies answer the
// same. Anything else (another exception, a sanitizer report, a hang) is a finding.
//
#include <crew/cron.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace {

using time_point = crew::cron_expression::time_point;
using namespace std::chrono_literals;

constexpr time_point at(std::int64_t seconds) {
  return time_point(
      std::chrono::duration_cast<time_point::duration>(std::chrono::seconds(seconds)));
}

// The extremes, the epoch, and the daylight-saving transitions the tests use.
time_point const instants[] = {
    time_point::min(),
    time_point::min() + 1ns,
    at(-1) + 999999999ns,  // 1969-12-31T23:59:59.999999999Z
    at(0),
    at(951782400),   // 2000-02-29T00:00:00Z
    at(1772953199),  // 2026-03-08T06:59:59Z, just before New York springs forward
    at(1774745999),  // 2026-03-29T00:59:59Z, just before London does
    at(1793511000),  // 2026-11-01T05:30:00Z, New York's first 01:30
    at(2140668000),  // 2037-11-01T06:00:00Z, the last transition in the data
    at(4107456000),  // 2100-02-28T00:00:00Z
    time_point::max() - 1h,
    time_point::max() - 1s,
    time_point::max(),
};

[[noreturn]] void finding() {
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const spec(reinterpret_cast<char const*>(data), size);
  std::optional<crew::cron_expression> e;
  try {
    // A zone with daylight saving time unless the spec names its own.
    e = crew::cron_expression::parse(spec, "America/New_York");
  } catch (crew::cron_error const& error) {
    if (error.spec() != spec || error.position() > spec.size() || error.field().empty() ||
        error.reason().empty())
      finding();
    return 0;
  }
  if (e->spec() != spec || e->time_zone().empty()) finding();
  auto const copy = *e;
  auto const every = e->every();
  for (time_point const from : instants) {
    std::optional<time_point> t = from;
    for (int i = 0; i < 3 && t; ++i) {
      auto const next = e->next(*t);
      if (next && !(*next > *t)) finding();  // strictly after
      if (copy.next(*t) != next) finding();
      if (every && next && *next - *t != *every) finding();
      t = next;
    }
  }
  return 0;
}
