//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task manager, with the behaviours goasync's own suite checks ported, and the
// hostile shapes crew checks for every component.
//
#define BOOST_TEST_MODULE crew_task_manager
#include <crew/task_manager.hpp>

#include "co_test.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace crew {
// For Boost.Test's messages.
inline std::ostream& operator<<(std::ostream& os, task_stage s) {
  return os << to_string(s);
}
inline std::ostream& operator<<(std::ostream& os, error e) {
  return os << make_error_code(e).message();
}
}  // namespace crew

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::code_of;
using crew_test::error_number;
using crew_test::is_aborted;
using crew_test::test_error;

namespace {

/// Everything the probes did, in order; shared by threads.
class journal {
 public:
  void add(std::string s) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(s));
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<std::string> only(std::string const& suffix) const {
    std::vector<std::string> out;
    for (auto const& e : events())
      if (e.size() > suffix.size() &&
          e.compare(e.size() - suffix.size(), suffix.size(), suffix) == 0)
        out.push_back(e);
    return out;
  }
  bool has(std::string const& e) const {
    for (auto const& x : events())
      if (x == e) return true;
    return false;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
};

using strings = std::vector<std::string>;

/// A managed task that writes what it does: "<name>.init", ".init done", ".exec",
/// ".exec done" (a normal return), ".exec aborted", ".cleanup", ".cleanup done".
struct probe {
  enum class exec { park, give_back, fail, give_back_later };

  std::string name;
  journal* j = nullptr;
  exec mode = exec::park;
  int fail_init = 0;  // a test_error number, or 0
  int fail_cleanup = 0;
  bool hang_init = false;  // until cancelled
  bool hang_cleanup = false;

  /// Waits until cancelled, and writes "<name>.<what> aborted" then.
  net::awaitable<void> hang(char const* what) {
    try {
      co_await crew_test::sleep_for(1h);
    } catch (boost::system::system_error const& e) {
      if (e.code() == net::error::operation_aborted) j->add(name + "." + what + " aborted");
      throw;
    }
  }

  net::awaitable<void> initialize() {
    j->add(name + ".init");
    if (hang_init) co_await hang("init");
    co_await crew_test::yield_n(3);  // the next stage must wait for this one
    if (fail_init) throw test_error(fail_init);
    j->add(name + ".init done");
  }

  net::awaitable<void> execute() {
    j->add(name + ".exec");
    try {
      switch (mode) {
        case exec::park:
          co_await crew_test::sleep_for(1h);
          break;
        case exec::give_back:
          break;
        case exec::fail:
          co_await crew_test::yield_n(2);
          throw test_error(100);
        case exec::give_back_later:
          co_await crew_test::yield_n(50);
          break;
      }
    } catch (boost::system::system_error const& e) {
      if (e.code() == net::error::operation_aborted) j->add(name + ".exec aborted");
      throw;
    }
    j->add(name + ".exec done");
  }

