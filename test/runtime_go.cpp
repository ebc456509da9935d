//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The runtime's tasks: crew::go, go_with_cleanup, go_with_retry and async_with_timeout.
// Failures are captured from crew's failure path (captured_reports); timeouts race a
// tiny timeout against a task that waits forever, or a huge one against a task that
// returns at once, so that no assertion depends on how long anything takes.
//
#define BOOST_TEST_MODULE crew_runtime_go
#include <crew/detail/task.hpp>
#include <crew/runtime.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::captured_reports;
using crew_test::code_of;
using crew_test::error_number;
using crew_test::invalid_argument_of;
using crew_test::is_aborted;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_until;
using duration = crew::clock::duration;

namespace {

net::awaitable<void> succeed() {
  co_await yield_n(2);
}

net::awaitable<void> fail(int n) {
  co_await yield_n(2);
  throw test_error(n);
}

net::awaitable<boost::system::error_code> return_code(boost::system::error_code ec) {
  co_await yield_n(2);
  co_return ec;
}

net::awaitable<std::error_code> return_std_code(std::error_code ec) {
  co_await yield_n(2);
  co_return ec;
}

/// Waits an hour, counting the abort that ends the wait; then rethrows it.
net::awaitable<void> wait_forever(std::atomic<int>& aborted) {
  co_await crew_test::sleep_counting_aborts(1h, aborted);
}

/// The owner kind of the crew task running this coroutine, or "" outside any.
char const* owner_kind_here() {
  auto const* t = crew::detail::current_task();
  return t ? t->owner()->owner_kind() : "";
}

std::uint64_t task_id_here() {
  auto const* t = crew::detail::current_task();
  return t ? t->id_ : 0;
}

/// Whether `text` contains every one of `parts`.
bool mentions(std::string const& text, std::initializer_list<char const*> parts) {
  BOOST_TEST_MESSAGE(text);
  for (char const* p : parts)
    if (text.find(p) == std::string::npos) return false;
  return true;
}

/// The one failure reported, when exactly one was.
std::optional<crew::task_failure> only_failure(captured_reports const& reports) {
  auto const all = reports.reports();
  if (all.size() != 1 || all[0].failures.size() != 1) return std::nullopt;
  return all[0].failures[0];
}

}  // namespace

// ---------------------------------------------------------------- go

CO_TEST_CASE(go_runs_the_task_later_as_a_crew_task_that_nobody_waits_for) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  bool ran = false;
  char const* kind = "";
  std::uint64_t id = 0;
  crew::go(ex, [&]() -> net::awaitable<void> {
    kind = owner_kind_here();
    id = task_id_here();
    co_await yield_n(1);
    ran = true;
  });
  BOOST_TEST(!ran);  // never inside the call
  BOOST_TEST(id == 0u);
  co_await yield_until([&] { return ran; });
  BOOST_TEST(std::string(kind) == "go");
  BOOST_TEST(id != 0u);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(go_takes_every_task_shape) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  int done = 0;
  crew::go(ex, succeed());
  crew::go(ex, return_code({}));
  crew::go(ex, return_std_code({}));
  auto body = [&]() -> net::awaitable<void> {
    co_await yield_n(1);
    ++done;
  };
  crew::go(ex, body);
  crew::go(ex, std::function<net::awaitable<void>()>(body));
  net::awaitable<void> (*pointer)() = &succeed;
  crew::go(ex, pointer);
  crew::go(ex, [&]() -> net::awaitable<boost::system::error_code> {
    ++done;
    co_return boost::system::error_code();
  });
  co_await yield_n(20);
  BOOST_TEST(done == 3);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(go_reports_a_thrown_failure_with_the_tasks_identity) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::uint64_t id = 0;
  auto const site = crew::source_location::current();
  crew::go(
      ex,
      [&]() -> net::awaitable<void> {
        id = task_id_here();
        co_await yield_n(1);
        throw test_error(7);
      },
      site);
  co_await yield_until([&] { return reports.total() > 0; });
  co_await yield_n(5);
  auto const f = only_failure(reports);
  BOOST_REQUIRE(f.has_value());
  BOOST_TEST(reports.count(7) == 1);
  BOOST_TEST(std::string(reports.reports()[0].owner_kind) == "go");
  BOOST_TEST(f->id == id);
  BOOST_TEST(id != 0u);
  BOOST_TEST(f->spawn_site.line() == site.line());
  BOOST_TEST((f->stage == crew::task_stage::execute));
}

CO_TEST_CASE(go_reports_a_returned_error_code) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  crew::go(ex, return_code(net::error::connection_refused));
  co_await yield_until([&] { return reports.total() == 1; });
  crew::go(ex, return_std_code(std::make_error_code(std::errc::timed_out)));
  co_await yield_until([&] { return reports.total() == 2; });
  co_await yield_n(5);
  auto const all = reports.reports();
  BOOST_REQUIRE(all.size() == 2u);
  BOOST_TEST(code_of(all[0].failures[0].exception) == net::error::connection_refused);
  auto const* s = all[1].failures[0].as<std::system_error>();
  BOOST_REQUIRE(s != nullptr);
  BOOST_TEST((s->code() == std::errc::timed_out));
}

