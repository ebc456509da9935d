//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE pipeline
#include <crew/detail/exception_cast.hpp>
#include <crew/pipeline.hpp>
#include <crew/this_task.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::sleep_for;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_until;

namespace {

using run_outcome = std::tuple<std::exception_ptr, crew::pipeline_result>;

/// The failures carried by a run's exception; empty when it is null.
std::vector<crew::task_failure> failures_of(std::exception_ptr const& e) {
  if (!e) return {};
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE_MESSAGE(errors, "the run's exception is not a crew::task_errors");
  return errors->failures();
}

bool is_aborted(std::exception_ptr const& e) {
  auto const* se = crew::detail::exception_cast<boost::system::system_error>(e);
  return se && se->code() == net::error::operation_aborted;
}

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

/// A shuffled but deterministic number of yields for item `x`.
int delay_of(int x) {
  return (x * 7919) % 7;
}

/// An input range of 0..n-1 that counts the items read from it.
struct counting_range {
  int n;
  std::atomic<int>* reads;
  int throw_at = -1;

  struct iterator {
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    int i;
    std::atomic<int>* reads;
    int throw_at;
    int operator*() const {
      if (i == throw_at) throw test_error(i);
      ++*reads;
      return i;
    }
    iterator& operator++() {
      ++i;
      return *this;
    }
    bool operator==(iterator const& o) const { return i == o.i; }
  };

  iterator begin() const { return {0, reads, throw_at}; }
  iterator end() const { return {n, reads, throw_at}; }
};

/// A pipeline that doubles with a shuffled delay, then turns into text.
auto double_then_print(net::any_io_executor ex, crew::pipeline_options o) {
  crew::pipeline<int> p{ex, std::move(o)};
  auto doubled = std::move(p).stage("double", 4, [](int x) -> net::awaitable<int> {
    co_await yield_n(delay_of(x));
    co_return 2 * x;
  });
  return std::move(doubled).stage("print", 3, [](int x) -> net::awaitable<std::string> {
    co_await yield_n(delay_of(x + 3));
    co_return std::to_string(x);
  });
}

std::vector<std::string> doubled_text(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(std::to_string(2 * i));
  return out;
}

}  // namespace

// ============================================================ ordering and counts

BOOST_AUTO_TEST_SUITE(ordering)

CO_TEST_CASE(ordered_output_is_in_input_order_although_delays_are_shuffled) {
  auto ex = co_await net::this_coro::executor;
  auto p = double_then_print(ex, crew::pipeline_options{});
  std::vector<std::string> out;
  auto op = p.async_run(
      iota(200), [&](std::string s) { out.push_back(std::move(s)); },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_TEST(out == doubled_text(200), boost::test_tools::per_element());
  BOOST_TEST(r.items_in == 200u);
  BOOST_TEST(r.items_out == 200u);
  BOOST_TEST(r.failed == 0u);
  BOOST_REQUIRE_EQUAL(r.stages.size(), 2u);
  BOOST_TEST(r.stages[0].name == "double");
  BOOST_TEST(r.stages[0].concurrency == 4u);
  BOOST_TEST(r.stages[0].items_in == 200u);
  BOOST_TEST(r.stages[0].items_out == 200u);
  BOOST_TEST(r.stages[1].name == "print");
  BOOST_TEST(r.stages[1].items_out == 200u);
  BOOST_TEST(!p.running());
}

CO_TEST_CASE(unordered_output_is_a_permutation) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline_options o;
  o.ordered = false;
  auto p = double_then_print(ex, o);
  std::vector<std::string> out;
  auto op = p.async_run(
      iota(200), [&](std::string s) { out.push_back(std::move(s)); },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_TEST(r.items_out == 200u);
  auto expected = doubled_text(200);
  BOOST_TEST(std::is_permutation(out.begin(), out.end(), expected.begin(), expected.end()));
}

CO_TEST_CASE(a_stage_that_returns_at_once_next_to_a_slow_one) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.capacity = 2}};
  auto fast = std::move(p).stage("fast", 1, [](int x) { return x + 1; });  // plain value
  auto slow = std::move(fast).stage("slow", 3, [](int x) -> net::awaitable<int> {
    co_await yield_n(delay_of(x) * 3);
    co_return x * 10;
  });
  auto instant =
      std::move(slow).stage("instant", 2, [](int x) -> net::awaitable<long> { co_return x + 1L; });
  std::vector<long> out;
  auto op = instant.async_run(
      iota(100), [&](long x) { out.push_back(x); }, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_REQUIRE_EQUAL(out.size(), 100u);
  for (int i = 0; i < 100; ++i) BOOST_TEST(out[static_cast<std::size_t>(i)] == (i + 1) * 10 + 1L);
  BOOST_TEST(r.stages.size() == 3u);
}