  net::awaitable<void> cleanup() {
    j->add(name + ".cleanup");
    if (hang_cleanup) co_await hang("cleanup");
    co_await crew_test::yield_n(3);
    if (fail_cleanup) throw test_error(fail_cleanup);
    j->add(name + ".cleanup done");
  }
};

static_assert(crew::managed_task<probe>);
static_assert(!crew::managed_task<int>);
struct execute_only {
  net::awaitable<void> execute();
};
static_assert(!crew::managed_task<execute_only>);

probe make_probe(std::string name, journal& j, probe::exec mode = probe::exec::park) {
  probe p;
  p.name = std::move(name);
  p.j = &j;
  p.mode = mode;
  return p;
}

/// The run's result, never thrown.
net::awaitable<std::exception_ptr> run_of(crew::task_manager& tm) {
  auto op = tm.async_run(net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  co_return e;
}

/// The failures of a task_errors result; fails the test for anything else.
std::vector<crew::task_failure> failures_of(std::exception_ptr const& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (crew::task_errors const& errs) {
    return errs.failures();
  } catch (...) {
  }
  BOOST_ERROR("the result is not a crew::task_errors");
  return {};
}

bool has_code(crew::task_failure const& f, crew::error code) {
  auto const* se = f.as<boost::system::system_error>();
  return se && se->code() == make_error_code(code);
}

template <class F>
crew::error misuse_of(F f) {
  try {
    f();
  } catch (boost::system::system_error const& se) {
    return static_cast<crew::error>(se.code().value());
  }
  return static_cast<crew::error>(0);
}

/// A run started with a callback: its result once `done`.
struct run_state {
  std::atomic<bool> done{false};
  std::exception_ptr result;
};

/// Starts the run with a callback; `slot`, if connected, is the run's cancellation slot.
std::shared_ptr<run_state> start(crew::task_manager& tm,
                                 net::cancellation_slot slot = net::cancellation_slot()) {
  auto r = std::make_shared<run_state>();
  tm.async_run(net::bind_cancellation_slot(slot, [r](std::exception_ptr e) {
    r->result = e;
    r->done = true;
  }));
  return r;
}

net::awaitable<void> until_done(run_state const& r) {
  co_await crew_test::yield_until([&] { return r.done.load(); });
  BOOST_TEST_REQUIRE(r.done.load());
}

net::awaitable<void> until_has(journal const& j, std::string const& e) {
  co_await crew_test::yield_until([&] { return j.has(e); });
  BOOST_TEST_REQUIRE(j.has(e));
}

}  // namespace

// ---------------------------------------------------------------- the stages' order

CO_TEST_CASE(initializes_in_order_executes_together_and_cleans_up_in_reverse) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  tm.add("b", make_probe("b", j), crew::task_kind::error);
  tm.add("c", make_probe("c", j), crew::task_kind::strict);
  BOOST_TEST(tm.size() == 3u);
  auto r = start(tm);
  co_await until_has(j, "c.exec");
  BOOST_TEST(j.has("a.exec"));
  BOOST_TEST(j.has("b.exec"));
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(!r->result);  // stopped, nothing failed
  // Each initialize ended before the next began, and every one before any execute.
  auto const ev = j.events();
  strings const first6(ev.begin(), ev.begin() + 6);
  BOOST_TEST(first6 == (strings{"a.init", "a.init done", "b.init", "b.init done", "c.init",
                                "c.init done"}),
             boost::test_tools::per_element());
  strings const last6(ev.end() - 6, ev.end());
  BOOST_TEST(last6 == (strings{"c.cleanup", "c.cleanup done", "b.cleanup", "b.cleanup done",
                               "a.cleanup", "a.cleanup done"}),
             boost::test_tools::per_element());
  BOOST_TEST(j.only(".exec aborted").size() == 3u);
}

CO_TEST_CASE(an_initialize_failure_cleans_up_from_that_task_back_to_the_first) {
  // goasync: initialize fails on task 3; cleanup runs for 3, 2, 1, each after the
  // previous one finished; nothing executes.
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("1", make_probe("1", j), crew::task_kind::strict);
  tm.add("2", make_probe("2", j), crew::task_kind::strict);
  auto p3 = make_probe("3", j);
  p3.fail_init = 3;
  tm.add("3", std::move(p3), crew::task_kind::strict);
  tm.add("4", make_probe("4", j), crew::task_kind::strict);
  auto const e = co_await run_of(tm);
  BOOST_TEST(j.events() == (strings{"1.init", "1.init done", "2.init", "2.init done", "3.init",
                                    "3.cleanup", "3.cleanup done", "2.cleanup", "2.cleanup done",
                                    "1.cleanup", "1.cleanup done"}),
             boost::test_tools::per_element());
  auto const f = failures_of(e);
  BOOST_TEST_REQUIRE(f.size() == 1u);  // exactly the initialize failure of 3
  BOOST_TEST(f[0].name == "3");
  BOOST_TEST(f[0].stage == crew::task_stage::initialize);
  BOOST_TEST(error_number(f[0].exception) == 3);
  BOOST_TEST(f[0].id != 0u);
  BOOST_TEST(!f[0].trace.empty());  // where initialize threw
}

CO_TEST_CASE(an_initialize_failure_keeps_the_cleanup_failure_of_the_same_task) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("1", make_probe("1", j), crew::task_kind::strict);
  tm.add("2", make_probe("2", j), crew::task_kind::strict);
  auto p3 = make_probe("3", j);
  p3.fail_init = 3;
  p3.fail_cleanup = 33;
  tm.add("3", std::move(p3), crew::task_kind::strict);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 2u);
  BOOST_TEST(f[0].stage == crew::task_stage::initialize);
  BOOST_TEST(error_number(f[0].exception) == 3);
  BOOST_TEST(f[1].name == "3");
  BOOST_TEST(f[1].stage == crew::task_stage::cleanup);
  BOOST_TEST(error_number(f[1].exception) == 33);
  BOOST_TEST(j.has("1.cleanup done"));  // a cleanup failure never stops the others
}