CO_TEST_CASE(go_reports_an_operation_aborted_it_never_asked_for) {
  // A go task is never cancelled by its owner: an abort it ends with is a failure.
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  crew::go(ex, [&]() -> net::awaitable<void> {
    co_await yield_n(1);
    throw boost::system::system_error(net::error::operation_aborted);
  });
  co_await yield_until([&] { return reports.total() == 1; });
  auto const f = only_failure(reports);
  BOOST_REQUIRE(f.has_value());
  BOOST_TEST(is_aborted(f->exception));
}

CO_TEST_CASE(go_is_a_child_of_the_task_that_called_it) {
  auto ex = co_await net::this_coro::executor;
  std::uint64_t parent = 0, seen_parent = 0;
  bool done = false;
  crew::go(ex, [&]() -> net::awaitable<void> {
    parent = task_id_here();
    crew::go(ex, [&]() -> net::awaitable<void> {
      seen_parent = crew::detail::current_task()->parent_id_;
      done = true;
      co_return;
    });
    co_return;
  });
  co_await yield_until([&] { return done; });
  BOOST_TEST(parent != 0u);
  BOOST_TEST(seen_parent == parent);
}

CO_TEST_CASE(go_refuses_a_task_that_cannot_run) {
  auto ex = co_await net::this_coro::executor;
  auto moved = succeed();
  auto taken = std::move(moved);
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go(ex, std::move(moved)); }),
                      {"crew::go", "moved from"}));
  net::awaitable<void> (*null)() = nullptr;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go(ex, null); }),
                      {"crew::go", "null function pointer"}));
  std::function<net::awaitable<void>()> empty;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go(ex, empty); }),
                      {"crew::go", "empty std::function"}));
  co_await std::move(taken);
}

BOOST_AUTO_TEST_CASE(go_tasks_of_a_destroyed_context_go_quietly) {
  captured_reports reports;
  std::atomic<int> aborted{0};
  auto token = std::make_shared<int>(0);
  {
    net::io_context ctx;
    // Suspended on a timer, and never started at all.
    crew::go(ctx.get_executor(),
             [&, token]() -> net::awaitable<void> { co_await wait_forever(aborted); });
    ctx.poll();
    crew::go(ctx.get_executor(), [token]() -> net::awaitable<void> {
      throw test_error(1);
      co_return;
    });
    BOOST_TEST(token.use_count() == 3);
  }
  BOOST_TEST(token.use_count() == 1);  // both frames were destroyed
  BOOST_TEST(reports.total() == 0u);
  BOOST_TEST(aborted == 0);
}

CO_TEST_CASE_MT(ten_thousand_go_tasks_on_two_threads_report_each_failure_once, 2) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  constexpr int n = 10000;
  std::atomic<int> ended{0};
  for (int i = 0; i < n; ++i) {
    crew::go(ex, [i, &ended]() -> net::awaitable<void> {
      co_await yield_n(i % 3);
      ended.fetch_add(1);
      if (i % 2 == 0) throw test_error(i);
    });
  }
  co_await yield_until([&] { return reports.total() >= n / 2 && ended == n; });
  co_await yield_n(10);
  std::vector<int> seen(n, 0);
  for (auto const& r : reports.reports())
    for (auto const& f : r.failures)
      if (auto const* t = f.as<test_error>()) ++seen[static_cast<std::size_t>(t->n)];
  int wrong = 0;
  for (int i = 0; i < n; ++i)
    if (seen[static_cast<std::size_t>(i)] != (i % 2 == 0 ? 1 : 0)) ++wrong;
  BOOST_TEST(wrong == 0);
  BOOST_TEST(reports.total() == std::size_t(n / 2));
}

// ---------------------------------------------------------------- go_with_cleanup

CO_TEST_CASE(cleanup_runs_once_after_a_task_that_succeeded) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::vector<std::string> order;
  crew::go_with_cleanup(
      ex,
      [&]() -> net::awaitable<void> {
        co_await yield_n(2);
        order.push_back("task");
      },
      [&] { order.push_back("cleanup"); });
  BOOST_TEST(order.empty());
  co_await yield_n(20);
  BOOST_TEST((order == std::vector<std::string>{"task", "cleanup"}));
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(cleanup_runs_once_after_a_failure_which_is_reported_first) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  int cleanups = 0;
  std::size_t reported_before_cleanup = 99;
  crew::go_with_cleanup(ex, fail(3), [&] {
    reported_before_cleanup = reports.total();
    ++cleanups;
  });
  crew::go_with_cleanup(ex, return_code(net::error::host_unreachable), [&] { ++cleanups; });
  co_await yield_n(20);
  BOOST_TEST(cleanups == 2);
  BOOST_TEST(reported_before_cleanup == 1u);
  BOOST_TEST(reports.count(3) == 1);
  BOOST_TEST(reports.total() == 2u);
  bool code_seen = false;
  for (auto const& r : reports.reports()) {
    BOOST_TEST(std::string(r.owner_kind) == "go");
    for (auto const& f : r.failures)
      code_seen = code_seen || code_of(f.exception) == net::error::host_unreachable;
  }
  BOOST_TEST(code_seen);
}

