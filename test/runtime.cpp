//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The runtime's hooks, handlers, statistics and task dump, seen from every component.
// The go functions are tested in runtime_go.cpp, background workers in
// background_workers.cpp.
//
#define BOOST_TEST_MODULE crew_runtime
#include <crew/crew.hpp>
#include <crew/runtime.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "co_test.hpp"
#include "test_util.hpp"

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::captured_reports;
using crew_test::test_error;
using crew_test::yield_n;
using crew_test::yield_once;

namespace {

/// Removes the hook when it dies: every test leaves the process-wide runtime clean.
struct scoped_hook {
  crew::hook_handle h;
  ~scoped_hook() { crew::remove_hook(h); }
};

/// What the hooks saw, in order.
struct hook_log {
  struct event {
    bool start;
    std::uint64_t id;
    std::uint64_t parent;  // start: the parent's id as the hook saw it
    std::string name;
    std::string owner_kind;
    std::uint64_t current;  // this_task::id() inside the hook
    bool failed;
  };
  std::mutex mutex;
  std::vector<event> events;

  scoped_hook start_hook() {
    return {crew::on_task_start([this](crew::task_info const& parent, crew::task_info const& self) {
      std::lock_guard lock(mutex);
      events.push_back(
          {true, self.id, parent.id, self.name, self.owner_kind, crew::this_task::id(), false});
    })};
  }
  scoped_hook end_hook() {
    return {crew::on_task_end([this](crew::task_info const& self, std::exception_ptr e) {
      std::lock_guard lock(mutex);
      events.push_back({false, self.id, self.parent_id, self.name, self.owner_kind,
                        crew::this_task::id(), e != nullptr});
    })};
  }
  std::vector<event> take() {
    std::lock_guard lock(mutex);
    return std::exchange(events, {});
  }
};

std::vector<hook_log::event> of_name(std::vector<hook_log::event> const& v, std::string const& n) {
  std::vector<hook_log::event> out;
  for (auto const& e : v)
    if (e.name == n) out.push_back(e);
  return out;
}

crew::runtime_stats delta(crew::runtime_stats const& a, crew::runtime_stats const& b) {
  return {b.launched - a.launched,   b.active - a.active, b.peak_active,
          b.succeeded - a.succeeded, b.failed - a.failed, b.exceptions - a.exceptions,
          b.cancelled - a.cancelled};
}

net::awaitable<void> forever() {
  net::steady_timer t(co_await net::this_coro::executor, net::steady_timer::time_point::max());
  co_await t.async_wait(net::use_awaitable);
}

}  // namespace

// ---------------------------------------------------------------- hooks

CO_TEST_CASE(hooks_fire_once_per_task_in_order_with_the_parent) {
  auto ex = co_await net::this_coro::executor;
  hook_log log;
  std::uint64_t parent_id = 0, child_id = 0;
  {
    auto s = log.start_hook();
    auto e = log.end_hook();
    crew::task_group outer{ex};
    outer.spawn(
        [&]() -> net::awaitable<void> {
          parent_id = crew::this_task::id();
          auto inner_ex = co_await net::this_coro::executor;
          crew::task_group inner{inner_ex};
          inner.spawn(
              [&]() -> net::awaitable<void> {
                child_id = crew::this_task::id();
                co_await yield_n(3);
              },
              {.name = "child"});
          co_await inner.wait();
        },
        {.name = "parent"});
    co_await outer.wait();
  }
  auto const events = log.take();
  auto const parent = of_name(events, "parent");
  auto const child = of_name(events, "child");
  BOOST_REQUIRE_EQUAL(parent.size(), 2u);
  BOOST_REQUIRE_EQUAL(child.size(), 2u);
  BOOST_TEST(parent[0].start);
  BOOST_TEST(!parent[1].start);
  BOOST_TEST(child[0].start);
  BOOST_TEST(!child[1].start);
  BOOST_TEST(parent[0].id == parent_id);
  BOOST_TEST(parent[0].parent == 0u);  // spawned outside any crew task
  BOOST_TEST(child[0].id == child_id);
  BOOST_TEST(child[0].parent == parent_id);
  BOOST_TEST(child[1].parent == parent_id);
  // Inside a hook, this_task names the task.
  BOOST_TEST(parent[0].current == parent_id);
  BOOST_TEST(child[1].current == child_id);
  BOOST_TEST(parent[0].owner_kind == "task group");
  // Order: parent starts, child starts, child ends, parent ends.
  auto pos = [&](std::uint64_t id, bool start) {
    return std::find_if(events.begin(), events.end(),
                        [&](auto const& e) { return e.id == id && e.start == start; }) -
           events.begin();
  };
  BOOST_TEST(pos(parent_id, true) < pos(child_id, true));
  BOOST_TEST(pos(child_id, true) < pos(child_id, false));
  BOOST_TEST(pos(child_id, false) < pos(parent_id, false));
}