CO_TEST_CASE(every_cleanup_failure_is_collected_in_reverse_order) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  for (int i = 1; i <= 4; ++i) {
    auto p = make_probe(std::to_string(i), j);
    if (i % 2 == 1) p.fail_cleanup = i;
    tm.add(p.name, std::move(p), crew::task_kind::strict);
  }
  auto r = start(tm);
  co_await until_has(j, "4.exec");
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(j.only(".cleanup") == (strings{"4.cleanup", "3.cleanup", "2.cleanup", "1.cleanup"}),
             boost::test_tools::per_element());
  auto const f = failures_of(r->result);
  BOOST_TEST_REQUIRE(f.size() == 2u);
  BOOST_TEST(f[0].name == "3");
  BOOST_TEST(f[1].name == "1");
  for (auto const& x : f) BOOST_TEST(x.stage == crew::task_stage::cleanup);
}

CO_TEST_CASE(a_run_cancelled_before_it_began_still_initializes_then_cleans_up) {
  // The seed initializes even with a cancelled context; nothing executes.
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  tm.add("b", make_probe("b", j), crew::task_kind::strict);
  net::cancellation_signal sig;
  auto r = start(tm, sig.slot());
  sig.emit(net::cancellation_type::terminal);  // before the run's first step
  co_await until_done(*r);
  BOOST_TEST(is_aborted(r->result));
  BOOST_TEST(j.events() == (strings{"a.init", "a.init done", "b.init", "b.init done", "b.cleanup",
                                    "b.cleanup done", "a.cleanup", "a.cleanup done"}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(cancelling_the_run_while_it_initializes_finishes_initializing_then_cleans_up) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  tm.add("b", make_probe("b", j), crew::task_kind::strict);
  net::cancellation_signal sig;
  auto r = start(tm, sig.slot());
  co_await until_has(j, "a.init");
  sig.emit(net::cancellation_type::terminal);
  co_await until_done(*r);
  BOOST_TEST(is_aborted(r->result));
  BOOST_TEST(j.has("b.init done"));
  BOOST_TEST(j.only(".exec").empty());
  BOOST_TEST(j.only(".cleanup done") == (strings{"b.cleanup done", "a.cleanup done"}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(a_second_stop_cancels_an_initialize_that_hangs) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  auto a = make_probe("a", j);
  a.hang_init = true;
  tm.add("a", std::move(a), crew::task_kind::strict);
  tm.add("b", make_probe("b", j), crew::task_kind::strict);
  auto r = start(tm);
  co_await until_has(j, "a.init");
  tm.stop();  // the first request lets the initialize finish...
  co_await crew_test::yield_n(50);
  BOOST_TEST(!r->done);
  BOOST_TEST(!j.has("a.init aborted"));
  tm.stop();  // ...a second one cancels it
  co_await until_done(*r);
  BOOST_TEST(j.has("a.init aborted"));
  BOOST_TEST(j.has("a.cleanup done"));  // cleaned up from the failed task back
  BOOST_TEST(!j.has("b.init"));
  auto const f = failures_of(r->result);
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "a");
  BOOST_TEST(f[0].stage == crew::task_stage::initialize);
  BOOST_TEST(is_aborted(f[0].exception));
}

CO_TEST_CASE(a_request_during_cleanup_cancels_the_cleanup_that_hangs_and_the_rest_run) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  auto b = make_probe("b", j);
  b.hang_cleanup = true;
  tm.add("b", std::move(b), crew::task_kind::strict);
  net::cancellation_signal sig;
  auto r = start(tm, sig.slot());
  co_await until_has(j, "b.exec");
  tm.stop();
  co_await until_has(j, "b.cleanup");
  co_await crew_test::yield_n(50);
  BOOST_TEST(!r->done);
  sig.emit(net::cancellation_type::terminal);  // a request while the run ends
  co_await until_done(*r);
  BOOST_TEST(j.has("b.cleanup aborted"));
  BOOST_TEST(j.has("a.cleanup done"));  // the next cleanup runs as usual
  auto const f = failures_of(r->result);
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "b");
  BOOST_TEST(f[0].stage == crew::task_stage::cleanup);
  BOOST_TEST(is_aborted(f[0].exception));
}

CO_TEST_CASE(destroying_the_manager_during_a_cleanup_lets_it_finish) {
  journal j;
  auto tm = std::make_unique<crew::task_manager>(co_await net::this_coro::executor);
  tm->add("a", make_probe("a", j), crew::task_kind::strict);
  auto r = start(*tm);
  co_await until_has(j, "a.exec");
  tm->stop();
  co_await until_has(j, "a.cleanup");
  tm.reset();  // not a request to hurry: the cleanup goes on
  co_await until_done(*r);
  BOOST_TEST(j.has("a.cleanup done"));
  BOOST_TEST(!r->result);
}

// ---------------------------------------------------------------- kinds

CO_TEST_CASE(a_strict_task_that_returns_ends_everything_as_stopped_unexpectedly) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("parked", make_probe("parked", j), crew::task_kind::strict);
  tm.add("quitter", make_probe("quitter", j, probe::exec::give_back), crew::task_kind::strict);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "quitter");
  BOOST_TEST(f[0].stage == crew::task_stage::execute);
  BOOST_TEST(has_code(f[0], crew::error::task_stopped_unexpectedly));
  BOOST_TEST(j.has("parked.exec aborted"));
  BOOST_TEST(j.has("quitter.cleanup done"));
  BOOST_TEST(j.has("parked.cleanup done"));
}