CO_TEST_CASE(a_throwing_cleanup_is_reported_at_stage_cleanup_and_never_escapes) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::uint64_t id = 0;
  auto const site = crew::source_location::current();
  crew::go_with_cleanup(
      ex,
      [&]() -> net::awaitable<void> {
        id = task_id_here();
        co_await yield_n(1);
        throw test_error(1);
      },
      [] { throw test_error(2); }, site);
  co_await yield_until([&] { return reports.total() == 2; });
  co_await yield_n(5);
  auto const all = reports.reports();
  BOOST_REQUIRE(all.size() == 2u);
  auto const& task = all[0].failures.at(0);
  auto const& cleanup = all[1].failures.at(0);
  BOOST_TEST(error_number(task.exception) == 1);
  BOOST_TEST((task.stage == crew::task_stage::execute));
  BOOST_TEST(error_number(cleanup.exception) == 2);
  BOOST_TEST((cleanup.stage == crew::task_stage::cleanup));
  BOOST_TEST(cleanup.id == id);
  BOOST_TEST(cleanup.spawn_site.line() == site.line());
  BOOST_TEST(crew::to_string(cleanup).find("(cleanup)") != std::string::npos);
}

CO_TEST_CASE(cleanup_runs_after_a_task_that_ended_with_its_own_abort) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  int cleanups = 0;
  crew::go_with_cleanup(
      ex,
      [&]() -> net::awaitable<void> {
        co_await yield_n(1);
        throw boost::system::system_error(net::error::operation_aborted);
      },
      [&] { ++cleanups; });
  co_await yield_n(10);
  BOOST_TEST(cleanups == 1);
  BOOST_TEST(reports.total() == 1u);
}

BOOST_AUTO_TEST_CASE(cleanup_runs_once_when_the_context_is_destroyed) {
  captured_reports reports;
  std::atomic<int> aborted{0};
  int suspended_cleanups = 0, unstarted_cleanups = 0;
  bool unstarted_ran = false;
  auto token = std::make_shared<int>(0);
  {
    net::io_context ctx;
    crew::go_with_cleanup(
        ctx.get_executor(),
        [&, token]() -> net::awaitable<void> { co_await wait_forever(aborted); },
        [&, token] { ++suspended_cleanups; });
    ctx.poll();
    BOOST_TEST(suspended_cleanups == 0);
    crew::go_with_cleanup(
        ctx.get_executor(),
        [&, token]() -> net::awaitable<void> {
          unstarted_ran = true;
          co_return;
        },
        [&, token] { ++unstarted_cleanups; });
    BOOST_TEST(token.use_count() == 5);
  }
  BOOST_TEST(suspended_cleanups == 1);
  BOOST_TEST(unstarted_cleanups == 1);
  BOOST_TEST(!unstarted_ran);
  BOOST_TEST(token.use_count() == 1);  // bodies and cleanups destroyed
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(go_with_cleanup_refuses_a_task_that_cannot_run_and_never_calls_the_cleanup) {
  auto ex = co_await net::this_coro::executor;
  int cleanups = 0;
  auto token = std::make_shared<int>(0);
  auto cleanup = [&, token] { ++cleanups; };
  auto moved = succeed();
  auto taken = std::move(moved);
  BOOST_TEST(
      mentions(invalid_argument_of([&] { crew::go_with_cleanup(ex, std::move(moved), cleanup); }),
               {"crew::go_with_cleanup", "moved from"}));
  net::awaitable<void> (*null)() = nullptr;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_cleanup(ex, null, cleanup); }),
                      {"crew::go_with_cleanup", "null function pointer"}));
  std::function<net::awaitable<void>()> empty;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_cleanup(ex, empty, cleanup); }),
                      {"crew::go_with_cleanup", "empty std::function"}));
  co_await std::move(taken);
  co_await yield_n(5);
  BOOST_TEST(cleanups == 0);
  BOOST_TEST(token.use_count() == 2);  // `cleanup` itself; no copy was kept
}

CO_TEST_CASE(a_move_only_cleanup) {
  auto ex = co_await net::this_coro::executor;
  int cleanups = 0;
  auto owned = std::make_unique<int>(41);
  crew::go_with_cleanup(ex, succeed(), [&, p = std::move(owned)] { cleanups += *p + 1; });
  co_await yield_n(10);
  BOOST_TEST(cleanups == 42);
}

