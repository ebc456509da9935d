//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task layer is the one seam where every crew task starts and ends: a group's
// task, a run group's actor, a loop's iteration, a supervisor's child, a retry's
// attempt. Each has an id, a name, a spawn site, an owner (kind and name) and a parent.
//
#define BOOST_TEST_MODULE crew_task_layer
#include <crew/crew.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/restart.hpp>
#include <crew/detail/task.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::test_error;

namespace {

/// What a task knows of itself through the task layer.
struct identity {
  std::uint64_t id = 0;
  std::uint64_t parent = 0;
  std::string name;
  std::uint_least32_t line = 0;
  std::string owner_kind;
  std::string owner_name;
};

identity current() {
  auto const* t = crew::detail::current_task();
  BOOST_REQUIRE(t);
  return {t->id_,
          t->parent_id_,
          t->name_,
          t->site_.line(),
          t->owner()->owner_kind(),
          t->owner()->owner_name()};
}

/// Records the identity of each run, then does `then`.
struct recorder {
  std::mutex mutex;
  std::vector<identity> seen;
  void record() {
    auto i = current();
    std::lock_guard lock(mutex);
    seen.push_back(std::move(i));
  }
};

/// The test's own identity: the body runs inside a group's task, so that parents show.
template <class F>
net::awaitable<void> inside_a_task(F body) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group outer{ex};
  outer.spawn([&]() -> net::awaitable<void> { co_await body(current()); });
  co_await outer.wait();
}

std::vector<crew::task_failure> failures_of(std::exception_ptr const& e) {
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE(errors);
  return errors->failures();
}

}  // namespace

CO_TEST_CASE(a_group_task_knows_its_id_name_site_owner_and_parent) {
  co_await inside_a_task([](identity self) -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    crew::task_group g{ex, {.name = "fetchers"}};
    recorder r;
    auto const line = __LINE__ + 1;
    g.spawn(
        [&]() -> net::awaitable<void> {
          r.record();
          throw test_error(1);
          co_return;
        },
        {.name = "fetch"});
    auto [e] = co_await g.async_wait(net::as_tuple(net::use_awaitable));
    BOOST_REQUIRE_EQUAL(r.seen.size(), 1u);
    auto const& i = r.seen[0];
    BOOST_TEST(i.id > self.id);
    BOOST_TEST(i.parent == self.id);
    BOOST_TEST(i.name == "fetch");
    BOOST_TEST(i.line == line);
    BOOST_TEST(i.owner_kind == "task group");
    BOOST_TEST(i.owner_name == "fetchers");
    auto const f = failures_of(e);
    BOOST_TEST(f[0].id == i.id);  // the failure path names the same task
    BOOST_TEST(f[0].spawn_site.line() == line);
  });
}

CO_TEST_CASE(a_run_groups_actor_is_a_task_with_the_add_site) {
  co_await inside_a_task([](identity self) -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    crew::manual_clock clk;
    crew::run_group_options options;
    options.name = "daemon";
    options.shutdown_grace = 1s;
    options.clock = &clk;
    crew::run_group rg{ex, options};
    recorder r;
    int interrupted = 0;
    // An actor that outlives the grace is reported with its id and add site.
    auto const line = __LINE__ + 1;
    rg.add(crew::execute([&]() -> net::awaitable<void> {
             r.record();
             try {
               co_await crew_test::sleep_for(1h);
             } catch (...) {
               ++interrupted;
             }
             co_await net::this_coro::reset_cancellation_state();
             co_await crew_test::sleep_for(1h);
           }),
           crew::name("stubborn"));
    rg.add(crew::execute([]() -> net::awaitable<void> { co_return; }), crew::name("quitter"));
    auto fut = rg.async_run(net::use_future);
    co_await crew_test::yield_until([&] { return clk.pending() == 1; });
    clk.advance(1s);
    co_await crew_test::yield_until([&] { return crew_test::ready(fut); });
    BOOST_REQUIRE_EQUAL(r.seen.size(), 1u);
    auto const& i = r.seen[0];
    BOOST_TEST(i.parent == self.id);
    BOOST_TEST(i.name == "stubborn");
    BOOST_TEST(i.line == line);
    BOOST_TEST(i.owner_kind == "run group");
    BOOST_TEST(i.owner_name == "daemon");
    auto const f = failures_of(crew_test::outcome(fut));
    BOOST_REQUIRE_EQUAL(f.size(), 1u);  // the cause was a normal return; then the late actor
    BOOST_TEST(f[0].name == "stubborn");
    BOOST_TEST(f[0].id == i.id);
    BOOST_TEST(f[0].spawn_site.line() == line);
  });
}