CO_TEST_CASE(a_strict_task_that_fails_ends_everything_with_its_failure) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("parked", make_probe("parked", j), crew::task_kind::strict);
  tm.add("failer", make_probe("failer", j, probe::exec::fail), crew::task_kind::strict);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 1u);  // the parked task's abort is not a failure
  BOOST_TEST(f[0].name == "failer");
  BOOST_TEST(f[0].stage == crew::task_stage::execute);
  BOOST_TEST(error_number(f[0].exception) == 100);
  BOOST_TEST(!f[0].trace.empty());
  BOOST_TEST(j.has("parked.exec aborted"));
}

CO_TEST_CASE(an_error_task_that_returns_ends_only_itself) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("parked", make_probe("parked", j), crew::task_kind::strict);
  tm.add("done", make_probe("done", j, probe::exec::give_back), crew::task_kind::error);
  auto r = start(tm);
  co_await until_has(j, "done.exec done");
  co_await crew_test::yield_n(20);
  BOOST_TEST(!r->done);
  BOOST_TEST(!j.has("parked.exec aborted"));
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(!r->result);
  BOOST_TEST(j.has("done.cleanup done"));  // every task is cleaned up, ended or not
}

CO_TEST_CASE(an_error_task_that_fails_ends_everything) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("parked", make_probe("parked", j), crew::task_kind::error);
  tm.add("failer", make_probe("failer", j, probe::exec::fail), crew::task_kind::error);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "failer");
  BOOST_TEST(j.has("parked.exec aborted"));
}

CO_TEST_CASE(stop_group_holds_the_others_until_its_last_task_returns) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("server", make_probe("server", j), crew::task_kind::strict);
  tm.add("quick", make_probe("quick", j, probe::exec::give_back), crew::task_kind::stop_group);
  tm.add("slow", make_probe("slow", j, probe::exec::give_back_later), crew::task_kind::stop_group);
  auto r = start(tm);
  co_await until_has(j, "quick.exec done");
  BOOST_TEST(!j.has("server.exec aborted"));  // one stop_group task is still running
  co_await until_done(*r);
  BOOST_TEST(!r->result);  // not an error
  auto const ev = j.events();
  auto pos = [&](std::string const& e) { return std::find(ev.begin(), ev.end(), e) - ev.begin(); };
  BOOST_TEST(pos("slow.exec done") < pos("server.exec aborted"));
}

CO_TEST_CASE(a_stop_group_task_that_fails_ends_everything_with_its_failure) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("server", make_probe("server", j), crew::task_kind::strict);
  tm.add("failer", make_probe("failer", j, probe::exec::fail), crew::task_kind::stop_group);
  tm.add("other", make_probe("other", j), crew::task_kind::stop_group);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "failer");
}