CO_TEST_CASE_MT(ten_thousand_cleanups_on_two_threads_each_run_once, 2) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  constexpr int n = 10000;
  std::vector<std::atomic<int>> cleanups(n);
  std::atomic<int> total{0};
  for (int i = 0; i < n; ++i) {
    crew::go_with_cleanup(
        ex,
        [i]() -> net::awaitable<void> {
          co_await yield_n(i % 3);
          if (i % 2 == 1) throw test_error(i);
        },
        [i, &cleanups, &total] {
          cleanups[static_cast<std::size_t>(i)].fetch_add(1);
          total.fetch_add(1);
        });
  }
  co_await yield_until([&] { return total == n; });
  co_await yield_n(10);
  int wrong = 0;
  for (auto const& c : cleanups)
    if (c != 1) ++wrong;
  BOOST_TEST(wrong == 0);
  BOOST_TEST(reports.total() == std::size_t(n / 2));
}

// ---------------------------------------------------------------- go_with_retry

namespace {

/// An attempt factory failing its first `failures` attempts, thrown or returned.
struct flaky {
  int failures;
  bool return_codes;
  std::shared_ptr<std::vector<std::uint64_t>> attempt_ids =
      std::make_shared<std::vector<std::uint64_t>>();

  net::awaitable<boost::system::error_code> operator()() const {
    attempt_ids->push_back(task_id_here());
    int const n = static_cast<int>(attempt_ids->size());
    co_await yield_n(1);
    if (n <= failures) {
      if (return_codes) co_return net::error::connection_reset;
      throw test_error(n);
    }
    co_return boost::system::error_code();
  }
};

}  // namespace

CO_TEST_CASE(go_with_retry_tries_again_until_an_attempt_succeeds) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  flaky f{2, false};
  auto ids = f.attempt_ids;
  crew::go_with_retry(ex, f, 5, 0ns);
  BOOST_TEST(ids->empty());  // never inside the call
  co_await yield_until([&] { return ids->size() == 3; });
  co_await yield_n(10);
  BOOST_TEST(ids->size() == 3u);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(go_with_retry_waits_between_attempts_and_may_try_forever) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  flaky f{4, false};
  auto ids = f.attempt_ids;
  crew::go_with_retry(ex, f, crew::unlimited, 1ms);
  co_await yield_until([&] { return ids->size() == 5; });
  co_await yield_n(10);
  BOOST_TEST(ids->size() == 5u);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(go_with_retry_reports_only_the_last_failure_with_its_attempts_identity) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  flaky f{10, false};
  auto ids = f.attempt_ids;
  auto const site = crew::source_location::current();
  crew::go_with_retry(ex, f, 3, 0ns, site);
  co_await yield_until([&] { return reports.total() > 0; });
  co_await yield_n(10);
  BOOST_REQUIRE(ids->size() == 3u);
  auto const f3 = only_failure(reports);
  BOOST_REQUIRE(f3.has_value());
  BOOST_TEST(std::string(reports.reports()[0].owner_kind) == "go");
  BOOST_TEST(error_number(f3->exception) == 3);
  BOOST_TEST(f3->id == ids->back());
  BOOST_TEST(f3->id != 0u);
  BOOST_TEST(f3->name == "attempt 3");
  BOOST_TEST(f3->spawn_site.line() == site.line());
}

CO_TEST_CASE(go_with_retry_reports_a_returned_code_and_a_throwing_factory) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  flaky f{10, true};
  auto ids = f.attempt_ids;
  crew::go_with_retry(ex, f, 2, 0ns);
  co_await yield_until([&] { return reports.total() == 1; });
  BOOST_TEST(ids->size() == 2u);
  auto const first = only_failure(reports);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(code_of(first->exception) == net::error::connection_reset);

  // What the factory itself throws fails the attempt.
  int calls = 0;
  crew::go_with_retry(
      ex,
      [&]() -> net::awaitable<void> {
        ++calls;
        throw test_error(calls);
      },
      2, 0ns);
  co_await yield_until([&] { return reports.total() == 2; });
  co_await yield_n(10);
  BOOST_TEST(calls == 2);
  BOOST_TEST(reports.count(2) == 1);
  BOOST_TEST(reports.count(1) == 0);
}

CO_TEST_CASE(go_with_retry_refuses_bad_input_before_anything_starts) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  int calls = 0;
  auto factory = [&]() -> net::awaitable<void> {
    ++calls;
    co_return;
  };
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_retry(ex, factory, 0, 0ns); }),
                      {"crew::go_with_retry", "attempts", "0"}));
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_retry(ex, factory, 3, -1ms); }),
                      {"crew::go_with_retry", "delay", "-1 ms"}));
  BOOST_TEST(
      mentions(invalid_argument_of([&] { crew::go_with_retry(ex, factory, 3, duration::min()); }),
               {"delay", "duration::min()"}));
  net::awaitable<void> (*null)() = nullptr;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_retry(ex, null, 3, 0ns); }),
                      {"crew::go_with_retry", "null function pointer"}));
  std::function<net::awaitable<void>()> empty;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::go_with_retry(ex, empty, 3, 0ns); }),
                      {"crew::go_with_retry", "empty std::function"}));
  co_await yield_n(10);
  BOOST_TEST(calls == 0);
  BOOST_TEST(reports.total() == 0u);
}