CO_TEST_CASE(without_stages_the_source_feeds_the_sink) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  std::vector<int> out;
  auto r = co_await p.run(iota(10), [&](int x) { out.push_back(x); });
  BOOST_TEST(out == iota(10), boost::test_tools::per_element());
  BOOST_TEST(r.items_in == 10u);
  BOOST_TEST(r.items_out == 10u);
  BOOST_TEST(r.stages.empty());
}

CO_TEST_CASE(an_empty_source_completes_with_zero_counts) {
  auto ex = co_await net::this_coro::executor;
  auto p = double_then_print(ex, crew::pipeline_options{});
  int calls = 0;
  auto r = co_await p.run(std::vector<int>{}, [&](std::string) { ++calls; });
  BOOST_TEST(calls == 0);
  BOOST_TEST(r.items_in == 0u);
  BOOST_TEST(r.items_out == 0u);
  BOOST_TEST(r.stages[0].items_in == 0u);
}

CO_TEST_CASE(an_awaitable_sink_is_called_one_item_at_a_time) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline_options o;
  o.ordered = false;
  auto p = double_then_print(ex, o);
  int inside = 0;
  int peak = 0;
  std::size_t count = 0;
  auto sink = [&](std::string) -> net::awaitable<void> {
    peak = std::max(peak, ++inside);
    co_await yield_n(2);
    --inside;
    ++count;
  };
  auto r = co_await p.run(iota(50), sink);
  BOOST_TEST(peak == 1);
  BOOST_TEST(count == 50u);
  BOOST_TEST(r.items_out == 50u);
}

CO_TEST_CASE(move_only_items_and_a_moved_source) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::unique_ptr<int>> source;
  for (int i = 0; i < 20; ++i) source.push_back(std::make_unique<int>(i));
  crew::pipeline<std::unique_ptr<int>> p{ex};
  auto boxed = std::move(p).stage(
      "box", 2, [](std::unique_ptr<int> x) -> net::awaitable<std::unique_ptr<int>> {
        co_await yield_n(delay_of(*x));
        *x += 1;
        co_return x;
      });
  std::vector<int> out;
  auto r =
      co_await boxed.run(std::move(source), [&](std::unique_ptr<int> x) { out.push_back(*x); });
  BOOST_TEST(r.items_out == 20u);
  for (int i = 0; i < 20; ++i) BOOST_TEST(out[static_cast<std::size_t>(i)] == i + 1);
}