CO_TEST_CASE(when_every_error_task_has_returned_the_run_ends_without_an_error) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j, probe::exec::give_back), crew::task_kind::error);
  tm.add("b", make_probe("b", j, probe::exec::give_back_later), crew::task_kind::error);
  auto const e = co_await run_of(tm);
  BOOST_TEST(!e);
  BOOST_TEST(j.only(".cleanup done") == (strings{"b.cleanup done", "a.cleanup done"}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(allow_idle_keeps_an_idle_run_until_stopped) {
  auto ex = co_await net::this_coro::executor;
  crew::task_manager tm{ex, {.allow_idle = true}};
  auto r = start(tm);
  co_await crew_test::yield_n(20);
  BOOST_TEST(!r->done);
  std::atomic<int> ran{0};
  tm.add_execute_task(
      "late",
      [&]() -> net::awaitable<void> {
        ++ran;
        co_return;
      },
      crew::task_kind::error);
  co_await crew_test::yield_until([&] { return ran.load() == 1; });
  co_await crew_test::yield_n(20);
  BOOST_TEST(!r->done);  // idle again, still running
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(!r->result);
}

CO_TEST_CASE(an_empty_manager_completes_at_once) {
  crew::task_manager tm{co_await net::this_coro::executor};
  BOOST_TEST(!(co_await run_of(tm)));
}

CO_TEST_CASE(failures_are_recorded_in_the_order_they_happened_across_stages) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  auto a = make_probe("a", j);
  a.fail_cleanup = 7;
  tm.add("a", std::move(a), crew::task_kind::strict);
  tm.add("b", make_probe("b", j, probe::exec::fail), crew::task_kind::strict);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 2u);
  BOOST_TEST(f[0].name == "b");
  BOOST_TEST(f[0].stage == crew::task_stage::execute);
  BOOST_TEST(f[1].name == "a");
  BOOST_TEST(f[1].stage == crew::task_stage::cleanup);
  std::string const what = crew::task_errors(f).what();
  BOOST_TEST(what.find("(cleanup)") != std::string::npos);
}

// ---------------------------------------------------------------- add and add_execute_task

CO_TEST_CASE(misuse_gets_the_exact_crew_error) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  auto r = start(tm);
  co_await until_has(j, "a.init");
  // Initializing is running: add is refused, add_execute_task waits for the execute stage.
  BOOST_TEST(misuse_of([&] { tm.add("b", make_probe("b", j), crew::task_kind::strict); }) ==
             crew::error::already_running);
  co_await until_has(j, "a.exec");
  BOOST_TEST(misuse_of([&] { tm.add("b", make_probe("b", j), crew::task_kind::strict); }) ==
             crew::error::already_running);
  {
    auto op = tm.async_run(net::as_tuple(net::use_awaitable));
    auto [second] = co_await std::move(op);
    BOOST_TEST(code_of(second) == crew::error::already_running);
  }
  // The refused run left the running one alone: it still takes execute tasks.
  tm.add_execute_task(
      "late",
      [&]() -> net::awaitable<void> {
        j.add("late.exec");
        co_await crew_test::sleep_for(1h);
      },
      crew::task_kind::strict);
  co_await until_has(j, "late.exec");
  tm.stop();
  BOOST_TEST(misuse_of([&] { tm.add("b", make_probe("b", j), crew::task_kind::strict); }) ==
             crew::error::shut_down);
  BOOST_TEST(misuse_of([&] {
               tm.add_execute_task(
                   "x", []() -> net::awaitable<void> { co_return; }, crew::task_kind::strict);
             }) == crew::error::shut_down);
  co_await until_done(*r);
  BOOST_TEST(!r->result);
  BOOST_TEST(misuse_of([&] { tm.add("b", make_probe("b", j), crew::task_kind::strict); }) ==
             crew::error::shut_down);
  BOOST_TEST(misuse_of([&] {
               tm.add_execute_task(
                   "x", []() -> net::awaitable<void> { co_return; }, crew::task_kind::strict);
             }) == crew::error::shut_down);
  auto op = tm.async_run(net::as_tuple(net::use_awaitable));
  auto [third] = co_await std::move(op);
  BOOST_TEST(code_of(third) == crew::error::already_running);
  BOOST_TEST(tm.size() == 2u);
}