BOOST_AUTO_TEST_CASE(go_with_retry_of_a_destroyed_context_goes_quietly) {
  captured_reports reports;
  std::atomic<int> aborted{0};
  auto token = std::make_shared<int>(0);
  int waiting_calls = 0;
  {
    net::io_context ctx;
    // One waits an hour between attempts, one is in an attempt that waits forever.
    crew::go_with_retry(
        ctx.get_executor(),
        [&, token]() -> net::awaitable<void> {
          ++waiting_calls;
          throw test_error(1);
          co_return;
        },
        5, 1h);
    crew::go_with_retry(
        ctx.get_executor(),
        [&, token]() -> net::awaitable<void> { co_await wait_forever(aborted); }, 5, 0ns);
    ctx.poll();
    BOOST_TEST(waiting_calls == 1);
    BOOST_TEST(token.use_count() == 3);
  }
  BOOST_TEST(token.use_count() == 1);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE_MT(many_go_with_retry_on_two_threads_report_each_last_failure_once, 2) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  constexpr int n = 1000;
  std::atomic<int> attempts{0};
  for (int i = 0; i < n; ++i) {
    auto tries = std::make_shared<int>(0);
    crew::go_with_retry(
        ex,
        [i, tries, &attempts]() -> net::awaitable<void> {
          attempts.fetch_add(1);
          int const k = ++*tries;
          co_await yield_n(k % 2);
          // Even ones fail every attempt; odd ones succeed at the third.
          if (i % 2 == 0 || k < 3) throw test_error(k == 3 ? i : -1);
        },
        3, 0ns);
  }
  co_await yield_until([&] { return attempts == 3 * n && reports.total() >= n / 2; });
  co_await yield_n(10);
  std::vector<int> seen(n, 0);
  int other = 0;
  for (auto const& r : reports.reports())
    for (auto const& f : r.failures)
      if (int const k = error_number(f.exception); k >= 0)
        ++seen[static_cast<std::size_t>(k)];
      else
        ++other;
  int wrong = 0;
  for (int i = 0; i < n; ++i)
    if (seen[static_cast<std::size_t>(i)] != (i % 2 == 0 ? 1 : 0)) ++wrong;
  BOOST_TEST(wrong == 0);
  BOOST_TEST(other == 0);
}

// ---------------------------------------------------------------- async_with_timeout

CO_TEST_CASE(with_timeout_completes_with_the_outcome_of_a_task_that_ends_in_time) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::vector<std::optional<std::exception_ptr>> results(4);
  crew::async_with_timeout(ex, succeed(), 1h, [&](std::exception_ptr e) { results[0] = e; });
  crew::async_with_timeout(ex, fail(5), 1h, [&](std::exception_ptr e) { results[1] = e; });
  crew::async_with_timeout(ex, return_code(net::error::connection_refused), 1h,
                           [&](std::exception_ptr e) { results[2] = e; });
  crew::async_with_timeout(ex, return_std_code(std::make_error_code(std::errc::timed_out)), 1h,
                           [&](std::exception_ptr e) { results[3] = e; });
  for (auto const& r : results) BOOST_TEST(!r.has_value());  // never inside the call
  co_await yield_until([&] {
    for (auto const& r : results)
      if (!r) return false;
    return true;
  });
  BOOST_TEST(!*results[0]);
  BOOST_TEST(error_number(*results[1]) == 5);
  BOOST_TEST(code_of(*results[2]) == net::error::connection_refused);
  auto const* s = crew::detail::exception_cast<std::system_error>(*results[3]);
  BOOST_REQUIRE(s != nullptr);
  BOOST_TEST((s->code() == std::errc::timed_out));
  co_await yield_n(5);
  BOOST_TEST(reports.total() == 0u);  // the failures were delivered, not reported
}

CO_TEST_CASE(with_timeout_runs_a_crew_task_child_of_the_caller) {
  auto ex = co_await net::this_coro::executor;
  std::string kind;
  std::uint64_t parent = 0, seen_parent = 0;
  std::optional<std::exception_ptr> result;
  crew::go(ex, [&]() -> net::awaitable<void> {
    parent = task_id_here();
    crew::async_with_timeout(
        ex,
        [&]() -> net::awaitable<void> {
          kind = owner_kind_here();
          seen_parent = crew::detail::current_task()->parent_id_;
          co_return;
        },
        1h, [&](std::exception_ptr e) { result = e; });
    co_return;
  });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!*result);
  BOOST_TEST(kind == "async_with_timeout");
  BOOST_TEST(parent != 0u);
  BOOST_TEST(seen_parent == parent);
}

CO_TEST_CASE(a_timeout_cancels_the_task_and_completes_once_it_ended) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::atomic<int> aborted{0};
  int aborted_at_completion = -1;
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(ex, wait_forever(aborted), 1ms, [&](std::exception_ptr e) {
    aborted_at_completion = aborted;
    result = e;
  });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST((code_of(*result) == crew::error::timed_out));
  BOOST_TEST(aborted_at_completion == 1);  // the task ended first
  co_await yield_n(5);
  BOOST_TEST(reports.total() == 0u);  // its abort is no failure
}