CO_TEST_CASE(an_lvalue_source_is_read_in_place) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::string> const words{"a", "bb", "ccc"};
  crew::pipeline<std::string> p{ex};
  auto sizes = std::move(p).stage("size", 2, [](std::string const& s) { return s.size(); });
  std::vector<std::size_t> out;
  co_await sizes.run(words, [&](std::size_t n) { out.push_back(n); });
  BOOST_TEST(out == (std::vector<std::size_t>{1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(words.size() == 3u);
}

CO_TEST_CASE(tasks_are_named_after_their_stage_and_owned_by_the_pipeline) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.name = "numbers"}};
  std::set<std::string> names;
  std::set<std::string> owners;
  auto named = std::move(p).stage("parse", 2, [&](int x) -> net::awaitable<int> {
    auto const info = crew::this_task::info();
    names.insert(info.name);
    owners.insert(std::string(info.owner_kind) + " '" + info.owner_name + "'");
    co_await yield_n(1 + x % 2);
    co_return x;
  });
  co_await named.run(iota(20), [](int) {});
  BOOST_TEST(names == (std::set<std::string>{"parse worker 1", "parse worker 2"}),
             boost::test_tools::per_element());
  BOOST_TEST(owners == (std::set<std::string>{"pipeline 'numbers'"}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(a_pipeline_runs_again_after_a_run_completed) {
  auto ex = co_await net::this_coro::executor;
  auto p = double_then_print(ex, crew::pipeline_options{});
  for (int round = 0; round < 3; ++round) {
    std::vector<std::string> out;
    auto r = co_await p.run(iota(30), [&](std::string s) { out.push_back(std::move(s)); });
    BOOST_TEST(out == doubled_text(30), boost::test_tools::per_element());
    BOOST_TEST(r.items_in == 30u);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ back-pressure

BOOST_AUTO_TEST_SUITE(back_pressure)

namespace {

/// Runs 1000 items through a fast stage then a stuck one; returns how many items the
/// source had given when the run stalled, and checks the run then completes in full.
net::awaitable<int> reads_while_stuck(bool ordered) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> reads{0};
  bool open = false;
  crew::pipeline_options o;
  o.ordered = ordered;
  o.capacity = 2;
  crew::pipeline<int> p{ex, o};
  auto fast = std::move(p).stage("fast", 3, [](int x) -> net::awaitable<int> { co_return x; });
  auto stuck = std::move(fast).stage("stuck", 2, [&](int x) -> net::awaitable<int> {
    co_await yield_until([&] { return open; });
    co_return x;
  });
  std::vector<int> out;
  std::optional<run_outcome> done;
  stuck.async_run(
      counting_range{1000, &reads}, [&](int x) { out.push_back(x); },
      [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
  co_await yield_n(500);  // long enough for everything that can move to have moved
  int const stalled = reads.load();
  BOOST_TEST(!done);
  co_await yield_n(200);
  BOOST_TEST(reads.load() == stalled);  // it did stall
  open = true;
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(!std::get<0>(*done));
  BOOST_TEST(std::get<1>(*done).items_out == 1000u);
  BOOST_TEST(out.size() == 1000u);
  if (ordered) BOOST_TEST(out == iota(1000), boost::test_tools::per_element());
  co_return stalled;
}

}  // namespace

CO_TEST_CASE(a_stuck_stage_stops_the_source_unordered) {
  int const stalled = co_await reads_while_stuck(false);
  // Channel 0 (2) + fast workers (3) + channel 1 (2) + stuck workers (2) + the item in
  // the source's hand (1).
  BOOST_TEST(stalled <= 2 + 3 + 2 + 2 + 1);
  BOOST_TEST(stalled >= 2 + 2);  // it did fill up
}

CO_TEST_CASE(a_stuck_stage_stops_the_source_ordered) {
  int const stalled = co_await reads_while_stuck(true);
  BOOST_TEST(stalled <= 2 + 3 + 2 + 2 + 1);
  BOOST_TEST(stalled >= 2 + 2);
}

CO_TEST_CASE(the_ordered_reorder_buffer_is_bounded_by_the_window) {
  // Item 0 is stuck; every other item flows to the sink, which must hold them back.
  // The source stops at the window: 2 channels x capacity 3 + 4 workers + 1.
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> reads{0};
  bool open = false;
  crew::pipeline<int> p{ex, {.capacity = 3}};
  auto s = std::move(p).stage("first stuck", 4, [&](int x) -> net::awaitable<int> {
    if (x == 0) co_await yield_until([&] { return open; });
    co_return x;
  });
  std::vector<int> out;
  std::optional<run_outcome> done;
  s.async_run(
      counting_range{1000, &reads}, [&](int x) { out.push_back(x); },
      [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
  co_await yield_n(500);
  int const stalled = reads.load();
  BOOST_TEST(out.empty());
  BOOST_TEST(stalled <= 2 * 3 + 4 + 1);
  BOOST_TEST(stalled >= 2 * 3 + 4);
  open = true;
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(out == iota(1000), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ failures

BOOST_AUTO_TEST_SUITE(failures)

CO_TEST_CASE(collect_drops_failed_items_and_reports_each_with_its_index) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.name = "collector"}};
  int const stage_line = __LINE__ + 1;
  auto checked = std::move(p).stage("check", 3, [](int x) -> net::awaitable<int> {
    co_await yield_n(delay_of(x));
    if (x % 5 == 0) throw test_error(x);
    co_return x;
  });
  auto next = std::move(checked).stage("next", 2, [](int x) { return x; });
  std::vector<int> out;
  auto op = next.async_run(
      iota(50), [&](int x) { out.push_back(x); }, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  std::vector<int> expected;
  for (int i = 0; i < 50; ++i)
    if (i % 5 != 0) expected.push_back(i);
  BOOST_TEST(out == expected, boost::test_tools::per_element());  // in order, holes skipped
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 10u);
  std::set<std::size_t> indexes;
  for (auto const& f : failures) {
    BOOST_TEST(f.name == "check");
    BOOST_REQUIRE(f.index.has_value());
    BOOST_TEST(f.as<test_error>()->n == static_cast<int>(*f.index));
    BOOST_TEST(f.spawn_site.line() == static_cast<std::uint_least32_t>(stage_line));
    BOOST_TEST(f.id != 0u);
    indexes.insert(*f.index);
  }
  BOOST_TEST(indexes == (std::set<std::size_t>{0, 5, 10, 15, 20, 25, 30, 35, 40, 45}),
             boost::test_tools::per_element());
  BOOST_TEST(r.items_in == 50u);
  BOOST_TEST(r.items_out == 40u);
  BOOST_TEST(r.failed == 10u);
  BOOST_TEST(r.stages[0].items_in == 50u);
  BOOST_TEST(r.stages[0].items_out == 40u);
  BOOST_TEST(r.stages[0].failed == 10u);
  BOOST_TEST(r.stages[1].items_in == 40u);
  auto const by_stage = crew::failures_by_stage(e);
  BOOST_REQUIRE_EQUAL(by_stage.size(), 1u);
  BOOST_TEST(by_stage.at("check").size() == 10u);
  BOOST_TEST(std::string(crew::to_string(failures.front())).find("item") != std::string::npos);
}

CO_TEST_CASE(collect_unordered_drops_failed_items) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.ordered = false}};
  auto checked = std::move(p).stage("check", 3, [](int x) -> net::awaitable<int> {
    co_await yield_n(delay_of(x));
    if (x % 4 == 1) throw test_error(x);
    co_return x;
  });
  std::vector<int> out;
  auto op = checked.async_run(
      iota(40), [&](int x) { out.push_back(x); }, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(failures_of(e).size() == 10u);
  BOOST_TEST(out.size() == 30u);
  BOOST_TEST(std::none_of(out.begin(), out.end(), [](int x) { return x % 4 == 1; }));
  BOOST_TEST(r.items_out == 30u);
}

CO_TEST_CASE(a_stage_that_throws_on_every_item_collects_every_failure) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.capacity = 1}};
  auto broken = std::move(p).stage("broken", 2, [](int x) -> int { throw test_error(x); });
  auto after = std::move(broken).stage("after", 1, [](int x) { return x; });
  int calls = 0;
  auto op = after.async_run(
      iota(100), [&](int) { ++calls; }, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(failures_of(e).size() == 100u);
  BOOST_TEST(calls == 0);
  BOOST_TEST(r.items_in == 100u);
  BOOST_TEST(r.items_out == 0u);
  BOOST_TEST(r.stages[0].failed == 100u);
  BOOST_TEST(r.stages[1].items_in == 0u);
}

CO_TEST_CASE(fatal_ends_the_run_with_the_first_failure) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.failures = crew::item_failure::fatal, .capacity = 2}};
  std::atomic<int> reads{0};
  int aborted = 0;
  auto checked = std::move(p).stage("check", 2, [&](int x) -> net::awaitable<int> {
    if (x == 7) {
      co_await yield_n(20);  // meanwhile the other worker takes item 8 and sleeps
      throw test_error(x);
    }
    co_await crew_test::sleep_counting_aborts(x < 7 ? 0ms : 1h, aborted);
    co_return x;
  });
  std::vector<int> out;
  auto op = checked.async_run(
      counting_range{1000, &reads}, [&](int x) { out.push_back(x); },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 1u);  // the cancelled ones are no failures
  BOOST_TEST(failures.front().name == "check");
  BOOST_TEST(failures.front().index.value_or(0) == 7u);
  BOOST_TEST(aborted >= 1);  // item 8 or later was asleep, and was cancelled
  BOOST_TEST(reads.load() < 1000);
  BOOST_TEST(r.failed == 1u);
  BOOST_TEST(out.size() <= 7u);
  for (std::size_t i = 0; i < out.size(); ++i) BOOST_TEST(out[i] == static_cast<int>(i));
}