CO_TEST_CASE(bad_input_is_refused_with_a_message_naming_it) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  BOOST_TEST(crew_test::invalid_argument_of([&] {
               tm.add("a", std::shared_ptr<probe>(), crew::task_kind::strict);
             }) == "crew::task_manager::add: task is a null pointer");
  BOOST_TEST(crew_test::invalid_argument_of([&] {
               tm.add("a", std::unique_ptr<probe>(), crew::task_kind::strict);
             }) == "crew::task_manager::add: task is a null pointer");
  BOOST_TEST(crew_test::invalid_argument_of([&] {
               tm.add("a", make_probe("a", j), static_cast<crew::task_kind>(7));
             }) == "crew::task_manager::add: kind 7 is not a crew::task_kind");
  BOOST_TEST(crew_test::invalid_argument_of([&] {
               tm.add_execute_task("x", std::function<net::awaitable<void>()>(),
                                   crew::task_kind::error);
             }).find("crew::task_manager::add_execute_task") == 0u);
  BOOST_TEST(crew_test::invalid_argument_of([&] {
               tm.add_execute_task(
                   "x", []() -> net::awaitable<void> { co_return; },
                   static_cast<crew::task_kind>(-1));
             }) == "crew::task_manager::add_execute_task: kind -1 is not a crew::task_kind");
  BOOST_TEST(tm.size() == 0u);
  BOOST_TEST(std::string(crew::to_string(crew::task_kind::stop_group)) == "stop_group");
  BOOST_TEST(std::string(crew::to_string(static_cast<crew::task_kind>(9))) == "unknown");
}

CO_TEST_CASE(a_task_may_be_moved_in_shared_owned_unique_owned_or_referenced) {
  journal j;
  auto shared = std::make_shared<probe>(make_probe("shared", j));
  auto unique = std::make_unique<probe>(make_probe("unique", j));
  auto referenced = make_probe("referenced", j);
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("moved", make_probe("moved", j), crew::task_kind::strict);
  tm.add("shared", shared, crew::task_kind::strict);
  tm.add("unique", std::move(unique), crew::task_kind::strict);
  tm.add("referenced", std::ref(referenced), crew::task_kind::strict);
  tm.add("", make_probe("unnamed", j), crew::task_kind::error);
  auto r = start(tm);
  co_await until_has(j, "unnamed.exec");
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(!r->result);
  BOOST_TEST(j.only(".cleanup done").size() == 5u);
  BOOST_TEST(shared.use_count() == 1);  // the manager let go of it
}

CO_TEST_CASE(an_unnamed_task_is_named_after_its_place) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  tm.add("", make_probe("x", j, probe::exec::fail), crew::task_kind::strict);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "task 2");
}

CO_TEST_CASE(an_execute_task_added_before_the_run_executes_with_the_others) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  tm.add_execute_task(
      "x",
      [&]() -> net::awaitable<void> {
        BOOST_TEST(j.has("a.init done"));  // after every initialize
        j.add("x.exec");
        co_await crew_test::sleep_for(1h);
      },
      crew::task_kind::strict);
  BOOST_TEST(tm.size() == 2u);
  auto r = start(tm);
  co_await until_has(j, "x.exec");
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(!r->result);
}

CO_TEST_CASE(an_execute_task_added_while_running_starts_at_once_and_is_cancelled_on_shutdown) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  auto r = start(tm);
  co_await until_has(j, "a.exec");
  std::atomic<int> aborted{0};
  tm.add_execute_task(
      "late",
      [&]() -> net::awaitable<void> {
        j.add("late.exec");
        co_await crew_test::sleep_counting_aborts(1h, aborted);
      },
      crew::task_kind::strict);
  co_await until_has(j, "late.exec");
  BOOST_TEST(!r->done);
  tm.stop();
  co_await until_done(*r);
  BOOST_TEST(!r->result);
  BOOST_TEST(aborted.load() == 1);
}

CO_TEST_CASE(an_execute_task_added_while_running_follows_its_kind) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  auto r = start(tm);
  co_await until_has(j, "a.exec");
  tm.add_execute_task(
      "late",
      []() -> net::awaitable<boost::system::error_code> {
        co_return make_error_code(boost::system::errc::io_error);  // a returned code fails
      },
      crew::task_kind::error);
  co_await until_done(*r);
  auto const f = failures_of(r->result);
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].name == "late");
  BOOST_TEST(f[0].stage == crew::task_stage::execute);
}

CO_TEST_CASE(exceptions_not_derived_from_std_exception_are_recorded_not_fatal) {
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add_execute_task(
      "thrower",
      []() -> net::awaitable<void> {
        throw 42;
        co_return;
      },
      crew::task_kind::error);
  auto const f = failures_of(co_await run_of(tm));
  BOOST_TEST_REQUIRE(f.size() == 1u);
  BOOST_TEST(std::string(f[0].what()) == "exception not derived from std::exception");
}

