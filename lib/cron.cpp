//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// crew::cron_expression: the parser, the calendar search and the time zones.
//
// A cron spec is compiled into bit sets, one per field. next() searches in local
// calendar time, field by field (month, day, hour, minute, second: each step jumps to
// the next set bit, never second by second), and maps the local time it finds onto the
// zone's timeline one *segment* at a time: a segment is a span of instants with one
// UTC offset (date/tz's sys_info). Local times that fall between two segments (a
// spring-forward gap) have no instant and are skipped; local times that two segments
// share (a fall-back repeat) run at their first instant, and again at the second only
// for specs with a wildcard in a time field (cron(8)'s rule).
//
#include <crew/cron.hpp>

#include <date/tz.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <utility>

namespace crew {

namespace detail {

struct cron_error_data {
  std::string spec;
  std::string field;
  std::size_t position;
  std::string reason;
};

namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;
constexpr i64 seconds_per_day = 86400;

// ---------------------------------------------------------------- calendar

// Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian, day 0 is
// 1970-01-01, exact for every year an i64 of days can hold.
constexpr i64 days_from_civil(i64 y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  i64 const era = (y >= 0 ? y : y - 399) / 400;
  auto const yoe = static_cast<unsigned>(y - era * 400);
  unsigned const doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<i64>(doe) - 719468;
}

struct civil {
  i64 year;
  unsigned month;
  unsigned day;
};

constexpr civil civil_from_days(i64 z) noexcept {
  z += 719468;
  i64 const era = (z >= 0 ? z : z - 146096) / 146097;
  auto const doe = static_cast<unsigned>(z - era * 146097);
  unsigned const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  i64 const y = static_cast<i64>(yoe) + era * 400;
  unsigned const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned const mp = (5 * doy + 2) / 153;
  unsigned const d = doy - (153 * mp + 2) / 5 + 1;
  unsigned const m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

/// 0 = Sunday.
constexpr unsigned weekday_from_days(i64 z) noexcept {
  return static_cast<unsigned>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

constexpr i64 floor_div(i64 a, i64 b) noexcept {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

constexpr bool is_leap(i64 y) noexcept {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

constexpr unsigned last_day(i64 y, unsigned m) noexcept {
  constexpr unsigned char days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/// The lowest set bit of `mask` at `from` or above; 64 when there is none.
constexpr unsigned next_bit(u64 mask, unsigned from) noexcept {
  if (from >= 64) return 64;
  u64 const m = mask & (~u64{0} << from);
  return m ? static_cast<unsigned>(std::countr_zero(m)) : 64;
}

constexpr u64 bits(unsigned lo, unsigned hi) noexcept {  // [lo, hi], hi < 64
  return (hi == 63 ? ~u64{0} : (u64{1} << (hi + 1)) - 1) & (~u64{0} << lo);
}

// The instants a system_clock::time_point can hold, in whole seconds, and the
// calendar years crew searches: no activation exists outside [year 1, year 9999].
constexpr i64 max_time_seconds =
    std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::time_point::max())
        .time_since_epoch()
        .count();
constexpr i64 first_second = days_from_civil(1, 1, 1) * seconds_per_day;
constexpr i64 last_year =
    std::min<i64>(9999, civil_from_days(floor_div(max_time_seconds, seconds_per_day)).year + 1);

}  // namespace

// ---------------------------------------------------------------- time zones

/// A span of instants [begin, end) (seconds since the epoch) with one UTC offset:
/// local = instant + offset.
struct segment {
  i64 begin;
  i64 end;
  i64 offset;
};

/** A POSIX TZ rule with daylight saving time, as the footer of a TZif file gives it
    (RFC 8536 3.3.1, which allows transition times from -167 to 167 hours):
    `std offset dst [offset],start[/time],end[/time]`, e.g. `EST5EDT,M3.2.0,M11.1.0` or
    `<-02>2<-01>,M3.5.0/-1,M10.5.0/0`.
*/
struct posix_rule {
  struct date_rule {
    char kind = 'M';  // 'J': day 1-365 without February 29; 'n': day 0-365; 'M': m.w.d
    int n = 0, month = 0, week = 0, weekday = 0;
    i64 time = 7200;  // seconds after the local midnight
  };
  i64 std_offset = 0;  // seconds east of UTC
  i64 dst_offset = 0;
  date_rule start, end;

  /// The rule `text` states, or empty: `text` without daylight saving time, or text
  /// this reader does not know.
  static std::optional<posix_rule> read(std::string_view text) {
    std::size_t i = 0;
    auto name = [&] {
      if (i < text.size() && text[i] == '<') {
        auto const close = text.find('>', i);
        if (close == std::string_view::npos || close - i < 4) return false;
        i = close + 1;
        return true;
      }
      std::size_t const start = i;
      while (i < text.size() &&
             ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
        ++i;
      return i - start >= 3;
    };
    auto number = [&](int max_digits, int& v) {
      std::size_t const start = i;
      v = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9' &&
             i - start < std::size_t(max_digits))
        v = v * 10 + (text[i++] - '0');
      return i > start;
    };
    auto hms = [&](i64& out, int max_hours) {  // [+-]hh[:mm[:ss]]
      bool negative = false;
      if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
      int h = 0, m = 0, sec = 0;
      if (!number(3, h) || h > max_hours) return false;
      if (i < text.size() && text[i] == ':') {
        ++i;
        if (!number(2, m) || m > 59) return false;
        if (i < text.size() && text[i] == ':') {
          ++i;
          if (!number(2, sec) || sec > 59) return false;
        }
      }
      out = (h * i64{3600} + m * 60 + sec) * (negative ? -1 : 1);
      return true;
    };
    auto date = [&](date_rule& r) {
      if (i < text.size() && text[i] == 'J') {
        ++i;
        r.kind = 'J';
        if (!number(3, r.n) || r.n < 1 || r.n > 365) return false;
      } else if (i < text.size() && text[i] == 'M') {
        ++i;
        r.kind = 'M';
        if (!number(2, r.month) || r.month < 1 || r.month > 12) return false;
        if (i == text.size() || text[i++] != '.') return false;
        if (!number(1, r.week) || r.week < 1 || r.week > 5) return false;
        if (i == text.size() || text[i++] != '.') return false;
        if (!number(1, r.weekday) || r.weekday > 6) return false;
      } else {
        r.kind = 'n';
        if (!number(3, r.n) || r.n > 365) return false;
      }
      if (i < text.size() && text[i] == '/') {
        ++i;
        if (!hms(r.time, 167)) return false;
      }
      return true;
    };
    posix_rule r;
    i64 west = 0;
    if (!name() || !hms(west, 24)) return std::nullopt;
    r.std_offset = -west;
    if (i == text.size() || !name()) return std::nullopt;  // no daylight saving time
    r.dst_offset = r.std_offset + 3600;
    if (i < text.size() && text[i] != ',') {
      if (!hms(west, 24)) return std::nullopt;
      r.dst_offset = -west;
    }
    if (i == text.size() || text[i++] != ',' || !date(r.start)) return std::nullopt;
    if (i == text.size() || text[i++] != ',' || !date(r.end)) return std::nullopt;
    if (i != text.size()) return std::nullopt;
    return r;
  }

  /// The local day (days since the epoch) on which `r` falls in year `y`.
  static i64 day_of(date_rule const& r, i64 y) noexcept {
    i64 const jan1 = days_from_civil(y, 1, 1);
    if (r.kind == 'J') return jan1 + r.n - 1 + (is_leap(y) && r.n >= 60);
    if (r.kind == 'n') return jan1 + r.n;
    auto const month = static_cast<unsigned>(r.month);
    i64 const first = days_from_civil(y, month, 1);
    i64 day =
        first + (r.weekday - static_cast<int>(weekday_from_days(first)) + 7) % 7 + (r.week - 1) * 7;
    if (day - first >= last_day(y, month)) day -= 7;  // week 5: the last such weekday
    return day;
  }

  /// The segment holding instant `t`: between the transitions around its year.
  segment at(i64 t) const noexcept {
    i64 const y = civil_from_days(floor_div(t, seconds_per_day)).year;
    struct transition {
      i64 at;
      i64 offset;
    };
    transition list[6];
    int n = 0;
    for (i64 k = y - 1; k <= y + 1; ++k) {
      // Daylight saving time starts at a local standard time and ends at a local
      // daylight time. At equal instants, the start comes last (all-year DST).
      list[n++] = {day_of(end, k) * seconds_per_day + end.time - dst_offset, std_offset};
      list[n++] = {day_of(start, k) * seconds_per_day + start.time - std_offset, dst_offset};
    }
    std::stable_sort(list, list + n,
                     [](transition const& a, transition const& b) { return a.at < b.at; });
    segment s{std::numeric_limits<i64>::min() / 4, std::numeric_limits<i64>::max() / 4, std_offset};
    for (int k = 0; k < n; ++k) {
      if (list[k].at <= t) {
        s.begin = list[k].at;
        s.offset = list[k].offset;
      } else {
        s.end = list[k].at;
        break;
      }
    }
    return s;
  }
};

/** A time zone: date/tz's (the system's tzdata), extended past the last transition the
    compiled data holds (2037 in Debian's "fat" files: date/tz would keep the last
    offset forever, standard time) by the rule in the file's POSIX TZ footer, which is
    what the data says holds from then on (as Go and Python's zoneinfo do). Null `tz`:
    UTC without a tz database.
*/
struct zone {
  date::time_zone const* tz = nullptr;
  std::optional<posix_rule> tail;
  i64 tail_from = std::numeric_limits<i64>::max();

  segment at(i64 t) const {
    if (!tz) return {std::numeric_limits<i64>::min() / 4, std::numeric_limits<i64>::max() / 4, 0};
    if (tail && t >= tail_from) {
      segment s = tail->at(t);
      s.begin = std::max(s.begin, tail_from);
      return s;
    }
    auto const i = tz->get_info(date::sys_seconds{std::chrono::seconds{t}});
    segment s{i.begin.time_since_epoch().count(), i.end.time_since_epoch().count(),
              i.offset.count()};
    s.end = std::min(s.end, tail_from);
    return s;
  }
};

namespace {

/// The POSIX TZ string at the end of a version 2+ TZif file ("EST5EDT,M3.2.0,M11.1.0"),
/// or empty.
std::string tzif_footer(std::string const& name) {
  if (name.empty() || name.find("..") != std::string::npos) return {};
  std::ifstream in("/usr/share/zoneinfo/" + name, std::ios::binary);
  if (!in) return {};
  std::string data;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    data.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (data.size() > (1u << 20)) return {};  // not a TZif file
  }
  if (data.size() < 6 || data.compare(0, 4, "TZif") != 0 || data[4] < '2') return {};
  if (data.back() != '\n') return {};
  auto const start = data.rfind('\n', data.size() - 2);
  if (start == std::string::npos) return {};
  return data.substr(start + 1, data.size() - start - 2);
}

/// Adds the POSIX rule past the last transition of `z.tz`, if the file has one with
/// daylight saving time and it agrees with the data where they meet.
void extend(zone& z) {
  try {
    auto const rule = posix_rule::read(tzif_footer(std::string(z.tz->name())));
    if (!rule) return;  // none, or no daylight saving time: the last offset holds
    // The last segment of the compiled data: it begins at the last transition.
    auto const last = z.tz->get_info(
        date::sys_seconds{std::chrono::seconds{days_from_civil(9000, 1, 1) * seconds_per_day}});
    i64 const from = last.begin.time_since_epoch().count();
    if (rule->at(from).offset != last.offset.count()) return;
    // A rule we can walk: segments that move forward, offsets within a day.
    i64 t = from;
    for (int i = 0; i < 8; ++i) {
      segment const s = rule->at(t);
      if (!(s.begin <= t && t < s.end) || std::abs(s.offset) > seconds_per_day) return;
      t = s.end;
    }
    z.tail = rule;
    z.tail_from = from;
  } catch (...) {  // the file or the data would not load: keep date/tz's answers
  }
}

date::time_zone const* find_zone(std::string_view name) noexcept {
  try {
    return date::locate_zone(name);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

// ---------------------------------------------------------------- the program

struct cron_program {
  std::string spec;
  std::string zone_name;
  zone tz;

  std::optional<std::chrono::nanoseconds> period;  // @every

  u64 seconds = 0, minutes = 0, hours = 0;  // bits 0-59, 0-59, 0-23
  u64 doms = 0;                             // bits 1-31
  u64 months = 0;                           // bits 1-12
  u64 dows = 0;                             // bits 0-6, Sunday = 0
  bool dom_star = false, dow_star = false;  // the field starts with * or ?
  bool periodic = false;          // a time field starts with *: runs again in a repeated hour
  bool possible = false;          // some (month, day) of the calendar matches
  std::array<u64, 7> dow_days{};  // [weekday of the 1st]: bits 1-31 of matching weekdays

  void compile() {
    for (unsigned first = 0; first < 7; ++first)
      for (unsigned d = 1; d <= 31; ++d)
        if (dows >> ((first + d - 1) % 7) & 1) dow_days[first] |= u64{1} << d;
    // Every (month, day) of the Gregorian calendar falls on each weekday within its
    // 400-year cycle (February 29 too), so a day matches some time iff:
    possible = false;
    if (!dom_star && !dow_star) {
      possible = months != 0;  // OR: every month has every weekday
    } else {
      for (unsigned m = 1; m <= 12; ++m)
        if ((months >> m & 1) && (doms & bits(1, m == 2 ? 29 : last_day(2001, m))) && dows)
          possible = true;
    }
  }

  u64 days_in(i64 y, unsigned m) const noexcept {
    u64 const dw = dow_days[weekday_from_days(days_from_civil(y, m, 1))];
    u64 const match = dom_star || dow_star ? (doms & dw) : (doms | dw);
    return match & bits(1, last_day(y, m));
  }

  /// The first local time at or after `from` (seconds since the local epoch) whose
  /// fields match, or empty past `last_year`. Jumps field by field.
  std::optional<i64> first_match(i64 from) const noexcept {
    i64 const day = floor_div(from, seconds_per_day);
    auto const sod = static_cast<unsigned>(from - day * seconds_per_day);
    civil const c = civil_from_days(day);
    i64 y = c.year;
    unsigned mo = c.month, d = c.day, h = sod / 3600, mi = sod / 60 % 60, s = sod % 60;
    for (;;) {
      if (mo > 12) ++y, mo = 1;
      if (y > last_year) return std::nullopt;
      if (!(months >> mo & 1)) {
        unsigned const next = next_bit(months, mo + 1);
        if (next > 12)
          ++y, mo = next_bit(months, 1);
        else
          mo = next;
        d = 1, h = mi = s = 0;
        continue;
      }
      unsigned const nd = next_bit(days_in(y, mo), d);
      if (nd == 64) {
        ++mo, d = 1, h = mi = s = 0;
        continue;
      }
      if (nd != d) d = nd, h = mi = s = 0;
      unsigned const nh = next_bit(hours, h);
      if (nh == 64) {
        ++d, h = mi = s = 0;
        continue;
      }
      if (nh != h) h = nh, mi = s = 0;
      unsigned const nmi = next_bit(minutes, mi);
      if (nmi == 64) {
        ++h, mi = s = 0;
        continue;
      }
      if (nmi != mi) mi = nmi, s = 0;
      unsigned const ns = next_bit(seconds, s);
      if (ns == 64) {
        ++mi, s = 0;
        continue;
      }
      return days_from_civil(y, mo, d) * seconds_per_day + h * 3600 + mi * 60 + ns;
    }
  }

  /// The first activation at or after the instant `t0` (seconds), or empty.
  std::optional<i64> first_activation(i64 t0) const {
    if (!possible) return std::nullopt;
    t0 = std::max(t0, first_second);
    segment seg = tz.at(t0);
    i64 from = t0 + seg.offset;
    // `local` is the first matching local time at or after `searched`, so it still is
    // the first at or after any `from` in [searched, *local]: no new search then.
    std::optional<i64> local;
    i64 searched = 0;
    // Each round returns, moves `from` past a local time it refused, or moves to a later
    // segment; the calendar search ends at last_year. The cap only guards against time
    // zone data that never moves forward.
    for (int round = 0; round < 1000000; ++round) {
      if (!local || from < searched || from > *local) {
        local = first_match(from);
        searched = from;
        if (!local) return std::nullopt;
      }
      i64 const s = *local - seg.offset;
      if (s >= seg.end) {  // not in this segment: on to the next
        segment next = tz.at(seg.end);
        if (next.end <= seg.end) return std::nullopt;
        i64 next_from = seg.end + next.offset;  // local times in a gap before it: skipped
        // Far ahead (a leap day, a yearly spec): skip the segments in between. Their
        // local times all lie in [from, *local), where nothing matches, when `next`
        // starts at or after `from` and lasts longer than any two offsets differ.
        constexpr i64 margin = 2 * seconds_per_day;
        if (next_from >= from && from <= seg.end + seg.offset && next.end - next.begin >= margin &&
            *local - next.offset - margin >= next.end) {
          segment const far = tz.at(*local - next.offset - margin);
          if (far.begin >= next.end && far.end > far.begin) {
            next = far;
            next_from = far.begin + far.offset;
          }
        }
        from = next_from;
        seg = next;
        continue;
      }
      if (!periodic && s - seg.begin < 2 * seconds_per_day) {
        // A fall-back repeat: the local time also belongs to the previous segment,
        // whose instant came first. Fixed-time specs run only then.
        segment const prev = tz.at(seg.begin - 1);
        i64 const prev_end = seg.begin + prev.offset;
        if (prev.end == seg.begin && *local < prev_end && *local >= prev.begin + prev.offset) {
          from = prev_end;
          continue;
        }
      }
      return s;
    }
    return std::nullopt;
  }
};

// ---------------------------------------------------------------- the parser

namespace {

/// `text` for an error message: control characters escaped, cut at `limit` bytes.
std::string quote(std::string_view text, std::size_t limit) {
  bool const cut = text.size() > limit;
  if (cut) {
    std::size_t n = limit;
    // Not inside a UTF-8 sequence (at most 3 continuation bytes back).
    for (int k = 0; k < 3 && n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80; ++k)
      --n;
    text = text.substr(0, n);
  }
  std::string out;
  out.reserve(text.size() + 8);
  for (char const ch : text) {
    auto const c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  if (cut) out += "...";
  return out;
}

std::string quoted(std::string_view text) {
  return '"' + quote(text, 40) + '"';
}

std::string character(char ch) {
  auto const c = static_cast<unsigned char>(ch);
  if (c > 0x20 && c < 0x7F && c != '\'' && c != '\\') return std::string("'") + ch + "'";
  constexpr char hex[] = "0123456789abcdef";
  return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
}

constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
constexpr bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

struct token {
  std::size_t pos = 0;  // in the spec
  std::string_view text;
};

struct field_def {
  char const* name;
  unsigned min, max;         // the values allowed
  unsigned top;              // the end of `*` and of `a/s` (day of week: 6; 7 is Sunday again)
  char const* const* names;  // three-letter names for min.., or null
  bool question;             // `?` allowed
};

constexpr char const* month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr char const* day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr field_def second_field{"second", 0, 59, 59, nullptr, false};
constexpr field_def minute_field{"minute", 0, 59, 59, nullptr, false};
constexpr field_def hour_field{"hour", 0, 23, 23, nullptr, false};
constexpr field_def dom_field{"day of month", 1, 31, 31, nullptr, true};
constexpr field_def month_field{"month", 1, 12, 12, month_names, false};
constexpr field_def dow_field{"day of week", 0, 7, 6, day_names, true};

class parser {
 public:
  explicit parser(std::string_view spec) : s_(spec) {}

  [[noreturn]] void fail(char const* field, std::size_t pos, std::string reason) const {
    throw cron_error(std::string(s_), field, pos, std::move(reason));
  }

  /// The next whitespace-separated token at or after `pos`; empty text at the end.
  token next_token(std::size_t pos) const noexcept {
    while (pos < s_.size() && is_space(s_[pos])) ++pos;
    std::size_t end = pos;
    while (end < s_.size() && !is_space(s_[end])) ++end;
    return {pos, s_.substr(pos, end - pos)};
  }

  std::string_view spec() const noexcept { return s_; }

  // ------------------------------------------------------------ fields

  /// A number at `i` in `t` (digits only); `i` moves past it. Values past a billion
  /// are kept as "too large" (`big`), never overflow.
  unsigned number(token t, std::size_t& i, bool& big) const noexcept {
    unsigned v = 0;
    big = false;
    for (; i < t.text.size() && is_digit(t.text[i]); ++i) {
      if (v > 100000000)
        big = true;
      else
        v = v * 10 + static_cast<unsigned>(t.text[i] - '0');
    }
    return v;
  }

  /// A value (number or name) of field `f` at `i` in `t`.
  unsigned value(field_def const& f, token t, std::size_t& i, char const* after) const {
    std::size_t const start = i;
    std::size_t const at = t.pos + i;
    if (i == t.text.size() || t.text[i] == ',')
      fail(f.name, at, std::string("expected a value") + after);
    if (is_digit(t.text[i])) {
      bool big = false;
      unsigned const v = number(t, i, big);
      std::string_view const text = t.text.substr(start, i - start);
      if (big || v > f.max)
        fail(f.name, at, quote(text, 20) + " is above the maximum " + std::to_string(f.max));
      if (v < f.min)
        fail(f.name, at, quote(text, 20) + " is below the minimum " + std::to_string(f.min));
      return v;
    }
    if (is_alpha(t.text[i])) {
      while (i < t.text.size() && is_alpha(t.text[i])) ++i;
      std::string_view const name = t.text.substr(start, i - start);
      if (!f.names) fail(f.name, at, "expected a number, found " + quoted(name));
      unsigned const n = f.max - f.min + 1 - (f.top != f.max);
      for (unsigned k = 0; k < n; ++k)
        if (iequals(name, f.names[k])) return f.min + k;
      fail(f.name, at,
           "unknown " + std::string(f.names == month_names ? "month" : "weekday") + " name " +
               quoted(name) + " (expected " + (f.names == month_names ? "JAN-DEC" : "SUN-SAT") +
               ")");
    }
    fail(f.name, at, "unexpected " + character(t.text[i]) + std::string(after));
  }

  /// A whole field: a comma-separated list of `*`, `?`, `a`, `a-b`, each with an
  /// optional `/step`.
  u64 field(field_def const& f, token t) const {
    u64 mask = 0;
    std::size_t i = 0;
    for (;;) {
      std::size_t const item = i;
      unsigned lo, hi;
      bool single = false;
      if (i < t.text.size() && (t.text[i] == '*' || t.text[i] == '?')) {
        if (t.text[i] == '?' && !f.question)
          fail(f.name, t.pos + i, "? is allowed only in the day of month and day of week");
        lo = f.min, hi = f.top;
        ++i;
      } else {
        lo = value(f, t, i, "");
        hi = lo;
        single = true;
        if (i < t.text.size() && t.text[i] == '-') {
          ++i;
          hi = value(f, t, i, " after -");
          single = false;
          if (lo > hi)
            fail(f.name, t.pos + item,
                 "the range " + quote(t.text.substr(item, i - item), 40) + " goes backwards");
        }
      }
      unsigned step = 1;
      if (i < t.text.size() && t.text[i] == '/') {
        ++i;
        std::size_t const at = i;
        if (i == t.text.size() || !is_digit(t.text[i])) {
          if (i < t.text.size() && t.text[i] != ',')
            fail(f.name, t.pos + i, "expected a step after /, found " + character(t.text[i]));
          fail(f.name, t.pos + i, "expected a step after /");
        }
        bool big = false;
        step = number(t, i, big);
        unsigned const span = f.top - f.min + 1;
        std::string_view const text = t.text.substr(at, i - at);
        if (step == 0) fail(f.name, t.pos + at, "a step of 0 never advances; use 1 or more");
        if (big || step > span)
          fail(f.name, t.pos + at,
               "step " + quote(text, 20) + " is above the maximum " + std::to_string(span) +
                   " (a step never carries into the next " +
                   (f.names == day_names ? "week" : "unit") + ")");
        if (single) hi = std::max(lo, f.top);  // `a/s`: from a to the end
      }
      if (i < t.text.size() && t.text[i] != ',') {
        char const c = t.text[i];
        if (c == '-' && t.text[item] == '*')
          fail(f.name, t.pos + i, "unexpected '-' after *: a range needs two values");
        fail(f.name, t.pos + i, "unexpected " + character(c));
      }
      for (unsigned v = lo; v <= hi; v += step) mask |= u64{1} << v;
      if (i == t.text.size()) break;
      ++i;  // ','
      if (i == t.text.size()) fail(f.name, t.pos + i - 1, "a list cannot end with ','");
    }
    return mask;
  }

  static bool starts_with_star(token t) noexcept {
    return !t.text.empty() && (t.text[0] == '*' || t.text[0] == '?');
  }

  // ------------------------------------------------------------ @every

  /// Go's time.ParseDuration: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or "0".
  std::chrono::nanoseconds duration(token t) const {
    std::string_view s = t.text;
    std::string const example = " (write it as Go does: 1h30m, 90s, 1.5h, 500ms)";
    bool negative = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
      negative = s[0] == '-';
      s.remove_prefix(1);
    }
    if (s == "0") bad_duration(t, "the period " + quoted(t.text) + " is not positive");
    if (s.empty()) bad_duration(t, quoted(t.text) + " is not a duration" + example);
    constexpr u64 limit = u64{1} << 63;
    u64 total = 0;
    while (!s.empty()) {
      if (!(s[0] == '.' || is_digit(s[0])))
        bad_duration(t, quoted(t.text) + " is not a duration" + example);
      // The integer part.
      u64 v = 0;
      std::size_t n = 0;
      for (; n < s.size() && is_digit(s[n]); ++n) {
        if (v > (limit - 1) / 10) bad_duration(t, "the period " + quoted(t.text) + " is too long");
        v = v * 10 + static_cast<u64>(s[n] - '0');
        if (v > limit) bad_duration(t, "the period " + quoted(t.text) + " is too long");
      }
      bool const pre = n != 0;
      s.remove_prefix(n);
      // The fraction.
      u64 f = 0;
      double scale = 1;
      bool post = false;
      if (!s.empty() && s[0] == '.') {
        s.remove_prefix(1);
        std::size_t k = 0;
        bool overflow = false;
        for (; k < s.size() && is_digit(s[k]); ++k) {
          if (overflow) continue;
          if (f > (std::numeric_limits<i64>::max() - 1) / 10) {
            overflow = true;
            continue;
          }
          u64 const next = f * 10 + static_cast<u64>(s[k] - '0');
          if (next > limit) {
            overflow = true;
            continue;
          }
          f = next;
          scale *= 10;
        }
        post = k != 0;
        s.remove_prefix(k);
      }
      if (!pre && !post) bad_duration(t, quoted(t.text) + " is not a duration" + example);
      // The unit.
      std::size_t u = 0;
      while (u < s.size() && s[u] != '.' && !is_digit(s[u])) ++u;
      std::string_view const unit = s.substr(0, u);
      s.remove_prefix(u);
      if (unit.empty())
        bad_duration(t, "missing unit in " + quoted(t.text) + " (ns, us, ms, s, m or h)");
      u64 scale_ns = 0;
      if (unit == "ns")
        scale_ns = 1;
      else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs")
        scale_ns = 1000;
      else if (unit == "ms")
        scale_ns = 1000000;
      else if (unit == "s")
        scale_ns = 1000000000;
      else if (unit == "m")
        scale_ns = 60 * u64{1000000000};
      else if (unit == "h")
        scale_ns = 3600 * u64{1000000000};
      else
        bad_duration(t, "unknown unit " + quoted(unit) + " in " + quoted(t.text) +
                            " (ns, us, ms, s, m or h)");
      if (v > limit / scale_ns) bad_duration(t, "the period " + quoted(t.text) + " is too long");
      v *= scale_ns;
      if (f > 0) {
        v += static_cast<u64>(static_cast<double>(f) * (static_cast<double>(scale_ns) / scale));
        if (v > limit) bad_duration(t, "the period " + quoted(t.text) + " is too long");
      }
      total += v;
      if (total > limit) bad_duration(t, "the period " + quoted(t.text) + " is too long");
    }
    if (total == 0) bad_duration(t, "the period " + quoted(t.text) + " is not positive");
    if (negative) bad_duration(t, "the period " + quoted(t.text) + " is negative");
    if (total == limit) bad_duration(t, "the period " + quoted(t.text) + " is too long");
    return std::chrono::nanoseconds(static_cast<i64>(total));
  }

  [[noreturn]] void bad_duration(token t, std::string why) const {
    fail("@every", t.pos, std::move(why));
  }

 private:
  std::string_view s_;
};

/// The local zone: TZ (a zone name, optionally after ':' or under /usr/share/zoneinfo/),
/// UTC for an empty or unknown TZ (as glibc and Go); without TZ, /etc/localtime; UTC
/// when neither can be read.
date::time_zone const* local_zone() noexcept {
  if (char const* env = std::getenv("TZ")) {
    std::string_view name = env;
    if (!name.empty() && name[0] == ':') name.remove_prefix(1);
    constexpr std::string_view dir = "/usr/share/zoneinfo/";
    if (name.substr(0, dir.size()) == dir) name.remove_prefix(dir.size());
    if (!name.empty())
      if (auto const* z = find_zone(name)) return z;
    return find_zone("UTC");
  }
  try {
    return date::current_zone();
  } catch (...) {
    return find_zone("UTC");
  }
}

void use_zone(cron_program& p, date::time_zone const* z) {
  p.tz = zone{};
  if (z) {
    try {  // loads the zone now, so that next() never does
      (void)z->get_info(date::sys_seconds{});
    } catch (...) {
      z = nullptr;
    }
  }
  if (!z) {  // no tz database at all
    p.zone_name = "UTC";
    return;
  }
  p.tz.tz = z;
  p.zone_name = std::string(z->name());
  extend(p.tz);
}

/// The zone named `name` (loaded), or null.
date::time_zone const* checked_zone(std::string_view name) noexcept {
  if (name.empty() || name.size() > 255) return nullptr;
  auto const* z = find_zone(name);
  if (!z) return nullptr;
  try {
    (void)z->get_info(date::sys_seconds{});
  } catch (...) {
    return nullptr;
  }
  return z;
}

bool names_utc(std::string_view name) noexcept {
  return name == "UTC" || name == "Etc/UTC";
}

std::shared_ptr<cron_program const> compile(std::string_view spec,
                                            std::string_view const* default_zone) {
  parser const p(spec);
  auto prog = std::make_shared<cron_program>();
  prog->spec = std::string(spec);

  if (default_zone) {
    auto const* z = checked_zone(*default_zone);
    if (!z && !names_utc(*default_zone))
      p.fail("CRON_TZ", 0,
             "unknown time zone " + quoted(*default_zone) + " (the time_zone argument)");
    use_zone(*prog, z);
  }

  token t = p.next_token(0);
  if (t.text.empty()) p.fail("spec", 0, "empty spec");

  // CRON_TZ=Area/City or TZ=Area/City
  bool zoned = false;
  for (std::string_view const prefix : {std::string_view("CRON_TZ="), std::string_view("TZ=")}) {
    if (t.text.substr(0, prefix.size()) != prefix) continue;
    std::string_view const name = t.text.substr(prefix.size());
    std::size_t const at = t.pos + prefix.size();
    if (name.empty()) p.fail("CRON_TZ", at, "missing time zone name after " + std::string(prefix));
    auto const* z = checked_zone(name);
    if (!z && !names_utc(name)) p.fail("CRON_TZ", at, "unknown time zone " + quoted(name));
    use_zone(*prog, z);
    zoned = true;
    t = p.next_token(t.pos + t.text.size());
    if (t.text.empty())
      p.fail("spec", spec.size(), "expected 5 or 6 fields after the time zone, found none");
    break;
  }
  if (!zoned && !default_zone) use_zone(*prog, local_zone());

  if (t.text[0] == '@') {
    std::string_view const name = t.text;
    token const after = p.next_token(t.pos + t.text.size());
    if (iequals(name, "@every")) {
      if (after.text.empty())
        p.fail("@every", spec.size(), "missing duration after @every (e.g. @every 1h30m)");
      prog->period = p.duration(after);
      token const extra = p.next_token(after.pos + after.text.size());
      if (!extra.text.empty())
        p.fail(
            "@every", extra.pos,
            "unexpected " + quoted(extra.text) + " after the duration (write 1h30m, not 1h 30m)");
      return prog;
    }
    struct descriptor {
      char const* name;
      char const* fields;
    };
    static constexpr descriptor table[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    char const* fields = nullptr;
    for (auto const& d : table)
      if (iequals(name, d.name)) fields = d.fields;
    if (!fields)
      p.fail("descriptor", t.pos,
             "unknown descriptor " + quoted(name) +
                 " (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
                 "@hourly or @every <duration>)");
    if (!after.text.empty())
      p.fail("descriptor", after.pos,
             "unexpected " + quoted(after.text) + " after " + quote(name, 20));
    // The descriptor's own fields, parsed as a spec of five.
    parser const q(fields);
    std::size_t pos = 0;
    token f[5];
    for (auto& x : f) x = q.next_token(pos), pos = x.pos + x.text.size();
    prog->seconds = 1;
    prog->minutes = q.field(minute_field, f[0]);
    prog->hours = q.field(hour_field, f[1]);
    prog->doms = q.field(dom_field, f[2]);
    prog->months = q.field(month_field, f[3]);
    prog->dows = q.field(dow_field, f[4]);
    prog->dom_star = parser::starts_with_star(f[2]);
    prog->dow_star = parser::starts_with_star(f[4]);
    prog->periodic = parser::starts_with_star(f[1]);
    prog->compile();
    return prog;
  }

  // Fields: count them all (without storing more than 6), then parse.
  token f[6];
  std::size_t count = 0;
  token extra;
  for (token x = t; !x.text.empty(); x = p.next_token(x.pos + x.text.size())) {
    if (count < 6)
      f[count] = x;
    else if (count == 6)
      extra = x;
    ++count;
  }
  if (count != 5 && count != 6) {
    std::size_t const at = count > 6 ? extra.pos : f[count - 1].pos + f[count - 1].text.size();
    p.fail("spec", at,
           "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds "
           "first), found " +
               std::to_string(count));
  }
  token const* x = f;
  if (count == 6) {
    prog->seconds = p.field(second_field, *x);
    prog->periodic = parser::starts_with_star(*x);
    ++x;
  } else {
    prog->seconds = 1;
  }
  prog->minutes = p.field(minute_field, x[0]);
  prog->hours = p.field(hour_field, x[1]);
  prog->doms = p.field(dom_field, x[2]);
  prog->months = p.field(month_field, x[3]);
  prog->dows = p.field(dow_field, x[4]);
  if (prog->dows >> 7 & 1) prog->dows = (prog->dows | 1) & ~(u64{1} << 7);  // 7 is Sunday
  prog->periodic =
      prog->periodic || parser::starts_with_star(x[0]) || parser::starts_with_star(x[1]);
  prog->dom_star = parser::starts_with_star(x[2]);
  prog->dow_star = parser::starts_with_star(x[4]);
  prog->compile();
  return prog;
}

std::string message(std::string const& spec, std::string const& field, std::size_t position,
                    std::string const& reason) {
  return "crew::cron_expression: bad spec \"" + quote(spec, 200) + "\": " + field +
         " at position " + std::to_string(position) + ": " + reason;
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------- cron_error

cron_error::cron_error(std::string spec, std::string field, std::size_t position,
                       std::string reason)
    : std::invalid_argument(detail::message(spec, field, position, reason)),
      data_(std::make_shared<detail::cron_error_data const>(detail::cron_error_data{
          std::move(spec), std::move(field), position, std::move(reason)})) {}

std::string const& cron_error::spec() const noexcept {
  return data_->spec;
}
std::string const& cron_error::field() const noexcept {
  return data_->field;
}
std::size_t cron_error::position() const noexcept {
  return data_->position;
}
std::string const& cron_error::reason() const noexcept {
  return data_->reason;
}

// ---------------------------------------------------------------- cron_expression

cron_expression::cron_expression(std::shared_ptr<detail::cron_program const> p) noexcept
    : p_(std::move(p)) {}

cron_expression cron_expression::parse(std::string_view spec) {
  return cron_expression(detail::compile(spec, nullptr));
}

cron_expression cron_expression::parse(std::string_view spec, std::string_view time_zone) {
  return cron_expression(detail::compile(spec, &time_zone));
}

std::optional<cron_expression::time_point> cron_expression::next(time_point after) const {
  using namespace std::chrono;
  if (p_->period) {
    auto const d = ceil<system_clock::duration>(*p_->period);
    if (after > time_point::max() - d) return std::nullopt;
    return after + d;
  }
  // The first whole second after `after`: activations are whole seconds.
  detail::i64 const t0 = floor<seconds>(after).time_since_epoch().count();
  if (t0 >= detail::max_time_seconds) return std::nullopt;
  auto const s = p_->first_activation(t0 + 1);
  if (!s || *s > detail::max_time_seconds) return std::nullopt;
  return time_point(duration_cast<system_clock::duration>(seconds(*s)));
}

std::string const& cron_expression::spec() const noexcept {
  return p_->spec;
}

std::string const& cron_expression::time_zone() const noexcept {
  return p_->zone_name;
}

std::optional<std::chrono::system_clock::duration> cron_expression::every() const noexcept {
  if (!p_->period) return std::nullopt;
  return std::chrono::ceil<std::chrono::system_clock::duration>(*p_->period);
}

}  // namespace crew