CO_TEST_CASE(a_sink_that_throws_is_fatal_even_when_collecting) {
  auto ex = co_await net::this_coro::executor;
  auto p = double_then_print(ex, crew::pipeline_options{});
  int calls = 0;
  auto op = p.async_run(
      iota(1000),
      [&](std::string s) {
        ++calls;
        if (s == "20") throw test_error(10);
      },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 1u);
  BOOST_TEST(failures.front().name == "sink");
  BOOST_TEST(failures.front().as<test_error>()->n == 10);
  BOOST_TEST(calls == 11);
  BOOST_TEST(r.items_out == 10u);
  BOOST_TEST(r.items_in < 1000u);
}

CO_TEST_CASE(an_awaitable_sink_that_throws_is_fatal) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.ordered = false}};
  auto op = p.async_run(
      iota(100),
      [](int x) -> net::awaitable<void> {
        co_await yield_n(1);
        if (x == 3) throw test_error(3);
      },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(failures_of(e).size() == 1u);
  BOOST_TEST(r.items_out == 3u);
}

CO_TEST_CASE(a_source_that_throws_is_fatal) {
  auto ex = co_await net::this_coro::executor;
  auto p = double_then_print(ex, crew::pipeline_options{});
  std::atomic<int> reads{0};
  std::vector<std::string> out;
  auto op = p.async_run(
      counting_range{100, &reads, 30}, [&](std::string s) { out.push_back(std::move(s)); },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 1u);
  BOOST_TEST(failures.front().name == "source");
  BOOST_TEST(failures.front().as<test_error>()->n == 30);
  BOOST_TEST(r.items_in == 30u);
  BOOST_TEST(r.items_out <= 30u);
}