CO_TEST_CASE(end_hooks_hear_failures_and_cancellations) {
  auto ex = co_await net::this_coro::executor;
  std::mutex m;
  std::map<std::string, std::string> outcome;
  scoped_hook h{crew::on_task_end([&](crew::task_info const& self, std::exception_ptr e) {
    std::lock_guard lock(m);
    outcome[self.name] = e ? crew_test::what_of(e) : "ok";
  })};
  crew::task_group g{ex};
  g.spawn([]() -> net::awaitable<void> { co_return; }, {.name = "ok"});
  g.spawn([]() -> net::awaitable<void> { throw test_error(7); }, {.name = "throws"});
  g.spawn(
      []() -> net::awaitable<boost::system::error_code> {
        co_return make_error_code(boost::system::errc::io_error);
      },
      {.name = "returns"});
  g.spawn(forever(), {.name = "cancelled"});
  co_await yield_n(5);
  g.cancel();
  auto [e] = co_await g.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(static_cast<bool>(e));
  std::lock_guard lock(m);
  BOOST_TEST(outcome["ok"] == "ok");
  BOOST_TEST(outcome["throws"] == "test error 7");
  BOOST_TEST(outcome["returns"].find("Input/output error") != std::string::npos);
  BOOST_TEST(outcome["cancelled"].find("cancel") != std::string::npos);
}

namespace {

/// Owner kinds of the tasks that found themselves in the snapshot.
std::set<std::string> listed_kinds;

void find_myself() {
  for (auto const& r : crew::snapshot())
    if (r.info.id == crew::this_task::id() && r.state == crew::task_state::running)
      listed_kinds.insert(r.info.owner_kind);
}

net::awaitable<void> listed() {
  find_myself();
  co_await yield_once();
}

/// A managed task whose stages find themselves in the snapshot.
struct listed_stages {
  net::awaitable<void> initialize() { return listed(); }
  net::awaitable<void> execute() { return listed(); }
  net::awaitable<void> cleanup() { return listed(); }
};

}  // namespace

// Split in two coroutines: one frame holding every component is large enough for g++
// 12 at -O1 to warn falsely (-Wmismatched-new-delete) about Asio's frame allocator.
net::awaitable<void> run_groups_and_a_loop(net::any_io_executor ex) {
  crew::task_group g{ex};
  g.spawn(listed());
  co_await g.wait();

  crew::run_group rg{ex};
  rg.add(crew::execute(listed));
  co_await rg.run();

  crew::loop lp{ex};
  int iterations = 0;
  lp.add(crew::execute([&]() -> net::awaitable<void> {
    find_myself();
    if (++iterations == 2) lp.stop();
    co_await yield_once();
  }));
  co_await lp.run();
}

net::awaitable<void> run_a_supervisor_a_retry_and_a_manager(net::any_io_executor ex) {
  crew::supervisor sup{ex};
  sup.add("child", listed, {.restart = crew::restart::temporary});
  auto [se] = co_await sup.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!se);

  int attempts = 0;
  auto retry = crew::async_retry(
      ex,
      [&]() -> net::awaitable<void> {
        find_myself();
        if (++attempts < 2) throw test_error(1);
        co_return;
      },
      {.backoff = crew::backoff::none()}, net::as_tuple(net::use_awaitable));
  auto [re] = co_await std::move(retry);
  BOOST_TEST(!re);

  crew::task_manager tm{ex, {.allow_idle = true}};
  tm.add("stage", listed_stages{}, crew::task_kind::stop_group);
  auto [te] = co_await tm.async_run(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!te);
}