CO_TEST_CASE(a_zero_timeout_cancels_the_task_before_its_body_runs_or_at_its_first_wait) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> aborted{0};
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(ex, wait_forever(aborted), 0ns,
                           [&](std::exception_ptr e) { result = e; });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST((code_of(*result) == crew::error::timed_out));
}

CO_TEST_CASE(a_timed_out_task_that_fails_otherwise_reaches_the_failure_path) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::optional<std::exception_ptr> result;
  std::uint64_t id = 0;
  auto const site = crew::source_location::current();
  crew::async_with_timeout(
      ex,
      [&]() -> net::awaitable<void> {
        id = task_id_here();
        try {
          co_await crew_test::sleep_for(1h);
        } catch (boost::system::system_error const&) {
          throw test_error(9);  // fails while stopping
        }
      },
      1ms, [&](std::exception_ptr e) { result = e; }, site);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST((code_of(*result) == crew::error::timed_out));
  co_await yield_until([&] { return reports.total() > 0; });
  auto const f = only_failure(reports);
  BOOST_REQUIRE(f.has_value());
  BOOST_TEST(error_number(f->exception) == 9);
  BOOST_TEST(f->id == id);
  BOOST_TEST(f->spawn_site.line() == site.line());
  BOOST_TEST(std::string(reports.reports()[0].owner_kind) == "async_with_timeout");
}

CO_TEST_CASE(a_timed_out_task_that_swallows_the_cancellation_still_times_out) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  std::optional<std::exception_ptr> result;
  bool returned = false;
  crew::async_with_timeout(
      ex,
      [&]() -> net::awaitable<void> {
        try {
          co_await crew_test::sleep_for(1h);
        } catch (boost::system::system_error const&) {
        }
        returned = true;
      },
      1ms, [&](std::exception_ptr e) { result = e; });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(returned);
  BOOST_TEST((code_of(*result) == crew::error::timed_out));
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(a_timeout_of_duration_max_never_fires) {
  auto ex = co_await net::this_coro::executor;
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(
      ex,
      [&]() -> net::awaitable<void> {
        co_await yield_n(200);
        throw test_error(4);
      },
      duration::max(), [&](std::exception_ptr e) { result = e; });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(error_number(*result) == 4);
  // Nearly max() saturates too: the deadline is never reached.
  result.reset();
  crew::async_with_timeout(ex, succeed(), duration::max() - 1ns,
                           [&](std::exception_ptr e) { result = e; });
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(!*result);
}

CO_TEST_CASE(with_timeout_refuses_bad_input_before_anything_starts) {
  auto ex = co_await net::this_coro::executor;
  bool ran = false, called = false;
  auto task = [&]() -> net::awaitable<void> {
    ran = true;
    co_return;
  };
  auto handler = [&](std::exception_ptr) { called = true; };
  BOOST_TEST(
      mentions(invalid_argument_of([&] { crew::async_with_timeout(ex, task, -1ns, handler); }),
               {"crew::async_with_timeout", "timeout", "-1 ns"}));
  BOOST_TEST(mentions(
      invalid_argument_of([&] { crew::async_with_timeout(ex, task, duration::min(), handler); }),
      {"timeout", "duration::min()"}));
  auto moved = succeed();
  auto taken = std::move(moved);
  BOOST_TEST(mentions(
      invalid_argument_of([&] { crew::async_with_timeout(ex, std::move(moved), 1h, handler); }),
      {"crew::async_with_timeout", "moved from"}));
  net::awaitable<void> (*null)() = nullptr;
  BOOST_TEST(mentions(invalid_argument_of([&] { crew::async_with_timeout(ex, null, 1h, handler); }),
                      {"crew::async_with_timeout", "null function pointer"}));
  std::function<net::awaitable<void>()> empty;
  BOOST_TEST(
      mentions(invalid_argument_of([&] { crew::async_with_timeout(ex, empty, 1h, handler); }),
               {"crew::async_with_timeout", "empty std::function"}));

  // With use_awaitable the checks are made in the awaiting coroutine, never inside
  // Asio's initiation, where the exception would escape io_context::run().
  bool thrown = false;
  try {
    co_await crew::async_with_timeout(task, -1ms, net::use_awaitable);
  } catch (std::invalid_argument const&) {
    thrown = true;
  }
  BOOST_TEST(thrown);

  co_await std::move(taken);
  co_await yield_n(10);
  BOOST_TEST(!ran);
  BOOST_TEST(!called);
}

CO_TEST_CASE(with_timeout_and_use_awaitable_with_and_without_an_executor) {
  auto ex = co_await net::this_coro::executor;
  auto op = crew::async_with_timeout(ex, succeed(), 1h, net::use_awaitable);
  co_await std::move(op);
  auto op2 = crew::async_with_timeout(succeed(), 1h, net::use_awaitable);
  co_await std::move(op2);

  auto op3 = crew::async_with_timeout(ex, fail(2), 1h, net::use_awaitable);
  BOOST_CHECK_EXCEPTION(co_await std::move(op3), test_error,
                        [](test_error const& e) { return e.n == 2; });

  std::atomic<int> aborted{0};
  auto op4 = crew::async_with_timeout(wait_forever(aborted), 1ms, net::use_awaitable);
  BOOST_CHECK_EXCEPTION(
      co_await std::move(op4), boost::system::system_error,
      [](boost::system::system_error const& e) { return e.code() == crew::error::timed_out; });
  BOOST_TEST(aborted == 1);

  auto op5 = crew::async_with_timeout(ex, fail(3), 1h, net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op5);
  BOOST_TEST(error_number(e) == 3);
}

