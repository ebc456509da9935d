//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE gather
#include <crew/detail/exception_cast.hpp>
#include <crew/gather.hpp>
#include <crew/runtime.hpp>
#include <crew/task_group.hpp>
#include <crew/this_task.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::is_aborted;
using crew_test::sleep_for;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_once;

namespace {

/// The failures carried by a gather's result; empty when the result is null.
std::vector<crew::task_failure> failures_of(std::exception_ptr const& e) {
  if (!e) return {};
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE_MESSAGE(errors, "the gather's exception is not a crew::task_errors");
  return errors->failures();
}

/// The indexes of the failures, sorted.
std::vector<std::size_t> failed_indexes(std::exception_ptr const& e) {
  std::vector<std::size_t> out;
  for (auto const& f : failures_of(e)) out.push_back(f.index.value_or(999999));
  std::sort(out.begin(), out.end());
  return out;
}

/// An input range of `f(0)`, ..., `f(n - 1)`, each made when dereferenced, that does
/// not know its size: a lazy view that clang 14 can compile (it cannot compile
/// libstdc++ 12's std::views).
template <class F>
class lazy_range {
 public:
  lazy_range(int n, F f) : n_(n), f_(std::move(f)) {}

  class iterator {
   public:
    using value_type = std::invoke_result_t<F&, int>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(lazy_range* r, int i) : r_(r), i_(i) {}
    value_type operator*() const { return r_->f_(i_); }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    void operator++(int) { ++i_; }
    bool operator==(std::default_sentinel_t) const { return i_ == r_->n_; }

   private:
    lazy_range* r_ = nullptr;
    int i_ = 0;
  };

  iterator begin() { return {this, 0}; }
  std::default_sentinel_t end() { return {}; }

 private:
  int n_;
  F f_;
};

template <class F>
lazy_range<F> lazy(int n, F f) {
  return {n, std::move(f)};
}

/// Returns `v` after `yields` trips through the executor's queue.
net::awaitable<int> value_after(int yields, int v) {
  co_await yield_n(yields);
  co_return v;
}

net::awaitable<int> fail_after(int yields, int n) {
  co_await yield_n(yields);
  throw test_error(n);
}

/// Counts the coroutine frames a test made and has not destroyed yet, and the peak.
struct frame_counter {
  std::atomic<int> live{0};
  std::atomic<int> peak{0};
  std::atomic<int> made{0};

  void add() {
    ++made;
    int const now = ++live;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
};

/// Lives in a job's frame: the frame is counted from its making to its destruction,
/// whether or not it ever ran.
struct frame_guard {
  frame_counter* c;
  explicit frame_guard(frame_counter& counter) : c(&counter) { c->add(); }
  frame_guard(frame_guard&& o) noexcept : c(std::exchange(o.c, nullptr)) {}
  frame_guard& operator=(frame_guard&&) = delete;
  ~frame_guard() {
    if (c) --c->live;
  }
};

net::awaitable<int> counted_job(frame_guard, int i, int yields) {
  co_await yield_n(yields);
  co_return i * 2;
}

/// An input range whose `++it` throws when it would reach `throw_at`.
struct throwing_range {
  int n = 0;
  int throw_at = 0;

  struct iterator {
    using value_type = net::awaitable<int>;
    using difference_type = std::ptrdiff_t;
    int i = 0;
    int n = 0;
    int throw_at = 0;
    net::awaitable<int> operator*() const { return value_after(1, i); }
    iterator& operator++() {
      if (i + 1 == throw_at) throw test_error(99);
      ++i;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return i == n; }
  };