CO_TEST_CASE(hooks_stats_and_the_dump_see_the_tasks_of_every_component) {
  auto ex = co_await net::this_coro::executor;
  std::mutex m;
  std::set<std::string> kinds;
  std::size_t starts = 0;
  listed_kinds.clear();
  scoped_hook h{crew::on_task_start([&](crew::task_info const&, crew::task_info const& self) {
    std::lock_guard lock(m);
    kinds.insert(self.owner_kind);
    ++starts;
  })};
  auto const before = crew::stats();
  co_await run_groups_and_a_loop(ex);
  co_await run_a_supervisor_a_retry_and_a_manager(ex);
  auto const d = delta(before, crew::stats());
  std::lock_guard lock(m);
  for (char const* k : {"task group", "run group", "loop", "supervisor", "retry", "task manager"}) {
    BOOST_TEST(kinds.count(k) == 1u, "the hooks saw no task of a " << k);
    BOOST_TEST(listed_kinds.count(k) == 1u, "the snapshot listed no task of a " << k);
  }
  BOOST_TEST(d.launched == starts);  // the statistics count the tasks the hooks saw
  BOOST_TEST(d.launched == d.succeeded + d.failed + d.cancelled);
}

CO_TEST_CASE_MT(a_hook_removed_while_tasks_run_is_never_called_again, 2) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> calls{0};
  auto h = crew::on_task_start(
      [&](crew::task_info const&, crew::task_info const&) { calls.fetch_add(1); });
  crew::task_group g{ex};
  for (int i = 0; i < 2000; ++i) g.spawn(yield_n(2));
  co_await crew_test::yield_until([&] { return calls.load() > 10; });
  BOOST_TEST(crew::remove_hook(h));
  int const at_removal = calls.load();
  co_await g.wait();
  for (int i = 0; i < 200; ++i) g.spawn(yield_once());
  co_await g.wait();
  BOOST_TEST(calls.load() == at_removal);
  BOOST_TEST(!crew::remove_hook(h));  // removed once only
}

CO_TEST_CASE(a_hook_may_remove_itself) {
  auto ex = co_await net::this_coro::executor;
  int calls = 0;
  crew::hook_handle self;
  self = crew::on_task_start([&](crew::task_info const&, crew::task_info const&) {
    ++calls;
    BOOST_TEST(crew::remove_hook(self));
  });
  crew::task_group g{ex};
  for (int i = 0; i < 5; ++i) g.spawn(yield_once());
  co_await g.wait();
  BOOST_TEST(calls == 1);
}

CO_TEST_CASE(a_throwing_hook_is_reported_and_breaks_nothing) {
  auto ex = co_await net::this_coro::executor;
  captured_reports reports;
  int second = 0;
  scoped_hook a{crew::on_task_start(
      [](crew::task_info const&, crew::task_info const&) { throw test_error(3); })};
  scoped_hook b{
      crew::on_task_start([&](crew::task_info const&, crew::task_info const&) { ++second; })};
  scoped_hook c{
      crew::on_task_end([](crew::task_info const&, std::exception_ptr) { throw test_error(4); })};
  bool ran = false;
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    ran = true;
    co_return;
  });
  auto [e] = co_await g.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(!e);
  BOOST_TEST(ran);
  BOOST_TEST(second == 1);
  BOOST_TEST(reports.count(3) == 1);
  BOOST_TEST(reports.count(4) == 1);
  BOOST_TEST(reports.saw("start hook threw"));
  BOOST_TEST(reports.saw("end hook threw"));
}