BOOST_AUTO_TEST_CASE(with_timeout_and_use_future_on_a_context_running_elsewhere) {
  net::io_context ctx;
  auto work = net::make_work_guard(ctx);
  std::thread runner([&] { ctx.run(); });
  auto const ex = ctx.get_executor();
  auto ok = crew::async_with_timeout(ex, succeed(), 1h, net::use_future);
  auto failed = crew::async_with_timeout(ex, fail(6), 1h, net::use_future);
  std::atomic<int> aborted{0};
  auto timed_out = crew::async_with_timeout(ex, wait_forever(aborted), 1ms, net::use_future);
  BOOST_CHECK_NO_THROW(ok.get());
  BOOST_CHECK_EXCEPTION(failed.get(), test_error, [](test_error const& e) { return e.n == 6; });
  BOOST_CHECK_EXCEPTION(
      timed_out.get(), boost::system::system_error,
      [](boost::system::system_error const& e) { return e.code() == crew::error::timed_out; });
  BOOST_TEST(aborted == 1);
  work.reset();
  runner.join();
}

CO_TEST_CASE(with_timeout_completes_through_the_handlers_executor) {
  auto ex = co_await net::this_coro::executor;
  auto strand = net::make_strand(ex);
  bool on_strand = false;
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(ex, succeed(), 1h, net::bind_executor(strand, [&](std::exception_ptr e) {
                             on_strand = strand.running_in_this_thread();
                             result = e;
                           }));
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(on_strand);
}

CO_TEST_CASE(cancelling_the_operation_cancels_the_task_and_completes_with_its_outcome) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  net::cancellation_signal signal;
  std::atomic<int> aborted{0};
  int aborted_at_completion = -1;
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(ex, wait_forever(aborted), 1h,
                           net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                             aborted_at_completion = aborted;
                             result = e;
                           }));
  co_await yield_n(5);
  BOOST_TEST(!result.has_value());
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(is_aborted(*result));
  BOOST_TEST(aborted_at_completion == 1);
  signal.emit(net::cancellation_type::terminal);  // after completion: nothing happens
  co_await yield_n(5);
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE(every_cancellation_type_cancels_the_task_terminally) {
  auto ex = co_await net::this_coro::executor;
  for (auto type : {net::cancellation_type::partial, net::cancellation_type::total,
                    net::cancellation_type::terminal}) {
    net::cancellation_signal signal;
    bool terminal = false;
    std::optional<std::exception_ptr> result;
    crew::async_with_timeout(
        ex,
        [&]() -> net::awaitable<void> {
          auto cs = co_await net::this_coro::cancellation_state;
          try {
            co_await crew_test::sleep_for(1h);
          } catch (boost::system::system_error const&) {
            terminal =
                (cs.cancelled() & net::cancellation_type::terminal) != net::cancellation_type::none;
            throw;
          }
        },
        1h, net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
    co_await yield_n(5);
    signal.emit(type);
    co_await yield_until([&] { return result.has_value(); });
    BOOST_TEST(is_aborted(*result));
    BOOST_TEST(terminal);
  }
}

CO_TEST_CASE(a_cancelled_task_that_fails_otherwise_completes_with_that_failure) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  net::cancellation_signal signal;
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(
      ex,
      [&]() -> net::awaitable<void> {
        try {
          co_await crew_test::sleep_for(1h);
        } catch (boost::system::system_error const&) {
          throw test_error(8);
        }
      },
      1h, net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
  co_await yield_n(5);
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(error_number(*result) == 8);
  BOOST_TEST(reports.total() == 0u);  // delivered, not reported
}

CO_TEST_CASE(cancelled_before_the_task_started_its_body_never_runs) {
  auto ex = co_await net::this_coro::executor;
  net::cancellation_signal signal;
  bool ran = false;
  std::optional<std::exception_ptr> result;
  crew::async_with_timeout(
      ex,
      [&]() -> net::awaitable<void> {
        ran = true;
        co_await crew_test::sleep_for(1h);
      },
      1h, net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { result = e; }));
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return result.has_value(); });
  BOOST_TEST(is_aborted(*result));
  BOOST_TEST(!ran);
}

CO_TEST_CASE(cancelling_the_awaiting_coroutine_cancels_the_task) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> aborted{0};
  bool completed = false;
  net::cancellation_signal signal;
  net::co_spawn(
      ex,
      [&]() -> net::awaitable<void> {
        auto op = crew::async_with_timeout(wait_forever(aborted), 1h, net::use_awaitable);
        co_await std::move(op);
      },
      net::bind_cancellation_slot(signal.slot(),
                                  [&](std::exception_ptr e) { completed = is_aborted(e); }));
  co_await yield_n(5);
  signal.emit(net::cancellation_type::terminal);
  co_await yield_until([&] { return completed; });
  BOOST_TEST(aborted == 1);
}