  iterator begin() const { return iterator{0, n, throw_at}; }
  std::default_sentinel_t end() const { return {}; }
};

/// Jobs 0..n-1, each its index times 10, finishing in reverse order.
std::vector<net::awaitable<int>> reverse_finishing_jobs(int n) {
  std::vector<net::awaitable<int>> jobs;
  for (int i = 0; i < n; ++i) jobs.push_back(value_after(2 * (n - i), 10 * i));
  return jobs;
}

std::vector<int> tens(int n) {
  std::vector<int> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = 10 * i;
  return out;
}

/// Items 0..2 return at once; the others sleep for an hour.
auto sleepers(std::atomic<int>& sleeping) {
  return lazy(100, [&sleeping](int i) {
    return [&sleeping, i]() -> net::awaitable<int> {
      if (i < 3) co_return i + 100;
      ++sleeping;
      co_await sleep_for(1h);
      co_return i + 100;
    };
  });
}

}  // namespace

// ============================================================ results

BOOST_AUTO_TEST_SUITE(results)

CO_TEST_CASE(values_come_in_input_order_whatever_order_items_finish_in) {
  auto ex = co_await net::this_coro::executor;
  auto jobs = reverse_finishing_jobs(20);
  auto op = crew::async_gather(ex, jobs, net::use_awaitable);
  std::vector<int> const values = co_await std::move(op);
  BOOST_TEST(values == tens(20), boost::test_tools::per_element());
  // An lvalue range is referenced, and its elements are moved out.
  BOOST_TEST(std::none_of(jobs.begin(), jobs.end(), [](auto const& a) { return a.valid(); }));
}

CO_TEST_CASE(values_come_in_input_order_with_a_limit) {
  auto ex = co_await net::this_coro::executor;
  crew::gather_options const options{.limit = 3};
  auto op = crew::async_gather(ex, reverse_finishing_jobs(20), options, net::use_awaitable);
  std::vector<int> const values = co_await std::move(op);
  BOOST_TEST(values == tens(20), boost::test_tools::per_element());
}

CO_TEST_CASE(failures_carry_their_index_and_name_and_the_others_values_stay) {
  auto ex = co_await net::this_coro::executor;
  std::vector<net::awaitable<int>> jobs;
  for (int i = 0; i < 10; ++i)
    jobs.push_back(i == 2 || i == 7 ? fail_after(10 - i, i) : value_after(i % 3, 10 * i));
  crew::gather_options const options{.limit = 4, .name = "fetch"};
  auto op = crew::async_gather(ex, std::move(jobs), options, net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 2u);
  for (auto const& f : failures) {
    BOOST_REQUIRE(f.index);
    BOOST_TEST(f.as<test_error>()->n == static_cast<int>(*f.index));
    BOOST_TEST(f.name == "fetch");
    BOOST_TEST(f.id != 0u);
    BOOST_TEST(std::string(f.spawn_site.file_name()).find("gather.cpp") != std::string::npos);
  }
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{2, 7}));
  auto expected = tens(10);
  expected[2] = expected[7] = 0;  // a failed slot holds T{}
  BOOST_TEST(values == expected, boost::test_tools::per_element());
}

// conc's ResultPool dropped every result after the last failed item: not here.
CO_TEST_CASE(values_after_the_last_failure_are_kept) {
  auto ex = co_await net::this_coro::executor;
  std::vector<net::awaitable<int>> jobs;
  for (int i = 0; i < 10; ++i) jobs.push_back(i == 3 ? fail_after(0, 3) : value_after(1, 10 * i));
  auto op = crew::async_gather(ex, std::move(jobs), net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{3}));
  BOOST_REQUIRE_EQUAL(values.size(), 10u);
  for (int i = 4; i < 10; ++i) BOOST_TEST(values[static_cast<std::size_t>(i)] == 10 * i);
  BOOST_TEST(values[3] == 0);
}

CO_TEST_CASE(an_empty_range_completes_with_an_empty_vector_never_inline) {
  auto ex = co_await net::this_coro::executor;
  std::vector<net::awaitable<int>> none;
  bool called = false;
  crew::async_gather(ex, none,
                     [&](std::exception_ptr e, std::vector<int> v) { called = !e && v.empty(); });
  BOOST_TEST(!called);  // never inside the call
  co_await yield_n(3);
  BOOST_TEST(called);
  // A range that does not know its size finds out in an item.
  auto odd = lazy(0, [](int i) { return value_after(0, i); });
  auto op = crew::async_gather(ex, odd, net::as_tuple(net::use_awaitable));
  auto [e, v] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_TEST(v.empty());
}