CO_TEST_CASE(hooks_may_spawn_retire_and_add_hooks) {
  auto ex = co_await net::this_coro::executor;
  int nested_calls = 0, ends = 0;
  crew::hook_handle nested;
  bool added = false;
  scoped_hook h{crew::on_task_end([&](crew::task_info const& self, std::exception_ptr) {
    ++ends;
    if (self.name != "outer") return;
    // Adding a hook, and retiring tasks (a group destroyed with a task it never
    // started), from inside a hook.
    nested = crew::on_task_end([&](crew::task_info const&, std::exception_ptr) { ++nested_calls; });
    added = true;
    crew::task_group g{ex, {.limit = 1}};
    g.spawn(forever());
    g.spawn(forever());  // queued: withdrawn when the group dies
    g.cancel();
  })};
  crew::task_group g{ex};
  g.spawn(yield_once(), {.name = "outer"});
  co_await g.wait();
  co_await yield_n(5);
  BOOST_TEST(added);
  g.spawn(yield_once());
  co_await g.wait();
  BOOST_TEST(nested_calls >= 1);
  BOOST_TEST(crew::remove_hook(nested));
  BOOST_TEST(ends >= 4);
}

BOOST_AUTO_TEST_CASE(an_empty_hook_is_rejected) {
  BOOST_CHECK_THROW(crew::on_task_start(nullptr), std::invalid_argument);
  BOOST_CHECK_THROW(crew::on_task_end(nullptr), std::invalid_argument);
  BOOST_TEST(!crew::remove_hook(crew::hook_handle{}));
}

// ---------------------------------------------------------------- statistics

CO_TEST_CASE_MT(stats_add_up_after_100000_mixed_tasks_on_2_threads, 2) {
  auto ex = co_await net::this_coro::executor;
  auto const before = crew::stats();
  constexpr int n = 100'000;
  crew::task_group g{ex, {.keep_failures = 16}};
  captured_reports quiet;  // the group's dropped failures go nowhere
  for (int i = 0; i < 3 * n / 4; ++i) {
    switch (i % 3) {
      case 0:
        g.spawn(yield_once());
        break;
      case 1:
        g.spawn([]() -> net::awaitable<void> { throw test_error(1); });
        break;
      default:
        g.spawn([]() -> net::awaitable<boost::system::error_code> {
          co_return make_error_code(boost::system::errc::io_error);
        });
    }
  }
  auto [e] = co_await g.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(static_cast<bool>(e));
  crew::task_group sleepers{ex};
  for (int i = 0; i < n / 4; ++i) sleepers.spawn(forever());
  co_await yield_n(10);
  sleepers.cancel();
  co_await sleepers.async_wait(net::as_tuple(net::use_awaitable));
  auto const d = delta(before, crew::stats());
  BOOST_TEST(d.launched == std::uint64_t(n));
  BOOST_TEST(d.launched == d.succeeded + d.failed + d.cancelled);
  BOOST_TEST(d.succeeded == std::uint64_t(n / 4));
  BOOST_TEST(d.failed == std::uint64_t(n / 2));
  BOOST_TEST(d.exceptions == std::uint64_t(n / 4));
  BOOST_TEST(d.cancelled == std::uint64_t(n / 4));
  BOOST_TEST(d.active == 0u);
  BOOST_TEST(d.peak_active >= std::uint64_t(n / 4));
}

CO_TEST_CASE(stats_can_be_turned_off) {
  auto ex = co_await net::this_coro::executor;
  auto& rt = crew::runtime::global();
  BOOST_TEST(rt.stats_enabled());
  rt.enable_stats(false);
  auto const before = crew::stats();
  crew::task_group g{ex};
  for (int i = 0; i < 10; ++i) g.spawn(yield_once());
  co_await g.wait();
  rt.enable_stats(true);
  BOOST_TEST(crew::stats().launched == before.launched);
}

// ---------------------------------------------------------------- handlers

