//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// crew::cron_expression::next, per call, against the naive reference: step minute by
// minute from `after`, convert each minute to local time with localtime_r (TZ set to the
// spec's zone) and test the fields, giving up after five years (robfig/cron's bound).
//
//   next/<case>/crew    one next() call
//   next/<case>/naive   one call of the reference loop, same instants, same answers
//   parse/<case>        one parse()
//
// Each call starts from the next of 64 instants spread over 2025 (times of day vary).
// After the runs it prints the naive/crew ratio of each case, measured in this run
// (CPU time per call).
// Keep --benchmark_min_time small for a smoke run: a naive call takes up to ~0.2 s.
//
#include <crew/cron.hpp>

#include <benchmark/benchmark.h>

#include <time.h>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace ch = std::chrono;
using time_point = crew::cron_expression::time_point;
using namespace std::chrono_literals;

struct bench_case {
  char const* name;
  char const* spec;
  char const* zone;  // crew's zone, and TZ for localtime_r
  bool (*match)(std::tm const&);
};

bench_case const cases[] = {
    {"every_5_minutes", "*/5 * * * *", "UTC", [](std::tm const& t) { return t.tm_min % 5 == 0; }},
    {"daily_midnight", "0 0 * * *", "UTC",
     [](std::tm const& t) { return t.tm_hour == 0 && t.tm_min == 0; }},
    {"leap_day", "0 0 29 2 *", "UTC",
     [](std::tm const& t) {
       return t.tm_mon == 1 && t.tm_mday == 29 && t.tm_hour == 0 && t.tm_min == 0;
     }},
    {"cron_tz_weekdays_9am", "CRON_TZ=America/New_York 0 9 * * MON-FRI", "America/New_York",
     [](std::tm const& t) {
       return t.tm_wday >= 1 && t.tm_wday <= 5 && t.tm_hour == 9 && t.tm_min == 0;
     }},
    {"never_feb_30", "0 0 30 2 *", "UTC",
     [](std::tm const& t) {
       return t.tm_mon == 1 && t.tm_mday == 30 && t.tm_hour == 0 && t.tm_min == 0;
     }},
};

/// 64 instants in 2025: every 5 days and 1237 s apart.
std::array<time_point, 64> const& afters() {
  static auto const all = [] {
    std::array<time_point, 64> a{};
    auto const base = time_point(ch::sys_days{ch::year{2025} / 1 / 1});
    for (std::size_t k = 0; k < a.size(); ++k)
      a[k] = base + ch::days{5 * k} + ch::seconds{1237 * k} + ch::milliseconds{k};
    return a;
  }();
  return all;
}

void use_zone(char const* zone) {
  ::setenv("TZ", zone, 1);
  ::tzset();
}

/// The reference: minute by minute, in local time, at most five years.
std::optional<time_point> naive_next(time_point after, bool (*match)(std::tm const&)) {
  constexpr long cap = 5L * 366 * 24 * 60;
  auto t = ch::floor<ch::minutes>(after) + 1min;
  for (long i = 0; i < cap; ++i, t += 1min) {
    std::time_t const tt = ch::system_clock::to_time_t(t);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    if (match(tm)) return time_point(t);
  }
  return std::nullopt;
}

void next_crew(benchmark::State& state, bench_case const& c) {
  auto const e = crew::cron_expression::parse(c.spec, c.zone);
  auto const& a = afters();
  std::size_t k = 0;
  for (auto _ : state) {
    auto r = e.next(a[k++ & 63]);
    benchmark::DoNotOptimize(r);
  }
}

void next_naive(benchmark::State& state, bench_case const& c) {
  use_zone(c.zone);
  auto const e = crew::cron_expression::parse(c.spec, c.zone);
  auto const& a = afters();
  if (naive_next(a[0], c.match) != e.next(a[0])) {
    state.SkipWithError("the reference and crew disagree");
    return;
  }
  std::size_t k = 0;
  for (auto _ : state) {
    auto r = naive_next(a[k++ & 63], c.match);
    benchmark::DoNotOptimize(r);
  }
}

void parse(benchmark::State& state, char const* spec) {
  for (auto _ : state) {
    auto e = crew::cron_expression::parse(spec, "UTC");
    benchmark::DoNotOptimize(e);
  }
}

/// The console reporter, remembering each run's CPU time per iteration for the ratios
/// (CPU time: on a shared machine the wall time of both sides grows with the load).
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(std::vector<Run> const& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (auto const& r : runs)
      if (!r.error_occurred && r.iterations > 0)
        ns_[r.benchmark_name()] = r.cpu_accumulated_time * 1e9 / static_cast<double>(r.iterations);
  }

  void print_ratios() const {
    std::printf("\nnaive/crew CPU time per next() call, this run:\n");
    for (auto const& c : cases) {
      std::string const base = std::string("next/") + c.name;
      auto const crew = ns_.find(base + "/crew"), naive = ns_.find(base + "/naive");
      if (crew == ns_.end() || naive == ns_.end()) continue;
      std::printf("  %-24s crew %10.0f ns   naive %14.0f ns   ratio %12.1fx\n", c.name,
                  crew->second, naive->second, naive->second / crew->second);
    }
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace

int main(int argc, char** argv) {
  for (auto const& c : cases) {
    benchmark::RegisterBenchmark((std::string("next/") + c.name + "/crew").c_str(), next_crew, c);
    benchmark::RegisterBenchmark((std::string("next/") + c.name + "/naive").c_str(), next_naive, c)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("parse/five_fields", parse, "*/5 9-17 * * MON-FRI");
  benchmark::RegisterBenchmark("parse/cron_tz", parse, "CRON_TZ=America/New_York 0 9 * * MON-FRI");
  benchmark::RegisterBenchmark("parse/every", parse, "@every 1h30m");

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