CO_TEST_CASE(on_failure_sees_each_failure) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::size_t> seen;
  crew::pipeline_options o;
  o.on_failure = [&](crew::task_failure const& f) { seen.push_back(f.index.value_or(999)); };
  o.keep_failures = 2;
  crew::pipeline<int> p{ex, o};
  auto broken = std::move(p).stage("odd", 1, [](int x) {
    if (x % 2) throw test_error(x);
    return x;
  });
  auto op = broken.async_run(
      iota(10), [](int) {}, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(seen == (std::vector<std::size_t>{1, 3, 5, 7, 9}), boost::test_tools::per_element());
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE(errors);
  BOOST_TEST(errors->size() == 2u);  // keep_failures
  BOOST_TEST(errors->dropped() == 3u);
  BOOST_TEST(r.failed == 5u);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ cancellation

BOOST_AUTO_TEST_SUITE(cancellation)

CO_TEST_CASE(cancelling_the_run_mid_stream_stops_every_stage) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.capacity = 2}};
  int aborted = 0;
  auto slow = std::move(p).stage("slow", 2, [&](int x) -> net::awaitable<int> {
    co_await crew_test::sleep_counting_aborts(x < 10 ? 0ms : 1h, aborted);
    co_return x;
  });
  std::vector<int> out;
  net::cancellation_signal signal;
  std::optional<run_outcome> done;
  slow.async_run(
      iota(1000), [&](int x) { out.push_back(x); },
      net::bind_cancellation_slot(
          signal.slot(),
          [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); }));
  co_await yield_until([&] { return out.size() == 10u && aborted == 0; });
  co_await yield_n(20);
  BOOST_TEST(slow.running());
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(is_aborted(std::get<0>(*done)));
  BOOST_TEST(aborted == 2);  // both workers were asleep
  BOOST_TEST(std::get<1>(*done).items_out == 10u);
  BOOST_TEST(std::get<1>(*done).failed == 0u);
  BOOST_TEST(!slow.running());
  // A signal after completion does nothing.
  signal.emit(net::cancellation_type::terminal);
}