CO_TEST_CASE(callables_are_called_inside_their_item_and_kept_alive_until_it_ends) {
  auto ex = co_await net::this_coro::executor;
  auto alive = std::make_shared<int>(0);
  std::vector<std::function<net::awaitable<std::string>()>> jobs;
  for (int i = 0; i < 5; ++i)
    jobs.emplace_back([alive, i]() -> net::awaitable<std::string> {
      co_await yield_once();
      BOOST_TEST(alive.use_count() >= 2);  // the callable is still alive
      BOOST_TEST(crew::this_task::id() != 0u);
      co_return std::to_string(i);
    });
  auto op =
      crew::async_gather(ex, std::move(jobs), crew::gather_options{.limit = 2}, net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_TEST((values == std::vector<std::string>{"0", "1", "2", "3", "4"}));
  BOOST_TEST(alive.use_count() == 1);  // the moved-in range died with the operation
}

CO_TEST_CASE(items_are_children_of_the_initiator_not_of_each_other) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  std::uint64_t initiator = 0;
  std::vector<std::uint64_t> parents(6), ids(6);
  g.spawn([&]() -> net::awaitable<void> {
    initiator = crew::this_task::id();
    auto gex = co_await net::this_coro::executor;
    auto jobs = lazy(6, [&](int i) {
      return [&, i]() -> net::awaitable<int> {
        parents[static_cast<std::size_t>(i)] = crew::this_task::parent_id();
        ids[static_cast<std::size_t>(i)] = crew::this_task::id();
        co_await yield_once();
        co_return i;
      };
    });
    auto op = crew::async_gather(gex, jobs, crew::gather_options{.limit = 2}, net::use_awaitable);
    auto const v = co_await std::move(op);
    BOOST_TEST(v.size() == 6u);
  });
  co_await g.wait();
  BOOST_TEST(initiator != 0u);
  for (std::size_t i = 0; i < 6; ++i) {
    BOOST_TEST(parents[i] == initiator);
    BOOST_TEST(ids[i] != initiator);
  }
}

BOOST_AUTO_TEST_CASE(the_runtime_sees_the_items_as_tasks_of_a_gather) {
  net::io_context ctx;
  net::cancellation_signal sig;
  std::atomic<int> sleeping = 0;
  bool done = false;
  crew::async_gather(ctx, sleepers(sleeping), crew::gather_options{.limit = 4, .name = "snap"},
                     net::bind_cancellation_slot(
                         sig.slot(), [&](std::exception_ptr, std::vector<int>) { done = true; }));
  while (sleeping < 4) BOOST_REQUIRE(ctx.run_one() == 1u);
  std::size_t items = 0;
  for (auto const& r : crew::snapshot()) {
    if (std::string_view(r.info.owner_kind) != "gather" || r.info.owner_name != "snap") continue;
    ++items;
    BOOST_TEST(r.info.name == "snap");
  }
  BOOST_TEST(items == 5u);  // 3..6 sleep, 7 waits for a slot; nothing else was pulled
  sig.emit(net::cancellation_type::terminal);
  ctx.run();
  BOOST_TEST(done);
}