// ---------------------------------------------------------------- every completion token

BOOST_AUTO_TEST_CASE(async_run_with_a_callback_use_future_and_cancellation) {
  net::io_context ctx;
  journal j;
  {
    crew::task_manager tm{ctx};
    tm.add("a", make_probe("a", j, probe::exec::fail), crew::task_kind::strict);
    std::exception_ptr got;
    bool called = false;
    tm.async_run([&](std::exception_ptr e) {
      called = true;
      got = e;
    });
    BOOST_TEST(!called);  // never inside the initiating call
    ctx.run();
    BOOST_TEST(called);
    BOOST_TEST(failures_of(got).size() == 1u);
  }
  ctx.restart();
  {
    crew::task_manager tm{ctx.get_executor()};
    tm.add("a", make_probe("a", j, probe::exec::fail), crew::task_kind::strict);
    auto fut = tm.async_run(net::use_future);
    ctx.run();
    BOOST_CHECK_THROW(fut.get(), crew::task_errors);
  }
  ctx.restart();
  {
    crew::task_manager tm{ctx};
    tm.add("a", make_probe("a", j), crew::task_kind::strict);
    net::cancellation_signal sig;
    std::exception_ptr got;
    tm.async_run(net::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) { got = e; }));
    ctx.run_for(20ms);
    BOOST_TEST(j.has("a.exec"));
    sig.emit(net::cancellation_type::terminal);
    ctx.run();
    BOOST_TEST(is_aborted(got));
    BOOST_TEST(j.has("a.cleanup done"));
  }
}

CO_TEST_CASE(run_rethrows_what_the_run_reports) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  tm.add("a", make_probe("a", j, probe::exec::fail), crew::task_kind::strict);
  bool thrown = false;
  try {
    auto run = tm.run();
    co_await std::move(run);
  } catch (crew::task_errors const& e) {
    thrown = true;
    BOOST_TEST(e.first().name == "a");
  }
  BOOST_TEST(thrown);
}

// ---------------------------------------------------------------- lifetimes

CO_TEST_CASE(destroying_the_manager_shuts_its_run_down_and_cleans_up) {
  journal j;
  auto tm = std::make_unique<crew::task_manager>(co_await net::this_coro::executor);
  tm->add("a", make_probe("a", j), crew::task_kind::strict);
  auto r = start(*tm);
  co_await until_has(j, "a.exec");
  tm.reset();
  co_await until_done(*r);
  BOOST_TEST(code_of(r->result) == crew::error::shut_down);
  BOOST_TEST(j.has("a.exec aborted"));
  BOOST_TEST(j.has("a.cleanup done"));
}

BOOST_AUTO_TEST_CASE(a_manager_outlives_its_io_context) {
  journal j;
  auto ctx = std::make_unique<net::io_context>();
  auto tm = std::make_unique<crew::task_manager>(*ctx);
  tm->add("a", make_probe("a", j), crew::task_kind::strict);
  bool called = false;
  tm->async_run([&](std::exception_ptr) { called = true; });
  ctx->run_for(20ms);
  BOOST_TEST(j.has("a.exec"));
  ctx.reset();
  tm.reset();
  BOOST_TEST(!called);  // and ASan finds nothing used after free, nothing leaked
}

BOOST_AUTO_TEST_CASE(a_coroutine_owning_a_running_manager_dies_with_its_context) {
  journal j;
  auto ctx = std::make_unique<net::io_context>();
  bool reached = false;
  net::co_spawn(
      *ctx,
      [&]() -> net::awaitable<void> {
        crew::task_manager tm{co_await net::this_coro::executor};
        tm.add("a", make_probe("a", j), crew::task_kind::strict);
        tm.add("b", make_probe("b", j), crew::task_kind::strict);
        reached = true;
        auto run = tm.run();
        co_await std::move(run);
      },
      net::detached);
  ctx->run_for(20ms);
  BOOST_TEST(reached);
  ctx.reset();  // LeakSanitizer checks that everything went with it
}

BOOST_AUTO_TEST_CASE(the_context_dies_while_initializing) {
  journal j;
  auto ctx = std::make_unique<net::io_context>();
  crew::task_manager tm{*ctx};
  tm.add("a", make_probe("a", j), crew::task_kind::strict);
  tm.async_run([](std::exception_ptr) {});
  ctx->poll_one();
  ctx->poll_one();
  ctx.reset();
}

// ---------------------------------------------------------------- two threads