CO_TEST_CASE(handlers_get_the_failures_nobody_took) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::string> errors, exceptions;
  bool traced = false;
  crew::set_error_handler([&](crew::task_info const& t, std::exception_ptr e) {
    errors.push_back(t.name + ": " + crew_test::what_of(e));
  });
  crew::set_exception_handler(
      [&](crew::task_info const& t, std::exception_ptr e, boost::stacktrace::stacktrace const& st) {
        exceptions.push_back(t.name + ": " + crew_test::what_of(e));
        traced = !st.empty();
      });
  {
    // A group destroyed without a wait hands its failures to the failure path.
    crew::task_group g{ex};
    g.spawn([]() -> net::awaitable<void> { throw test_error(9); }, {.name = "thrower"});
    g.spawn(
        []() -> net::awaitable<boost::system::error_code> {
          co_return make_error_code(boost::system::errc::io_error);
        },
        {.name = "returner"});
    co_await yield_n(5);
  }
  crew::set_error_handler(nullptr);
  crew::set_exception_handler(nullptr);
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_REQUIRE_EQUAL(exceptions.size(), 1u);
  BOOST_TEST(errors[0].find("returner: ") == 0u);
  BOOST_TEST(exceptions[0] == "thrower: test error 9");
  BOOST_TEST(traced == crew::throw_site_traces());
}

CO_TEST_CASE(a_throwing_handler_breaks_nothing) {
  auto ex = co_await net::this_coro::executor;
  int calls = 0;
  crew::set_exception_handler(
      [&](crew::task_info const&, std::exception_ptr, boost::stacktrace::stacktrace const&) {
        ++calls;
        throw test_error(2);
      });
  {
    crew::task_group g{ex};
    g.spawn([]() -> net::awaitable<void> { throw test_error(1); });
    g.spawn([]() -> net::awaitable<void> { throw test_error(1); });
    co_await yield_n(5);
  }
  auto previous = crew::set_exception_handler(nullptr);
  BOOST_TEST(static_cast<bool>(previous));
  BOOST_TEST(calls == 2);
}

// ---------------------------------------------------------------- snapshot and dump

CO_TEST_CASE(the_dump_shows_a_three_level_tree) {
  auto ex = co_await net::this_coro::executor;
  std::uint64_t ids[3] = {};
  bool release = false;
  crew::task_group root{ex, {.name = "roots"}};
  root.spawn(
      [&]() -> net::awaitable<void> {
        ids[0] = crew::this_task::id();
        auto mid_ex = co_await net::this_coro::executor;
        crew::task_group mid{mid_ex, {.name = "mids"}};
        mid.spawn(
            [&]() -> net::awaitable<void> {
              ids[1] = crew::this_task::id();
              auto leaf_ex = co_await net::this_coro::executor;
              crew::task_group leaf{leaf_ex};
              leaf.spawn(
                  [&]() -> net::awaitable<void> {
                    ids[2] = crew::this_task::id();
                    // A task sees itself running.
                    auto const self = crew::snapshot();
                    auto it = std::find_if(self.begin(), self.end(),
                                           [&](auto const& r) { return r.info.id == ids[2]; });
                    BOOST_TEST((it != self.end() && it->state == crew::task_state::running));
                    co_await crew_test::yield_until([&] { return release; });
                  },
                  {.name = "leaf"});
              co_await leaf.wait();
            },
            {.name = "mid"});
        co_await mid.wait();
      },
      {.name = "top"});
  co_await crew_test::yield_until([&] { return ids[2] != 0; });

  auto const tasks = crew::snapshot();
  std::map<std::string, crew::task_record> by_name;
  for (auto const& t : tasks) by_name[t.info.name] = t;
  BOOST_REQUIRE(by_name.count("top") + by_name.count("mid") + by_name.count("leaf") == 3u);
  BOOST_TEST(by_name["top"].info.id == ids[0]);
  BOOST_TEST(by_name["mid"].info.parent_id == ids[0]);
  BOOST_TEST(by_name["leaf"].info.parent_id == ids[1]);
  BOOST_TEST(by_name["top"].info.owner_name == "roots");
  BOOST_TEST(by_name["mid"].info.owner_name == "mids");
  BOOST_TEST((by_name["top"].state == crew::task_state::suspended));
  BOOST_TEST(by_name["leaf"].info.spawn_site.line() > 0u);
  // Children inherit their parent's trace id.
  BOOST_TEST(by_name["leaf"].info.trace == by_name["top"].info.trace);

  std::ostringstream os;
  crew::dump(os);
  auto const text = os.str();
  auto const top = text.find("task " + std::to_string(ids[0]) + " 'top'");
  auto const mid = text.find("task " + std::to_string(ids[1]) + " 'mid'");
  auto const leaf = text.find("task " + std::to_string(ids[2]) + " 'leaf'");
  BOOST_REQUIRE(top != std::string::npos);
  BOOST_REQUIRE(mid != std::string::npos);
  BOOST_REQUIRE(leaf != std::string::npos);
  BOOST_TEST(top < mid);
  BOOST_TEST(mid < leaf);
  // Each level is indented two more spaces than its parent.
  auto indent = [&](std::size_t pos) { return pos - text.rfind('\n', pos) - 1; };
  BOOST_TEST(indent(mid) == indent(top) + 2);
  BOOST_TEST(indent(leaf) == indent(mid) + 2);
  BOOST_TEST(text.find("task group 'roots'") != std::string::npos);
  release = true;
  co_await root.wait();
  auto const after = crew::snapshot();
  BOOST_TEST(
      std::none_of(after.begin(), after.end(), [&](auto const& r) { return r.info.id == ids[0]; }));
}