BOOST_AUTO_TEST_CASE(on_an_execution_context_and_without_a_coroutine) {
  net::io_context ctx;
  std::optional<std::vector<int>> result;
  crew::async_gather(ctx, reverse_finishing_jobs(4), crew::gather_options{.limit = 2},
                     [&](std::exception_ptr e, std::vector<int> v) {
                       BOOST_TEST(!e);
                       result = std::move(v);
                     });
  ctx.run();
  BOOST_REQUIRE(result);
  BOOST_TEST(*result == tens(4), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ laziness and size

BOOST_AUTO_TEST_SUITE(laziness)

CO_TEST_CASE(a_lazy_range_never_has_more_than_limit_plus_one_frames_alive) {
  auto ex = co_await net::this_coro::executor;
  frame_counter frames;
  auto jobs = lazy(2000, [&](int i) { return counted_job(frame_guard(frames), i, i % 4); });
  auto op = crew::async_gather(ex, jobs, crew::gather_options{.limit = 8}, net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_REQUIRE_EQUAL(values.size(), 2000u);
  for (int i = 0; i < 2000; ++i) BOOST_TEST_REQUIRE(values[static_cast<std::size_t>(i)] == 2 * i);
  BOOST_TEST(frames.made == 2000);
  BOOST_TEST(frames.live == 0);
  BOOST_TEST(frames.peak <= 9);
  BOOST_TEST(frames.peak >= 2);
}

#if !defined(__clang__) || __clang_major__ >= 15
// libstdc++ 12's views, which clang 14 cannot compile.
CO_TEST_CASE(std_views_are_pulled_lazily_and_an_rvalue_view_is_moved_in) {
  auto ex = co_await net::this_coro::executor;
  frame_counter frames;
  auto op = crew::async_gather(ex, std::views::iota(0, 1000) | std::views::transform([&](int i) {
                                     return counted_job(frame_guard(frames), i, i % 3);
                                   }),
                               crew::gather_options{.limit = 4}, net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_REQUIRE_EQUAL(values.size(), 1000u);
  for (int i = 0; i < 1000; ++i) BOOST_TEST_REQUIRE(values[static_cast<std::size_t>(i)] == 2 * i);
  BOOST_TEST(frames.peak <= 5);
  BOOST_TEST(frames.live == 0);
  auto none = std::views::iota(0, 10) | std::views::filter([](int i) { return i > 100; }) |
              std::views::transform([](int i) { return value_after(0, i); });
  auto op2 = crew::async_gather(ex, none, net::as_tuple(net::use_awaitable));
  auto [e, v] = co_await std::move(op2);
  BOOST_TEST(!e);
  BOOST_TEST(v.empty());
}
#endif

CO_TEST_CASE(huge_input_with_a_limit) {
  auto ex = co_await net::this_coro::executor;
  frame_counter frames;
  int const n = 100000;
  auto jobs = lazy(n, [&](int i) { return counted_job(frame_guard(frames), i, i % 2); });
  auto op = crew::async_gather(ex, jobs, crew::gather_options{.limit = 64}, net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_REQUIRE_EQUAL(values.size(), static_cast<std::size_t>(n));
  bool ordered = true;
  for (int i = 0; i < n; ++i) ordered = ordered && values[static_cast<std::size_t>(i)] == 2 * i;
  BOOST_TEST(ordered);
  BOOST_TEST(frames.peak <= 65);
  BOOST_TEST(frames.live == 0);
}

CO_TEST_CASE(huge_input_unlimited) {
  auto ex = co_await net::this_coro::executor;
  int const n = 100000;
  std::vector<net::awaitable<int>> jobs;
  jobs.reserve(n);
  for (int i = 0; i < n; ++i) jobs.push_back(value_after(i % 2, i));
  auto op = crew::async_gather(ex, std::move(jobs), net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_REQUIRE_EQUAL(values.size(), static_cast<std::size_t>(n));
  bool ordered = true;
  for (int i = 0; i < n; ++i) ordered = ordered && values[static_cast<std::size_t>(i)] == i;
  BOOST_TEST(ordered);
}

CO_TEST_CASE(never_more_than_limit_items_run_at_once) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> running = 0, peak = 0;
  auto jobs = lazy(200, [&](int i) {
    return [&, i]() -> net::awaitable<int> {
      peak = std::max(peak.load(), ++running);
      co_await yield_n(10 + i % 5);
      --running;
      co_return i;
    };
  });
  auto op = crew::async_gather(ex, jobs, crew::gather_options{.limit = 5}, net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_TEST(values.size() == 200u);
  BOOST_TEST(peak == 5);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ hostile input

BOOST_AUTO_TEST_SUITE(hostile)

BOOST_AUTO_TEST_CASE(a_zero_limit_or_keep_failures_is_rejected_naming_the_field) {
  net::io_context ctx;
  std::vector<net::awaitable<int>> jobs;
  jobs.push_back(value_after(0, 1));
  auto const msg = crew_test::invalid_argument_of([&] {
    crew::async_gather(ctx, jobs, crew::gather_options{.limit = 0},
                       [](std::exception_ptr, std::vector<int>) {});
  });
  BOOST_TEST(msg.find("crew::async_gather") != std::string::npos);
  BOOST_TEST(msg.find("limit") != std::string::npos);
  BOOST_TEST(msg.find("got 0") != std::string::npos);
  auto const msg2 = crew_test::invalid_argument_of([&] {
    crew::async_gather(ctx, jobs, crew::gather_options{.keep_failures = 0}, net::use_future);
  });
  BOOST_TEST(msg2.find("keep_failures") != std::string::npos);
  BOOST_TEST(jobs[0].valid());  // a refused gather took nothing
  BOOST_TEST(ctx.run() == 0u);  // and started nothing
}

CO_TEST_CASE(a_zero_limit_with_use_awaitable_throws_in_the_caller) {
  auto ex = co_await net::this_coro::executor;
  std::vector<net::awaitable<int>> jobs;
  crew::gather_options const options{.limit = 0};
  // Thrown by the call, in the caller, before anything is awaited.
  BOOST_CHECK_THROW((void)crew::async_gather(ex, jobs, options, net::use_awaitable),
                    std::invalid_argument);
}

CO_TEST_CASE(a_moved_from_awaitable_is_the_failure_of_its_item) {
  auto ex = co_await net::this_coro::executor;
  std::vector<net::awaitable<int>> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(value_after(1, i));
  auto stolen = std::move(jobs[2]);
  auto op = crew::async_gather(ex, std::move(jobs), net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 1u);
  BOOST_TEST(failures[0].index.value_or(999) == 2u);
  auto const* bad = failures[0].as<std::invalid_argument>();
  BOOST_REQUIRE(bad);
  BOOST_TEST(std::string(bad->what()).find("crew::async_gather") != std::string::npos);
  BOOST_TEST((values == std::vector<int>{0, 1, 0, 3, 4}));
}

CO_TEST_CASE(an_element_that_throws_when_made_ends_the_iteration_as_its_items_failure) {
  auto ex = co_await net::this_coro::executor;
  int made = 0;
  auto jobs = lazy(10, [&](int i) {
    ++made;
    if (i == 3) throw test_error(3);
    return value_after(1, i);
  });
  auto op = crew::async_gather(ex, jobs, crew::gather_options{.limit = 2},
                               net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{3}));
  BOOST_TEST((values == std::vector<int>{0, 1, 2, 0}));
  BOOST_TEST(made == 4);  // nothing pulled after the range broke
}

CO_TEST_CASE(a_callable_that_throws_when_called_is_its_items_failure_only) {
  auto ex = co_await net::this_coro::executor;
  auto jobs = lazy(6, [](int i) {
    return [i]() -> net::awaitable<int> {
      if (i == 1) throw test_error(1);  // before its coroutine exists
      return value_after(1, i);
    };
  });
  auto op = crew::async_gather(ex, jobs, net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{1}));
  BOOST_TEST(failures_of(e).at(0).as<test_error>()->n == 1);
  BOOST_TEST((values == std::vector<int>{0, 0, 2, 3, 4, 5}));
}

CO_TEST_CASE(an_iterator_that_throws_midway_fails_the_next_item_and_keeps_the_values) {
  auto ex = co_await net::this_coro::executor;
  auto op = crew::async_gather(ex, throwing_range{10, 5}, crew::gather_options{.limit = 2},
                               net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 1u);
  BOOST_TEST(failures[0].index.value_or(999) == 5u);
  BOOST_TEST(failures[0].as<test_error>()->n == 99);
  BOOST_TEST((values == std::vector<int>{0, 1, 2, 3, 4, 0}));
}

BOOST_AUTO_TEST_CASE(the_context_destroyed_before_the_gather_completes_leaks_nothing) {
  auto alive = std::make_shared<int>(0);
  bool called = false;
  {
    net::io_context ctx;
    int started = 0;
    auto jobs = lazy(100, [alive, &started](int i) {
      return [alive, &started, i]() -> net::awaitable<int> {
        ++started;
        co_await sleep_for(1h);
        co_return i;
      };
    });
    crew::async_gather(ctx, jobs, crew::gather_options{.limit = 8},
                       [&](std::exception_ptr, std::vector<int>) { called = true; });
    while (started < 8) BOOST_REQUIRE(ctx.run_one() == 1u);
    BOOST_TEST(alive.use_count() > 2);
  }
  BOOST_TEST(!called);
  BOOST_TEST(alive.use_count() == 1);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ cancellation and policies

BOOST_AUTO_TEST_SUITE(cancellation)

BOOST_AUTO_TEST_CASE(cancelling_midway_aborts_and_keeps_the_values_so_far) {
  net::io_context ctx;
  net::cancellation_signal sig;
  std::atomic<int> sleeping = 0;
  std::optional<std::pair<std::exception_ptr, std::vector<int>>> result;
  crew::async_gather(
      ctx, sleepers(sleeping), crew::gather_options{.limit = 4},
      net::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, std::vector<int> v) {
        result.emplace(e, std::move(v));
      }));
  while (sleeping < 4) BOOST_REQUIRE(ctx.run_one() == 1u);
  ctx.poll();
  BOOST_TEST(!result);
  sig.emit(net::cancellation_type::terminal);
  ctx.run();
  BOOST_REQUIRE(result);
  BOOST_TEST(is_aborted(result->first));
  // Items 0..2 done, 3..6 running when cancelled; 7 waited for a slot and never pulled.
  BOOST_TEST((result->second == std::vector<int>{100, 101, 102, 0, 0, 0, 0}));
  BOOST_TEST(sleeping == 4);
  sig.emit(net::cancellation_type::terminal);  // after completion: harmless
}

CO_TEST_CASE(cancelling_the_awaiter_with_a_real_failure_reports_the_failure) {
  auto ex = co_await net::this_coro::executor;
  net::cancellation_signal sig;
  std::atomic<int> sleeping = 0;
  auto jobs = lazy(50, [&sleeping](int i) {
    return [&sleeping, i]() -> net::awaitable<int> {
      ++sleeping;
      if (i == 1) {
        try {
          co_await sleep_for(1h);
        } catch (...) {
        }
        throw test_error(1);  // fails while being cancelled
      }
      co_await sleep_for(1h);
      co_return i;
    };
  });
  auto op = crew::async_gather(
      ex, jobs, crew::gather_options{.limit = 3},
      net::bind_cancellation_slot(sig.slot(), net::as_tuple(net::use_awaitable)));
  net::co_spawn(
      ex,
      [&]() -> net::awaitable<void> {
        co_await crew_test::yield_until([&] { return sleeping == 3; });
        co_await yield_once();
        sig.emit(net::cancellation_type::terminal);
      },
      net::detached);
  auto [e, values] = co_await std::move(op);
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{1}));
  BOOST_TEST(values.size() <= 4u);
}

CO_TEST_CASE(cancel_on_first_cancels_the_running_items_and_stops_pulling) {
  auto ex = co_await net::this_coro::executor;
  int made = 0;
  std::atomic<int> aborted = 0;
  auto jobs = lazy(1000, [&](int i) {
    ++made;
    return [&, i]() -> net::awaitable<int> {
      if (i == 2) {
        co_await yield_n(3);
        throw test_error(2);
      }
      co_await crew_test::sleep_counting_aborts(1h, aborted);
      co_return i;
    };
  });
  crew::gather_options const options{.limit = 4, .policy = crew::failure_policy::cancel_on_first};
  auto op = crew::async_gather(ex, jobs, options, net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{2}));
  BOOST_TEST(made <= 5);
  BOOST_TEST(aborted == 3);
  BOOST_TEST(values.size() == static_cast<std::size_t>(made));
  BOOST_TEST(std::all_of(values.begin(), values.end(), [](int v) { return v == 0; }));
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ completion tokens

BOOST_AUTO_TEST_SUITE(tokens)

BOOST_AUTO_TEST_CASE(with_a_callback) {
  net::io_context ctx;
  std::optional<std::pair<std::exception_ptr, std::vector<int>>> result;
  std::vector<net::awaitable<int>> jobs;
  jobs.push_back(value_after(1, 1));
  jobs.push_back(fail_after(1, 2));
  crew::async_gather(ctx.get_executor(), std::move(jobs),
                     [&](std::exception_ptr e, std::vector<int> v) { result.emplace(e, v); });
  ctx.run();
  BOOST_REQUIRE(result);
  BOOST_TEST((failed_indexes(result->first) == std::vector<std::size_t>{1}));
  BOOST_TEST((result->second == std::vector<int>{1, 0}));
}

BOOST_AUTO_TEST_CASE(with_use_future) {
  net::io_context ctx;
  std::future<std::vector<int>> f = crew::async_gather(
      ctx, reverse_finishing_jobs(6), crew::gather_options{.limit = 2}, net::use_future);
  std::thread runner([&] { ctx.run(); });
  auto const values = f.get();
  runner.join();
  BOOST_TEST(values == tens(6), boost::test_tools::per_element());

  std::vector<net::awaitable<int>> jobs;
  jobs.push_back(fail_after(1, 5));
  std::future<std::vector<int>> g = crew::async_gather(ctx, std::move(jobs), net::use_future);
  ctx.restart();
  std::thread runner2([&] { ctx.run(); });
  BOOST_CHECK_THROW(g.get(), crew::task_errors);
  runner2.join();
}

BOOST_AUTO_TEST_CASE(with_deferred) {
  net::io_context ctx;
  int pulled = 0;
  auto jobs = lazy(3, [&](int i) {
    ++pulled;
    return value_after(1, i);
  });
  auto op = crew::async_gather(ctx, jobs, net::deferred);
  ctx.poll();
  BOOST_TEST(pulled == 0);  // nothing starts before the operation is launched
  std::vector<int> got;
  std::move(op)([&](std::exception_ptr e, std::vector<int> v) {
    BOOST_TEST(!e);
    got = std::move(v);
  });
  ctx.restart();  // the poll ran out of work
  ctx.run();
  BOOST_TEST((got == std::vector<int>{0, 1, 2}));
}

CO_TEST_CASE(with_use_awaitable_throws_task_errors) {
  auto ex = co_await net::this_coro::executor;
  std::vector<net::awaitable<int>> jobs;
  jobs.push_back(fail_after(1, 4));
  BOOST_CHECK_THROW(co_await crew::async_gather(ex, std::move(jobs), net::use_awaitable),
                    crew::task_errors);
}

CO_TEST_CASE(with_as_tuple) {
  auto ex = co_await net::this_coro::executor;
  auto op = crew::async_gather(ex, reverse_finishing_jobs(3), net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  BOOST_TEST(!e);
  BOOST_TEST(values == tens(3), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ two threads

BOOST_AUTO_TEST_SUITE(threads)

CO_TEST_CASE_MT(gather_on_two_threads_keeps_order_and_values, 2) {
  auto ex = co_await net::this_coro::executor;
  frame_counter frames;
  int const n = 20000;
  auto jobs = lazy(n, [&](int i) { return counted_job(frame_guard(frames), i, i % 3); });
  auto op = crew::async_gather(ex, jobs, crew::gather_options{.limit = 16}, net::use_awaitable);
  auto const values = co_await std::move(op);
  BOOST_REQUIRE_EQUAL(values.size(), static_cast<std::size_t>(n));
  bool ordered = true;
  for (int i = 0; i < n; ++i) ordered = ordered && values[static_cast<std::size_t>(i)] == 2 * i;
  BOOST_TEST(ordered);
  BOOST_TEST(frames.peak <= 17);
  BOOST_TEST(frames.live == 0);
}

CO_TEST_CASE_MT(failures_on_two_threads_are_all_reported_by_index, 2) {
  auto ex = co_await net::this_coro::executor;
  auto jobs =
      lazy(2000, [](int i) { return i % 100 == 7 ? fail_after(i % 3, i) : value_after(i % 3, i); });
  auto op = crew::async_gather(ex, jobs, net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  auto const failures = failures_of(e);
  BOOST_REQUIRE_EQUAL(failures.size(), 20u);
  for (auto const& f : failures) BOOST_TEST(f.as<test_error>()->n == static_cast<int>(*f.index));
  BOOST_REQUIRE_EQUAL(values.size(), 2000u);
  for (int i = 0; i < 2000; ++i)
    BOOST_TEST_REQUIRE(values[static_cast<std::size_t>(i)] == (i % 100 == 7 ? 0 : i));
}

CO_TEST_CASE_MT(cancel_on_first_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> made = 0;
  auto jobs = lazy(10000, [&](int i) {
    ++made;
    return i == 50 ? fail_after(1, 50) : value_after(i % 2, i);
  });
  crew::gather_options const options{.limit = 8, .policy = crew::failure_policy::cancel_on_first};
  auto op = crew::async_gather(ex, jobs, options, net::as_tuple(net::use_awaitable));
  auto [e, values] = co_await std::move(op);
  BOOST_TEST((failed_indexes(e) == std::vector<std::size_t>{50}));
  BOOST_TEST(made < 10000);
  BOOST_TEST(values.size() == static_cast<std::size_t>(made.load()));
  for (int i = 0; i < 40; ++i) BOOST_TEST(values[static_cast<std::size_t>(i)] == i);
}

CO_TEST_CASE_MT(cancelled_from_a_foreign_thread_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  net::cancellation_signal sig;
  std::atomic<int> sleeping = 0;
  auto op = crew::async_gather(
      ex, sleepers(sleeping), crew::gather_options{.limit = 4},
      net::bind_cancellation_slot(sig.slot(), net::as_tuple(net::use_awaitable)));
  // The signal belongs to the awaiting coroutine's strand of execution: emit from the
  // context, once four items sleep.
  net::co_spawn(
      ex,
      [&]() -> net::awaitable<void> {
        co_await crew_test::yield_until([&] { return sleeping == 4; });
        sig.emit(net::cancellation_type::terminal);
      },
      net::detached);
  auto [e, values] = co_await std::move(op);
  BOOST_TEST(is_aborted(e));
  BOOST_TEST((values == std::vector<int>{100, 101, 102, 0, 0, 0, 0}));
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ the documentation's example

namespace {

/// Stands for an HTTP GET.
net::awaitable<std::string> fetch(std::string url) {
  co_await yield_once();
  co_return "<html>" + url + "</html>";
}

}  // namespace

CO_TEST_CASE(doc_bounded_fanout) {
  std::vector<std::string> const urls{"a.example", "b.example", "c.example", "d.example"};
  //[gather_fanout
  auto ex = co_await net::this_coro::executor;
  std::vector<std::function<net::awaitable<std::string>()>> fetches;
  for (auto const& url : urls)  // a fetch's coroutine is made only when its slot frees
    fetches.push_back([&url] { return fetch(url); });
  auto op = crew::async_gather(ex, fetches, {.limit = 8, .name = "fetch"}, net::use_awaitable);
  std::vector<std::string> pages = co_await std::move(op);  // in the order of `urls`
  //]
  BOOST_REQUIRE_EQUAL(pages.size(), urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i)
    BOOST_TEST(pages[i] == "<html>" + urls[i] + "</html>");
}