CO_TEST_CASE(cancel_member_stops_the_run) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  auto slow = std::move(p).stage("slow", 2, [](int) -> net::awaitable<int> {
    co_await sleep_for(1h);
    co_return 0;
  });
  std::optional<run_outcome> done;
  slow.async_run(
      iota(10), [](int) {},
      [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
  co_await yield_n(10);
  slow.cancel();
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(is_aborted(std::get<0>(*done)));
}

CO_TEST_CASE(a_failure_during_cancellation_is_reported_not_aborted) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  auto stage = std::move(p).stage("stubborn", 1, [](int x) -> net::awaitable<int> {
    try {
      co_await sleep_for(1h);
    } catch (boost::system::system_error const&) {
      throw test_error(x);  // a real failure while being cancelled
    }
    co_return x;
  });
  std::optional<run_outcome> done;
  stage.async_run(
      iota(3), [](int) {},
      [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
  co_await yield_n(10);
  stage.cancel();
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(failures_of(std::get<0>(*done)).size() == 1u);
}

CO_TEST_CASE(destroying_the_pipeline_cancels_its_run) {
  auto ex = co_await net::this_coro::executor;
  std::optional<run_outcome> done;
  {
    crew::pipeline<int> p{ex};
    auto slow = std::move(p).stage("slow", 3, [](int x) -> net::awaitable<int> {
      co_await sleep_for(1h);
      co_return x;
    });
    slow.async_run(
        iota(100), [](int) {},
        [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
    co_await yield_n(10);
  }
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(is_aborted(std::get<0>(*done)));
}

CO_TEST_CASE(move_assigning_over_a_running_pipeline_cancels_its_run) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  std::optional<run_outcome> done;
  p.async_run(
      iota(100), [](int) -> net::awaitable<void> { co_await sleep_for(1h); },
      [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
  co_await yield_n(5);
  p = crew::pipeline<int>{ex};
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(is_aborted(std::get<0>(*done)));
  BOOST_TEST(!p.running());
}

CO_TEST_CASE(a_second_run_while_one_runs_is_already_running) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  bool open = false;
  std::optional<run_outcome> first;
  p.async_run(
      iota(3), [&](int) -> net::awaitable<void> { co_await yield_until([&] { return open; }); },
      [&](std::exception_ptr e, crew::pipeline_result r) { first.emplace(e, r); });
  auto op = p.async_run(
      iota(3), [](int) {}, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST((crew_test::code_of(e) == make_error_code(crew::error::already_running)));
  BOOST_TEST(r.items_in == 0u);
  open = true;
  co_await yield_until([&] { return first.has_value(); });
  BOOST_TEST(!std::get<0>(*first));
  BOOST_TEST(std::get<1>(*first).items_out == 3u);
}

BOOST_AUTO_TEST_CASE(the_io_context_destroyed_mid_run) {
  std::optional<crew::pipeline<int>> outlives;
  bool called = false;
  {
    net::io_context ctx;
    crew::pipeline<int> p{ctx, {.capacity = 2}};
    auto a = std::move(p).stage("a", 2, [](int x) -> net::awaitable<int> {
      co_await yield_n(x % 3);
      co_return x;
    });
    auto b = std::move(a).stage("b", 2, [](int x) -> net::awaitable<int> {
      if (x > 5) co_await sleep_for(1h);
      co_return x;
    });
    std::vector<std::string> words(100, std::string(64, 'x'));  // owned, with heap items
    b.async_run(
        iota(100), [](int) {}, [&](std::exception_ptr, crew::pipeline_result) { called = true; });
    for (int i = 0; i < 200; ++i) ctx.poll();
    BOOST_TEST(b.running());
    // A second pipeline, destroyed before the context, its run in flight.
    crew::pipeline<std::string> q{ctx};
    q.async_run(
        std::move(words), [](std::string) -> net::awaitable<void> { co_await sleep_for(1h); },
        [&](std::exception_ptr, crew::pipeline_result) { called = true; });
    for (int i = 0; i < 50; ++i) ctx.poll();
    outlives.emplace(std::move(b));
  }
  BOOST_TEST(!called);
  BOOST_TEST(!outlives->running());
  outlives.reset();
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ operation forms

BOOST_AUTO_TEST_SUITE(forms)

BOOST_AUTO_TEST_CASE(with_a_callback) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  auto inc = std::move(p).stage("inc", 2, [](int x) { return x + 1; });
  std::vector<int> out;
  std::optional<run_outcome> done;
  inc.async_run(
      iota(5), [&](int x) { out.push_back(x); },
      [&](std::exception_ptr e, crew::pipeline_result r) { done.emplace(e, r); });
  BOOST_TEST(!done);  // never inside the call
  ctx.run();
  BOOST_REQUIRE(done);
  BOOST_TEST(!std::get<0>(*done));
  BOOST_TEST(out == (std::vector<int>{1, 2, 3, 4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(with_use_future) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  auto inc = std::move(p).stage("inc", 2, [](int x) -> net::awaitable<int> { co_return x + 1; });
  std::vector<int> out;
  std::future<crew::pipeline_result> f = inc.async_run(
      iota(5), [&](int x) { out.push_back(x); }, net::use_future);
  std::thread runner([&] { ctx.run(); });
  auto r = f.get();
  runner.join();
  BOOST_TEST(r.items_out == 5u);
  BOOST_TEST(out == (std::vector<int>{1, 2, 3, 4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(with_use_future_and_a_failure) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  auto bad = std::move(p).stage("bad", 1, [](int x) -> int { throw test_error(x); });
  auto f = bad.async_run(
      iota(2), [](int) {}, net::use_future);
  std::thread runner([&] { ctx.run(); });
  BOOST_CHECK_THROW(f.get(), crew::task_errors);
  runner.join();
}

BOOST_AUTO_TEST_CASE(with_deferred) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  int sum = 0;
  auto op = p.async_run(
      iota(5), [&](int x) { sum += x; }, net::deferred);
  bool called = false;
  std::move(op)(
      [&](std::exception_ptr e, crew::pipeline_result r) { called = !e && r.items_out == 5u; });
  ctx.run();
  BOOST_TEST(called);
  BOOST_TEST(sum == 10);
}

CO_TEST_CASE(with_use_awaitable_throws_task_errors) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  auto bad = std::move(p).stage("bad", 1, [](int x) -> int { throw test_error(x); });
  BOOST_CHECK_THROW(co_await bad.async_run(
                        iota(2), [](int) {}, net::use_awaitable),
                    crew::task_errors);
}

CO_TEST_CASE(cancelling_the_awaiting_coroutine_cancels_the_run) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  auto slow = std::move(p).stage("slow", 1, [](int x) -> net::awaitable<int> {
    co_await sleep_for(1h);
    co_return x;
  });
  net::cancellation_signal signal;
  std::optional<std::exception_ptr> done;
  net::co_spawn(ex, slow.run(iota(3), [](int) {}),
                net::bind_cancellation_slot(
                    signal.slot(), [&](std::exception_ptr e, crew::pipeline_result) { done = e; }));
  co_await yield_n(10);
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return done.has_value(); });
  BOOST_TEST(is_aborted(*done));
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ hostile input

BOOST_AUTO_TEST_SUITE(hostile_input)

BOOST_AUTO_TEST_CASE(concurrency_0_names_the_stage) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  auto const message = crew_test::invalid_argument_of(
      [&] { (void)std::move(p).stage("parse", 0, [](int x) { return x; }); });
  BOOST_TEST(message.find("'parse'") != std::string::npos, message);
  BOOST_TEST(message.find("concurrency 0") != std::string::npos, message);
  crew::pipeline<int> q{ctx};
  auto const unlimited = crew_test::invalid_argument_of(
      [&] { (void)std::move(q).stage("x", crew::unlimited, [](int x) { return x; }); });
  BOOST_TEST(unlimited.find("crew::unlimited") != std::string::npos, unlimited);
}

BOOST_AUTO_TEST_CASE(capacity_0_names_the_option) {
  net::io_context ctx;
  auto const message = crew_test::invalid_argument_of([&] {
    crew::pipeline<int> p{ctx, {.capacity = 0}};
  });
  BOOST_TEST(message.find("capacity") != std::string::npos, message);
  BOOST_TEST(message.find("got 0") != std::string::npos, message);
  auto const keep = crew_test::invalid_argument_of([&] {
    crew::pipeline<int> p{ctx, {.keep_failures = 0}};
  });
  BOOST_TEST(keep.find("keep_failures") != std::string::npos, keep);
}

BOOST_AUTO_TEST_CASE(null_functions_are_refused_at_the_call) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  int (*null_stage)(int) = nullptr;
  auto const stage =
      crew_test::invalid_argument_of([&] { (void)std::move(p).stage("s", 1, null_stage); });
  BOOST_TEST(stage.find("null function pointer") != std::string::npos, stage);
  crew::pipeline<int> q{ctx};
  std::function<void(int)> empty_sink;
  auto const sink =
      crew_test::invalid_argument_of([&] { q.async_run(iota(1), empty_sink, [](auto&&...) {}); });
  BOOST_TEST(sink.find("the sink is an empty std::function") != std::string::npos, sink);
  BOOST_CHECK_NO_THROW(ctx.run());  // nothing was started
}

BOOST_AUTO_TEST_CASE(a_moved_from_pipeline_refuses_to_run) {
  net::io_context ctx;
  crew::pipeline<int> p{ctx};
  auto q = std::move(p);
  BOOST_CHECK_THROW(p.async_run(
                        iota(1), [](int) {}, [](auto&&...) {}),
                    std::logic_error);
  BOOST_CHECK_THROW((void)std::move(p).stage("s", 1, [](int x) { return x; }), std::logic_error);
  BOOST_TEST(!p.running());
  p.cancel();  // harmless
}

CO_TEST_CASE(refused_arguments_throw_at_the_call_with_use_awaitable) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex};
  std::function<void(int)> empty_sink;
  BOOST_CHECK_THROW(co_await p.async_run(iota(1), empty_sink, net::use_awaitable),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ two threads

BOOST_AUTO_TEST_SUITE(two_threads)

namespace {

net::awaitable<void> ten_thousand(bool ordered) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline_options o;
  o.ordered = ordered;
  o.capacity = 8;
  crew::pipeline<int> p{ex, o};
  auto a = std::move(p).stage("a", 4, [](int x) -> net::awaitable<int> {
    co_await yield_n(x % 3);
    co_return x + 1;
  });
  auto b = std::move(a).stage("b", 1, [](int x) { return 2L * x; });
  auto c = std::move(b).stage("c", 3, [](long x) -> net::awaitable<std::string> {
    co_await yield_n(static_cast<int>(x % 2));
    co_return std::to_string(x);
  });
  std::vector<std::string> out;
  auto op = c.async_run(
      iota(10000), [&](std::string s) { out.push_back(std::move(s)); },
      net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_TEST(r.items_out == 10000u);
  std::vector<std::string> expected;
  for (int i = 0; i < 10000; ++i) expected.push_back(std::to_string(2L * (i + 1)));
  if (ordered) {
    BOOST_TEST((out == expected));
  } else {
    std::sort(out.begin(), out.end());
    std::sort(expected.begin(), expected.end());
    BOOST_TEST((out == expected));
  }
}

}  // namespace

CO_TEST_CASE_MT(ten_thousand_items_ordered_on_two_threads, 2) {
  co_await ten_thousand(true);
}

CO_TEST_CASE_MT(ten_thousand_items_unordered_on_two_threads, 2) {
  co_await ten_thousand(false);
}

CO_TEST_CASE_MT(failures_and_cancellation_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<int> p{ex, {.capacity = 4}};
  auto checked = std::move(p).stage("check", 4, [](int x) -> net::awaitable<int> {
    co_await yield_n(x % 4);
    if (x % 10 == 3) throw test_error(x);
    co_return x;
  });
  std::vector<int> out;
  auto op = checked.async_run(
      iota(2000), [&](int x) { out.push_back(x); }, net::as_tuple(net::use_awaitable));
  auto [e, r] = co_await std::move(op);
  BOOST_TEST(failures_of(e).size() == 200u);
  BOOST_TEST(out.size() == 1800u);
  BOOST_TEST(std::is_sorted(out.begin(), out.end()));
  BOOST_TEST(r.stages[0].failed == 200u);

  // Then a run cancelled from another thread.
  auto slow = std::move(checked);
  std::optional<std::exception_ptr> done;
  std::mutex m;
  slow.async_run(
      iota(100000), [](int) {},
      [&](std::exception_ptr e2, crew::pipeline_result) {
        std::lock_guard lock(m);
        done = e2;
      });
  std::thread canceller([&] {
    std::this_thread::sleep_for(1ms);
    slow.cancel();
  });
  co_await yield_until([&] {
    std::lock_guard lock(m);
    return done.has_value();
  });
  canceller.join();
  std::lock_guard lock(m);
  BOOST_TEST((is_aborted(*done) || crew::detail::exception_cast<crew::task_errors>(*done)));
}

BOOST_AUTO_TEST_CASE(on_a_thread_pool) {
  net::thread_pool pool(2);
  crew::pipeline<int> p{pool.get_executor()};
  auto sq = std::move(p).stage("square", 4, [](int x) -> net::awaitable<long> {
    co_await yield_n(x % 2);
    co_return 1L * x* x;
  });
  std::vector<long> out;
  auto r = sq.async_run(
                 iota(1000), [&](long x) { out.push_back(x); }, net::use_future)
               .get();
  BOOST_TEST(r.items_out == 1000u);
  for (int i = 0; i < 1000; ++i) BOOST_TEST(out[static_cast<std::size_t>(i)] == 1L * i * i);
  pool.join();
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ Asio 1.26 defects

BOOST_AUTO_TEST_SUITE(asio_defects)

// Asio 1.26: close() discards the items still buffered in a channel (receive_state_
// becomes closed at once), so a pipeline ends its streams with end marks, never close().
CO_TEST_CASE(channel_close_discards_buffered_items) {
  auto ex = co_await net::this_coro::executor;
  net::experimental::channel<void(boost::system::error_code, int)> ch(ex, 4);
  BOOST_TEST(ch.try_send(boost::system::error_code{}, 1));
  BOOST_TEST(ch.try_send(boost::system::error_code{}, 2));
  ch.close();
  auto [ec, v] = co_await ch.async_receive(net::as_tuple(net::use_awaitable));
  (void)v;
  // If this starts to fail, a later Asio keeps buffered items: close() would do.
  BOOST_TEST(ec == net::experimental::error::channel_closed);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ docs

namespace {

//[pipeline_import_parse
struct record {
  std::string key;
  int value = 0;
};

/// Parses "key=value"; a bad line throws, and the run records it and goes on.
net::awaitable<record> parse_line(std::string line) {
  auto const eq = line.find('=');
  if (eq == std::string::npos) throw std::invalid_argument("no '=' in '" + line + "'");
  co_await yield_n(static_cast<int>(line.size() % 3));
  co_return record{line.substr(0, eq), std::stoi(line.substr(eq + 1))};
}

/// Stands for a database write.
net::awaitable<void> save(std::map<std::string, int>& db, record const& r) {
  co_await yield_n(2);
  db[r.key] = r.value;
}

//]

}  // namespace

BOOST_AUTO_TEST_SUITE(docs)

CO_TEST_CASE(batch_import) {
  std::vector<std::string> lines{"a=1", "b=2", "oops", "c=3", "d=x=", "e=5"};
  std::map<std::string, int> db;
  std::ostringstream log;
  //[pipeline_import
  auto ex = co_await net::this_coro::executor;
  crew::pipeline<std::string> import{ex, {.capacity = 8, .name = "import"}};
  auto parsed = std::move(import).stage("parse", 4, parse_line);  // 4 lines at once
  auto stored = std::move(parsed).stage("store", 2, [&](record r) -> net::awaitable<std::string> {
    co_await save(db, r);  // 2 writes at once
    co_return r.key;
  });
  std::vector<std::string> keys;  // in input order
  auto op = stored.async_run(
      lines, [&](std::string key) { keys.push_back(std::move(key)); },
      net::as_tuple(net::use_awaitable));
  auto [e, result] = co_await std::move(op);
  for (auto const& [stage, failures] : crew::failures_by_stage(e))
    for (auto const& f : failures)
      log << stage << ": line " << *f.index + 1 << ": " << f.what() << '\n';
  log << result.items_in << " read, " << result.items_out << " stored\n";
  //]
  BOOST_TEST(keys == (std::vector<std::string>{"a", "b", "c", "e"}),
             boost::test_tools::per_element());
  BOOST_TEST(db.size() == 4u);
  BOOST_TEST(log.str() ==
                 "parse: line 3: no '=' in 'oops'\n"
                 "parse: line 5: stoi\n"
                 "6 read, 4 stored\n",
             log.str());
}

BOOST_AUTO_TEST_SUITE_END()