CO_TEST_CASE(each_loop_iteration_is_a_task_and_its_failure_carries_it) {
  co_await inside_a_task([](identity self) -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    crew::loop_options options;
    options.name = "pollers";
    options.backoff = crew::backoff::none();
    crew::loop lp{ex, options};
    recorder r;
    std::vector<crew::task_failure> reported;
    auto previous = crew::detail::set_failure_sink([&](crew::detail::failure_report const& report) {
      for (auto const& f : report.failures) reported.push_back(f);
    });
    auto const line = __LINE__ + 1;
    lp.add(crew::execute([&]() -> net::awaitable<void> {
             r.record();
             if (r.seen.size() == 3) lp.stop();
             throw test_error(static_cast<int>(r.seen.size()));
             co_return;
           }),
           crew::name("poll"));
    co_await lp.run();
    crew::detail::set_failure_sink(std::move(previous));
    BOOST_REQUIRE_EQUAL(r.seen.size(), 3u);
    std::set<std::uint64_t> ids;
    for (auto const& i : r.seen) {
      ids.insert(i.id);
      BOOST_TEST(i.name == "poll");
      BOOST_TEST(i.line == line);
      BOOST_TEST(i.owner_kind == "loop");
      BOOST_TEST(i.owner_name == "pollers");
      BOOST_TEST(i.parent == self.id);
    }
    BOOST_TEST(ids.size() == 3u);              // a task per iteration
    BOOST_REQUIRE_EQUAL(reported.size(), 3u);  // no on_failure: each went to the failure path
    for (std::size_t k = 0; k < 3; ++k) {
      BOOST_TEST(reported[k].id == r.seen[k].id);
      BOOST_TEST(reported[k].spawn_site.line() == line);
    }
  });
}

CO_TEST_CASE(each_start_of_a_supervisors_child_is_a_task) {
  co_await inside_a_task([](identity self) -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    crew::supervisor_options options;
    options.name = "app";
    std::vector<crew::task_failure> seen_failures;
    options.on_failure = [&](crew::task_failure const& f) { seen_failures.push_back(f); };
    crew::supervisor sup{ex, options};
    recorder r;
    auto const line = __LINE__ + 1;
    sup.add("db",
            [&]() -> net::awaitable<void> {
              r.record();
              if (r.seen.size() < 3) throw test_error(1);
              co_return;
            },
            {.restart = crew::restart::transient});
    co_await sup.run();
    BOOST_REQUIRE_EQUAL(r.seen.size(), 3u);
    for (auto const& i : r.seen) {
      BOOST_TEST(i.name == "db");
      BOOST_TEST(i.line == line);
      BOOST_TEST(i.owner_kind == "supervisor");
      BOOST_TEST(i.owner_name == "app");
      BOOST_TEST(i.parent != self.id);  // a child of the supervisor's run, not of the caller
      BOOST_TEST(i.parent != 0u);
    }
    BOOST_REQUIRE_EQUAL(seen_failures.size(), 2u);
    BOOST_TEST(seen_failures[0].id == r.seen[0].id);
    BOOST_TEST(seen_failures[1].id == r.seen[1].id);
  });
}

CO_TEST_CASE(each_retry_attempt_is_a_task) {
  co_await inside_a_task([](identity self) -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    recorder r;
    crew::retry_options options{.backoff = crew::backoff::none(), .all_failures = true};
    auto const line = __LINE__ + 1;
    auto op = crew::async_retry(
        ex,
        [&](crew::retrier& t) -> net::awaitable<void> {
          r.record();
          if (t.iteration() < 3) throw test_error(1);
          co_return;
        },
        options, net::use_awaitable);
    co_await std::move(op);
    BOOST_REQUIRE_EQUAL(r.seen.size(), 3u);
    for (std::size_t k = 0; k < 3; ++k) {
      auto const& i = r.seen[k];
      BOOST_TEST(i.name == "attempt " + std::to_string(k + 1));
      BOOST_TEST(i.line == line);
      BOOST_TEST(i.owner_kind == "retry");
      BOOST_TEST(i.parent == self.id);
    }
  });
}