CO_TEST_CASE(a_task_queued_behind_a_limit_is_listed_queued) {
  auto ex = co_await net::this_coro::executor;
  bool release = false;
  crew::task_group g{ex, {.limit = 1}};
  g.spawn(
      [&]() -> net::awaitable<void> { co_await crew_test::yield_until([&] { return release; }); },
      {.name = "first"});
  g.spawn(yield_once(), {.name = "second"});
  co_await yield_n(3);
  auto const tasks = crew::snapshot();
  auto second = std::find_if(tasks.begin(), tasks.end(),
                             [](auto const& r) { return r.info.name == "second"; });
  BOOST_REQUIRE(second != tasks.end());
  BOOST_TEST((second->state == crew::task_state::queued));
  release = true;
  co_await g.wait();
}

CO_TEST_CASE(tracking_can_be_turned_off) {
  auto ex = co_await net::this_coro::executor;
  auto& rt = crew::runtime::global();
  rt.enable_tracking(false);
  bool release = false;
  crew::task_group g{ex};
  g.spawn(
      [&]() -> net::awaitable<void> { co_await crew_test::yield_until([&] { return release; }); },
      {.name = "untracked"});
  rt.enable_tracking(true);  // a task is tracked as it was when made
  co_await yield_n(2);
  auto const tasks = crew::snapshot();
  BOOST_TEST(std::none_of(tasks.begin(), tasks.end(),
                          [](auto const& r) { return r.info.name == "untracked"; }));
  release = true;
  co_await g.wait();
}

BOOST_AUTO_TEST_CASE(tasks_of_a_destroyed_io_context_leave_the_registry) {
  auto const before = crew::stats();
  {
    net::io_context ctx;
    crew::task_group g{ctx};
    for (int i = 0; i < 10; ++i) g.spawn(forever(), {.name = "orphan"});
    ctx.run_for(10ms);  // all started and suspended; one is never started
    g.spawn(forever(), {.name = "orphan"});
    auto const tasks = crew::snapshot();
    BOOST_TEST(std::count_if(tasks.begin(), tasks.end(),
                             [](auto const& r) { return r.info.name == "orphan"; }) == 11);
    captured_reports quiet;
    // The group first: it cancels its tasks when destroyed; the context's death
    // destroys the rest.
  }
  auto const tasks = crew::snapshot();
  BOOST_TEST(std::none_of(tasks.begin(), tasks.end(),
                          [](auto const& r) { return r.info.name == "orphan"; }));
  auto const d = delta(before, crew::stats());
  BOOST_TEST(d.launched == 11u);
  BOOST_TEST(d.cancelled == 11u);
  BOOST_TEST(d.active == 0u);
}

BOOST_AUTO_TEST_CASE(to_string_names_every_state) {
  BOOST_TEST(std::string(crew::to_string(crew::task_state::queued)) == "queued");
  BOOST_TEST(std::string(crew::to_string(crew::task_state::running)) == "running");
  BOOST_TEST(std::string(crew::to_string(crew::task_state::suspended)) == "suspended");
}