BOOST_AUTO_TEST_CASE(destroying_the_context_with_a_timeout_pending_frees_everything) {
  captured_reports reports;
  std::atomic<int> aborted{0};
  auto token = std::make_shared<int>(0);
  int called = 0;
  {
    net::io_context ctx;
    auto const ex = ctx.get_executor();
    // Suspended with its wait pending; suspended without a wait (max); never started.
    crew::async_with_timeout(
        ex, [&, token]() -> net::awaitable<void> { co_await wait_forever(aborted); }, 1h,
        [&, token](std::exception_ptr) { ++called; });
    crew::async_with_timeout(
        ex, [&, token]() -> net::awaitable<void> { co_await wait_forever(aborted); },
        duration::max(), [&, token](std::exception_ptr) { ++called; });
    ctx.poll();
    crew::async_with_timeout(
        ex, [&, token]() -> net::awaitable<void> { co_await wait_forever(aborted); }, 1ms,
        [&, token](std::exception_ptr) { ++called; });
    BOOST_TEST(token.use_count() == 7);
  }
  BOOST_TEST(token.use_count() == 1);
  BOOST_TEST(called == 0);
  BOOST_TEST(reports.total() == 0u);
}

BOOST_AUTO_TEST_CASE(a_future_whose_context_was_destroyed_never_hangs) {
  std::future<void> fut;
  {
    net::io_context doomed;
    std::atomic<int> aborted{0};
    fut =
        crew::async_with_timeout(doomed.get_executor(), wait_forever(aborted), 1h, net::use_future);
    doomed.poll();
    BOOST_TEST(!crew_test::ready(fut));
  }
  // The handler went with the context: the promise is broken, not left pending.
  BOOST_REQUIRE(crew_test::ready(fut));
  BOOST_CHECK_EXCEPTION(fut.get(), std::future_error, [](std::future_error const& e) {
    return e.code() == std::future_errc::broken_promise;
  });
}

CO_TEST_CASE_MT(timeouts_racing_task_ends_on_two_threads_complete_once_each, 2) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  constexpr int n = 2000;
  std::vector<std::atomic<int>> completions(n);
  std::atomic<int> total{0}, timed_out{0}, succeeded{0}, aborted{0};
  for (int i = 0; i < n; ++i) {
    auto handler = [i, &completions, &total, &timed_out, &succeeded](std::exception_ptr e) {
      completions[static_cast<std::size_t>(i)].fetch_add(1);
      if (!e)
        succeeded.fetch_add(1);
      else if (code_of(e) == crew::error::timed_out)
        timed_out.fetch_add(1);
      total.fetch_add(1);
    };
    if (i % 2 == 0)  // races: a task ending as its timeout fires
      crew::async_with_timeout(
          ex, [i]() -> net::awaitable<void> { co_await yield_n(i % 4); },
          std::chrono::microseconds(i % 7), handler);
    else  // always times out
      crew::async_with_timeout(ex, wait_forever(aborted), std::chrono::microseconds(i % 5),
                               handler);
  }
  co_await yield_until([&] { return total == n; });
  co_await yield_n(10);
  int wrong = 0;
  for (auto const& c : completions)
    if (c != 1) ++wrong;
  BOOST_TEST(wrong == 0);
  BOOST_TEST(timed_out + succeeded == n);
  BOOST_TEST(timed_out >= n / 2);
  BOOST_TEST(aborted <= n / 2);  // a task cancelled before its first step never ran
  BOOST_TEST(reports.total() == 0u);
}

CO_TEST_CASE_MT(cancellations_racing_timeouts_on_two_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  constexpr int n = 500;
  std::atomic<int> total{0}, bad{0}, aborted{0};
  std::vector<std::unique_ptr<net::cancellation_signal>> signals;
  for (int i = 0; i < n; ++i) {
    signals.push_back(std::make_unique<net::cancellation_signal>());
    crew::async_with_timeout(
        ex, wait_forever(aborted), std::chrono::microseconds(i % 3),
        net::bind_cancellation_slot(signals.back()->slot(), [&](std::exception_ptr e) {
          if (!is_aborted(e) && code_of(e) != crew::error::timed_out) bad.fetch_add(1);
          total.fetch_add(1);
        }));
  }
  // Emitted on this coroutine's thread, as Asio requires of a signal, while the other
  // thread starts tasks and fires timers.
  for (std::size_t i = 0; i < signals.size(); ++i) {
    signals[i]->emit(net::cancellation_type::terminal);
    if (i % 50 == 0) co_await yield_n(1);
  }
  co_await yield_until([&] { return total == n; });
  BOOST_TEST(bad == 0);
  co_await yield_n(10);
  BOOST_TEST(total == n);  // and not more
}