CO_TEST_CASE_MT(many_tasks_on_two_threads, 2) {
  journal j;
  crew::task_manager tm{co_await net::this_coro::executor};
  for (int i = 0; i < 16; ++i) {
    auto p = make_probe("p" + std::to_string(i), j);
    if (i % 4 == 0) p.fail_cleanup = i + 1;
    tm.add(p.name, std::move(p), i % 2 ? crew::task_kind::error : crew::task_kind::strict);
  }
  tm.add("quitter", make_probe("quitter", j, probe::exec::give_back_later),
         crew::task_kind::stop_group);
  auto const e = co_await run_of(tm);
  auto const f = failures_of(e);
  BOOST_TEST(f.size() == 4u);  // the cleanups of p0, p4, p8, p12, in reverse
  for (auto const& x : f) BOOST_TEST(x.stage == crew::task_stage::cleanup);
  // Every execute that began (all but the quitter) was cancelled; one that had not
  // begun yet ends without running.
  BOOST_TEST(j.only(".exec aborted").size() == j.only(".exec").size() - 1);
  auto const cleanups = j.only(".cleanup");
  BOOST_TEST_REQUIRE(cleanups.size() == 17u);
  BOOST_TEST(cleanups.front() == "quitter.cleanup");
  BOOST_TEST(cleanups.back() == "p0.cleanup");
}

CO_TEST_CASE_MT(destroying_the_manager_mid_run_on_two_threads, 2) {
  // The manager goes while its executes run on both threads and one is being added.
  for (int round = 0; round < 50; ++round) {
    journal j;
    auto tm = std::make_unique<crew::task_manager>(co_await net::this_coro::executor);
    for (int i = 0; i < 4; ++i)
      tm->add("p" + std::to_string(i), make_probe("p" + std::to_string(i), j),
              crew::task_kind::strict);
    auto r = start(*tm);
    co_await until_has(j, "p3.exec");
    tm->add_execute_task(
        "late", []() { return crew_test::sleep_for(1h); }, crew::task_kind::error);
    tm.reset();
    co_await until_done(*r);
    BOOST_TEST((code_of(r->result) == crew::error::shut_down));
    BOOST_TEST(j.only(".cleanup done").size() == 4u);
  }
}

BOOST_AUTO_TEST_CASE(add_execute_task_racing_shutdown_never_hangs_or_leaks) {
  // 1,000 runs on 2 threads: each adds an execute task from one thread while another
  // stops the run. The task is either refused with shut_down (and destroyed at once)
  // or taken, started and cancelled; it is never lost, and the run always ends.
  net::thread_pool pool(2);
  std::atomic<int> alive{0};
  struct tracker {
    std::atomic<int>* alive;
    explicit tracker(std::atomic<int>& a) : alive(&a) { ++*alive; }
    tracker(tracker const& o) : alive(o.alive) { ++*alive; }
    ~tracker() { --*alive; }
  };
  int refused = 0, taken = 0;
  for (int i = 0; i < 1000; ++i) {
    journal j;
    auto tm = std::make_unique<crew::task_manager>(pool.get_executor());
    tm->add("a", make_probe("a", j), crew::task_kind::strict);
    std::promise<std::exception_ptr> result;
    tm->async_run([&](std::exception_ptr e) { result.set_value(e); });
    while (!j.has("a.exec")) std::this_thread::yield();
    std::atomic<bool> go{false};
    std::thread stopper([&] {
      while (!go) {
      }
      tm->stop();
    });
    std::atomic<int> ran{0};
    go = true;
    try {
      tm->add_execute_task(
          "late",
          [t = tracker(alive), &ran]() -> net::awaitable<void> {
            ++ran;
            co_await crew_test::sleep_for(1h);
          },
          crew::task_kind::strict);
      ++taken;
    } catch (boost::system::system_error const& e) {
      BOOST_TEST(e.code() == make_error_code(crew::error::shut_down));
      ++refused;
    }
    stopper.join();
    auto f = result.get_future();
    BOOST_TEST_REQUIRE((f.wait_for(10s) == std::future_status::ready));
    BOOST_TEST(!f.get());
    tm.reset();
    BOOST_TEST(ran.load() <= 1);
  }
  pool.join();
  BOOST_TEST(alive.load() == 0);
  BOOST_TEST(refused + taken == 1000);
  BOOST_TEST_MESSAGE("refused " << refused << ", taken " << taken);
}