BOOST_AUTO_TEST_CASE(the_failure_sink_gets_failures_nobody_took_in_one_format) {
  std::vector<std::string> texts;
  auto previous = crew::detail::set_failure_sink([&](crew::detail::failure_report const& r) {
    std::ostringstream os;
    crew::detail::write_report(os, r);
    texts.push_back(os.str());
  });
  {
    net::io_context ctx;
    crew::task_group g{ctx, {.name = "unwatched"}};
    g.spawn([]() -> net::awaitable<void> {
      throw test_error(7);
      co_return;
    });
    ctx.run();
  }
  crew::detail::set_failure_sink(std::move(previous));
  BOOST_REQUIRE_EQUAL(texts.size(), 1u);
  BOOST_TEST(texts[0].find(
                 "crew: task group 'unwatched' ended with failures nobody waited for: 1\n") == 0u);
  BOOST_TEST(texts[0].find("test error 7") != std::string::npos);
}

// ---------------------------------------------------------------- a new policy

namespace {

//[internals_policy
/// Runs a job every `period` until stopped, and reports its failures: the shape of a
/// `repeat_timer`, a background worker or a scheduler entry, as a policy over the
/// restart driver.
class every final : public crew::detail::restart_policy {
 public:
  every(crew::detail::task_factory job, crew::clock::duration period)
      : job_(std::move(job)), period_(period) {}

  crew::detail::task_body make_run(std::size_t n, crew::detail::task_spec& spec) override {
    spec.name = "tick " + std::to_string(n);  // each run is a task with this name
    return job_.bind();                       // the job is called inside that task
  }

  crew::detail::restart_decision next(crew::detail::run_outcome&& o) override {
    if (o.failure)  // the record names the run's task, its spawn site, where it threw
      crew::detail::report_failure("every", "ticker", "had a failure", std::move(*o.failure));
    if (o.stopping) return crew::detail::restart_decision::stop();
    return crew::detail::restart_decision::restart(period_);  // waits on the clock
  }

  std::exception_ptr stopped() override { return nullptr; }  // stopped while waiting

 private:
  crew::detail::task_factory job_;
  crew::clock::duration period_;
};
//]

}  // namespace

CO_TEST_CASE(a_new_component_is_a_policy_over_the_restart_driver) {
  auto ex = co_await net::this_coro::executor;
  crew::manual_clock clk;
  auto const t0 = clk.now();
  std::vector<crew::clock::duration> ticks;
  std::vector<std::string> reported;
  auto previous = crew::detail::set_failure_sink([&](crew::detail::failure_report const& r) {
    for (auto const& f : r.failures) reported.push_back(f.name);
  });
  auto job = crew::detail::task_factory::make(
      [&]() -> net::awaitable<void> {
        ticks.push_back(clk.now() - t0);
        if (ticks.size() == 2) throw test_error(2);
        co_return;
      },
      "every");
  std::optional<std::exception_ptr> result;
  //[internals_driver
  auto driver = crew::detail::start_driver(
      ex, clk, std::make_unique<every>(std::move(job), 10s), "every", "ticker",
      [&](std::exception_ptr e) { result = e; });  // completes once stopped
  //]
  for (int i = 0; i < 3; ++i) {
    co_await crew_test::yield_until([&] { return clk.pending() == 1; });
    clk.advance(10s);
  }
  co_await crew_test::yield_until([&] { return clk.pending() == 1; });
  driver->stop();
  co_await crew_test::yield_until([&] { return result.has_value(); });
  crew::detail::set_failure_sink(std::move(previous));
  BOOST_TEST(!*result);
  BOOST_TEST((ticks == std::vector<crew::clock::duration>{0s, 10s, 20s, 30s}));
  BOOST_TEST((reported == std::vector<std::string>{"tick 2"}));  // went on after it
  BOOST_TEST(clk.pending() == 0u);
}
