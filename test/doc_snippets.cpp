//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The code shown in README.md and docs/. Each `//[name` ... `//]` region is copied
// verbatim into the Markdown; scripts/check-docs fails when they drift apart.
//
#define BOOST_TEST_MODULE doc_snippets
#include "co_test.hpp"

//[readme_example
#include <crew/crew.hpp>

#include <boost/asio.hpp>
#include <iostream>

namespace net = boost::asio;
using namespace std::chrono_literals;

net::awaitable<void> fetch(std::string url);  // any coroutine

net::awaitable<void> crawl(std::vector<std::string> urls) {
  auto ex = co_await net::this_coro::executor;  // name the executor first
  crew::task_group group{ex, {.policy = crew::failure_policy::cancel_on_first, .limit = 8}};
  for (auto const& url : urls) group.spawn(fetch(url), {.name = url});
  try {
    co_await group.wait();  // every task finished, or was cancelled by the first failure
  } catch (crew::task_errors const& errors) {
    for (auto const& failure : errors.failures())
      std::cerr << failure;  // name, id, spawn site, what(), and where it was thrown
  }
}
//]

#include "test_util.hpp"

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <csignal>
#include <sstream>

namespace {

std::vector<std::string> fetched;

int run_main(net::awaitable<void> (*body)()) {
  net::io_context ctx;
  std::exception_ptr failure;
  net::co_spawn(ctx, body(), [&](std::exception_ptr e) { failure = e; });
  ctx.run();
  if (failure) std::rethrow_exception(failure);
  return 0;
}

struct fetch_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

net::awaitable<void> fetch(std::string url) {
  co_await crew_test::sleep_for(url == "bad" ? 1ms : 1h);
  if (url == "bad") throw fetch_error("cannot fetch " + url);
  fetched.push_back(url);
}

BOOST_AUTO_TEST_CASE(readme_example_cancels_the_rest_on_the_first_failure) {
  std::ostringstream captured;
  auto* old = std::cerr.rdbuf(captured.rdbuf());
  run_main([]() -> net::awaitable<void> {
    std::vector<std::string> urls{"a", "bad", "c"};
    co_await crawl(std::move(urls));
  });
  std::cerr.rdbuf(old);
  BOOST_TEST(fetched.empty());  // the 1-hour fetches were cancelled at once
  BOOST_TEST(captured.str().find("task 'bad'") != std::string::npos, captured.str());
  BOOST_TEST(captured.str().find("cannot fetch bad") != std::string::npos);
  BOOST_TEST(captured.str().find("thrown at:") != std::string::npos);
}

CO_TEST_CASE(spawn_and_wait) {
  //[spawn_and_wait
  auto ex = co_await net::this_coro::executor;
  crew::task_group group{ex};
  int done = 0;
  group.spawn([&]() -> net::awaitable<void> {  // a callable is kept alive until it ends
    co_await crew_test::sleep_for(1ms);
    ++done;
  });
  group.spawn(crew_test::yield_once());  // or an awaitable
  co_await group.wait();                 // throws crew::task_errors if a task failed
  //]
  BOOST_TEST(done == 1);
}

CO_TEST_CASE(errors_as_values) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group group{ex};
  //[errors_as_values
  group.spawn([]() -> net::awaitable<boost::system::error_code> {
    co_return net::error::connection_refused;  // Go style: a non-zero code is a failure
  });
  auto [e] = co_await group.async_wait(net::as_tuple(net::use_awaitable));
  boost::system::error_code code;
  try {
    if (e) std::rethrow_exception(e);
  } catch (crew::task_errors const& errors) {
    if (auto const* se = errors.first().as<boost::system::system_error>()) code = se->code();
  }
  //]
  BOOST_TEST((code == net::error::connection_refused));
}

CO_TEST_CASE(limits) {
  auto ex = co_await net::this_coro::executor;
  //[limits
  crew::task_group group{ex, {.limit = 4}};  // at most 4 tasks run at once
  for (int i = 0; i < 100; ++i)
    group.spawn(crew_test::yield_n(3));  // past the limit, tasks wait in FIFO order

  auto task = crew_test::yield_once();
  bool const admitted = group.try_spawn(std::move(task));  // false: no free slot
  if (!admitted) {
    // A refused task is left as it was: wait for a slot.
    auto op = group.async_spawn(std::move(task), net::use_awaitable);
    co_await std::move(op);  // suspends until a slot is free: back-pressure
  }

  group.set_limit(16);  // takes effect at once
  co_await group.wait();
  //]
  BOOST_TEST(!admitted);
}

CO_TEST_CASE(wait_for) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group group{ex};
  group.spawn(crew_test::sleep_for(1h));
  //[wait_for
  auto [e] = co_await group.async_wait_for(10ms, net::as_tuple(net::use_awaitable));
  if (e) {
    // crew::error::timed_out: the tasks go on; wait again, or cancel them.
    group.cancel();
    co_await group.wait();  // cancelled tasks are not failures
  }
  //]
  BOOST_TEST(static_cast<bool>(e));
}

CO_TEST_CASE(on_failure) {
  auto ex = co_await net::this_coro::executor;
  std::ostringstream log;
  //[on_failure
  crew::task_group_options options;
  options.name = "workers";
  options.on_failure = [&log](crew::task_failure const& f) {
    log << "failed: " << crew::to_string(f) << '\n';  // one call at a time, on the group's executor
  };
  crew::task_group group{ex, options};
  //]
  group.spawn([]() -> net::awaitable<void> {
    throw std::runtime_error("oops");
    co_return;
  });
  auto [e] = co_await group.async_wait(net::as_tuple(net::use_awaitable));
  BOOST_TEST(static_cast<bool>(e));
  BOOST_TEST(log.str().find("oops") != std::string::npos);
}

CO_TEST_CASE(keep_failures) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> logged{0};
  //[keep_failures
  // A server's connection group is never waited on: on_failure sees every failure,
  // and the group keeps at most keep_failures of them (1,024 by default).
  crew::task_group_options options;
  options.name = "connections";
  options.keep_failures = 16;
  options.on_failure = [&logged](crew::task_failure const&) { ++logged; };
  crew::task_group connections{ex, options};
  //]
  for (int i = 0; i < 20; ++i)
    connections.spawn([]() -> net::awaitable<void> {
      throw std::runtime_error("peer reset");
      co_return;
    });
  auto [e] = co_await connections.async_wait(net::as_tuple(net::use_awaitable));
  auto const* errors = crew::detail::exception_cast<crew::task_errors>(e);
  BOOST_REQUIRE(errors);
  BOOST_TEST(errors->size() == 16u);
  BOOST_TEST(errors->dropped() == 4u);
  BOOST_TEST(std::string(errors->what()).find("... and 4 more") != std::string::npos);
  BOOST_TEST(logged == 20);
}

CO_TEST_CASE(two_step_initiation) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group group{ex};
  //[two_step
  // g++ 12 miscompiles a braced options aggregate in the same statement as a
  // co_await: initiate first, then await.
  auto op = group.async_spawn(crew_test::yield_once(), {.name = "step"}, net::use_awaitable);
  co_await std::move(op);
  //]
  co_await group.wait();
}

BOOST_AUTO_TEST_CASE(throw_site_traces_switch) {
  //[traces_switch
  crew::set_throw_site_traces(false);  // or run with CREW_THROW_SITE_TRACES=0
  crew::set_throw_site_traces(true);
  //]
  BOOST_TEST(crew::throw_site_traces());
}

// ---------------------------------------------------------------- task manager
// The snippets of docs/task_manager.md.

namespace {

std::vector<std::string> stages;  // what the managed tasks below did, in order

}  // namespace

//[managed_task
/// A managed task: three coroutines returning awaitable<void>.
struct cache {
  net::awaitable<void> initialize() {  // in order of add, one after the other
    stages.push_back("cache: load");
    co_return;
  }
  net::awaitable<void> execute() {  // all together, until cancelled
    co_await crew_test::sleep_for(1h);
  }
  net::awaitable<void> cleanup() {  // in reverse order of add, after every execute
    stages.push_back("cache: flush");
    co_return;
  }
};
static_assert(crew::managed_task<cache>);
//]

namespace {

/// Stands for any managed task in the snippets: its execute waits until cancelled.
template <int N>
struct demo_task {
  static inline std::atomic<int> executes{0};
  net::awaitable<void> initialize() { co_return; }
  net::awaitable<void> execute() {
    ++executes;
    co_await crew_test::sleep_for(1h);
  }
  net::awaitable<void> cleanup() { co_return; }
};
using consumer = demo_task<1>;
using flush_metrics = demo_task<2>;
using http_server = demo_task<3>;
using worker = demo_task<4>;
using poller = demo_task<5>;

/// A failing initialize, for the result snippet.
struct broken_queue {
  net::awaitable<void> initialize() {
    throw std::runtime_error("queue: broker unreachable");
    co_return;
  }
  net::awaitable<void> execute() { co_return; }
  net::awaitable<void> cleanup() {
    stages.push_back("queue: cleanup");
    co_return;
  }
};

}  // namespace

CO_TEST_CASE(task_manager_run) {
  stages.clear();
  //[task_manager_run
  auto ex = co_await net::this_coro::executor;  // name the executor first
  crew::task_manager manager{ex};
  manager.add("cache", cache{}, crew::task_kind::strict);
  // An execute-only task of kind stop_group: once it returns normally, the run cancels
  // the other executes, cleans up, and completes without an error.
  manager.add_execute_task(
      "batch",
      []() -> net::awaitable<void> {
        stages.push_back("batch: done");
        co_return;
      },
      crew::task_kind::stop_group);
  auto run = manager.run();
  co_await std::move(run);  // rethrows crew::task_errors if something failed
  //]
  BOOST_TEST(stages == (std::vector<std::string>{"cache: load", "batch: done", "cache: flush"}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(task_manager_result) {
  stages.clear();
  auto ex = co_await net::this_coro::executor;
  crew::task_manager manager{ex};
  manager.add("cache", cache{}, crew::task_kind::strict);
  manager.add("queue", broken_queue{}, crew::task_kind::strict);
  std::ostringstream log;
  //[task_manager_result
  auto op = manager.async_run(net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  try {
    if (e) std::rethrow_exception(e);
  } catch (crew::task_errors const& errors) {
    for (auto const& f : errors.failures())  // in the order they happened
      log << f.name << " failed in " << crew::to_string(f.stage) << ": " << f.what() << '\n';
  }
  //]
  BOOST_TEST(log.str() == "queue failed in initialize: queue: broker unreachable\n");
  // Cleaned up from the failed task back to the first; nothing executed.
  BOOST_TEST(stages == (std::vector<std::string>{"cache: load", "queue: cleanup", "cache: flush"}),
             boost::test_tools::per_element());
}

CO_TEST_CASE(task_manager_idle) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> handled{0};
  //[task_manager_idle
  crew::task_manager_options options;
  options.name = "jobs";
  options.allow_idle = true;  // no task left running is fine: wait for stop()
  crew::task_manager manager{ex, options};
  std::exception_ptr result;
  bool done = false;
  manager.async_run([&](std::exception_ptr e) {
    result = e;
    done = true;
  });
  // While it runs, work arrives as execute-only tasks; kind error: a normal return
  // ends only that task, a failure ends the run.
  for (int i = 0; i < 3; ++i)
    manager.add_execute_task(
        "job " + std::to_string(i),
        [&]() -> net::awaitable<void> {
          ++handled;
          co_return;
        },
        crew::task_kind::error);
  //]
  co_await crew_test::yield_until([&] { return handled == 3; });
  co_await crew_test::yield_n(10);
  BOOST_TEST(!done);  // idle, still running
  //[task_manager_stop
  manager.stop();  // from any thread: cancel every execute, clean up, complete with no error
  //]
  co_await crew_test::yield_until([&] { return done; });
  BOOST_TEST(!result);
}

CO_TEST_CASE(task_manager_cancel) {
  auto ex = co_await net::this_coro::executor;
  crew::task_manager manager{ex};
  manager.add("cache", cache{}, crew::task_kind::strict);
  std::exception_ptr result;
  bool done = false;
  //[task_manager_cancel
  net::cancellation_signal cancel;  // what cancelling goasync's context does
  manager.async_run(net::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
    result = e;  // operation_aborted, after every cleanup
    done = true;
  }));
  //]
  co_await crew_test::yield_n(10);
  cancel.emit(net::cancellation_type::terminal);
  co_await crew_test::yield_until([&] { return done; });
  BOOST_TEST(crew_test::is_aborted(result));
}

CO_TEST_CASE(provided_tasks) {
  auto ex = co_await net::this_coro::executor;
  crew::task_manager manager{ex};
  std::atomic<int> failures{0};
  //[provided_tasks
  crew::tasks::repeatable_options restart;
  restart.on_failure = [&](std::exception_ptr) { ++failures; };  // default: to stderr
  restart.backoff = crew::exponential_backoff{};  // the default: 100 ms doubling to 30 s
  // execute() again each time it returns or fails, until cancelled
  manager.add("consumer", crew::tasks::repeatable(consumer{}, restart), crew::task_kind::strict);
  // execute() at once, then every 10 s, never overlapping
  manager.add("metrics", crew::tasks::repeat_timer(10s, flush_metrics{}), crew::task_kind::strict);
  // on SIGHUP: cancel execute(), then cleanup(), initialize(), execute() again
  manager.add("http", crew::tasks::interruptible({SIGHUP}, http_server{}), crew::task_kind::strict);
  // once cancelled, execute() has 5 s to return before the manager stops waiting for it
  manager.add("worker", crew::tasks::force_stop(5s, worker{}), crew::task_kind::strict);
  // they nest: a poller whose period restarts on SIGUSR1
  manager.add("poller",
              crew::tasks::interruptible({SIGUSR1}, crew::tasks::repeat_timer(1s, poller{})),
              crew::task_kind::strict);
  //]
  std::exception_ptr result;
  bool done = false;
  manager.async_run([&](std::exception_ptr e) {
    result = e;
    done = true;
  });
  co_await crew_test::yield_until([&] {
    return consumer::executes > 0 && flush_metrics::executes > 0 && http_server::executes > 0 &&
           worker::executes > 0 && poller::executes > 0;
  });
  manager.stop();
  co_await crew_test::yield_until([&] { return done; });
  BOOST_TEST(!result);
  BOOST_TEST(failures == 0);
}

// ---------------------------------------------------------------- runtime

//[runtime_logger
crew::task_local<std::string> request_id{"-"};

// A plain function: it knows nothing of coroutines, yet it names the task it runs in.
void log_line(std::string_view message) {
  std::clog << "task " << crew::this_task::id() << " '" << crew::this_task::name() << "' trace "
            << crew::this_task::trace_id() << " request " << request_id.get() << ": " << message
            << '\n';
}
//]

namespace {

/// What std::clog printed while it lived.
struct captured_clog {
  std::ostringstream text;
  std::streambuf* old = std::clog.rdbuf(text.rdbuf());
  ~captured_clog() { std::clog.rdbuf(old); }
};

}  // namespace

CO_TEST_CASE(runtime_logger_and_traceparent) {
  auto ex = co_await net::this_coro::executor;
  captured_clog out;
  std::string outgoing;
  crew::task_group g{ex};
  //[runtime_traceparent
  g.spawn(
      [&]() -> net::awaitable<void> {
        // The caller's W3C header: this task and every task it spawns join its trace.
        crew::this_task::set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        request_id.set("r-17");  // children spawned from now on start with a copy
        log_line("handling");
        outgoing = crew::this_task::traceparent();  // for the next hop's request
        co_return;
      },
      {.name = "request"});
  //]
  co_await g.wait();
  auto const text = out.text.str();
  BOOST_TEST(text.find("'request' trace 4bf92f3577b34da6a3ce929d0e0e4736 request r-17: handling") !=
                 std::string::npos,
             text);
  BOOST_TEST(outgoing.find("00-4bf92f3577b34da6a3ce929d0e0e4736-") == 0u);
}

CO_TEST_CASE(runtime_go) {
  auto ex = co_await net::this_coro::executor;
  crew_test::captured_reports reports;
  bool cleaned = false;
  std::exception_ptr slow_result;
  //[runtime_go
  // Fire and forget, but tracked: a failure reaches the runtime's handlers (stderr by
  // default), as co_spawn(ex, task, detached) would drop it.
  crew::go(ex, []() -> net::awaitable<void> { throw std::runtime_error("lost? never"); });

  // The cleanup runs exactly once, whatever ends the task.
  crew::go_with_cleanup(ex, crew_test::yield_once(), [&] { cleaned = true; });

  // Cancelled after 10 ms: completes with crew::error::timed_out once the task ended.
  auto op =
      crew::async_with_timeout(crew_test::sleep_for(1h), 10ms, net::as_tuple(net::use_awaitable));
  auto [e] = co_await std::move(op);
  //]
  slow_result = e;
  co_await crew_test::yield_until([&] { return cleaned && reports.total() == 1; });
  BOOST_TEST((crew_test::code_of(slow_result) == crew::error::timed_out));
  BOOST_TEST(reports.reports()[0].failures[0].what() == std::string("lost? never"));
}

CO_TEST_CASE(runtime_hooks_and_stats) {
  auto ex = co_await net::this_coro::executor;
  auto const before = crew::stats();
  std::atomic<int> started{0};
  //[runtime_hooks
  auto hook = crew::on_task_start([&](crew::task_info const& parent, crew::task_info const& self) {
    ++started;  // every crew task of every component, on its own thread
    (void)parent, (void)self;
  });
  crew::task_group g{ex};
  for (int i = 0; i < 3; ++i) g.spawn(crew_test::yield_once());
  co_await g.wait();
  crew::remove_hook(hook);  // when it returns, the hook runs nowhere and never again

  crew::runtime_stats s = crew::stats();
  std::cout << "launched " << s.launched << ", active " << s.active << ", failed " << s.failed
            << '\n';
  crew::dump(std::cout);  // every live task, as a tree
  //]
  BOOST_TEST(started == 3);
  BOOST_TEST(s.launched - before.launched == 3u);
}

CO_TEST_CASE(runtime_handlers) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::string> seen;
  //[runtime_handlers
  crew::set_exception_handler([&](crew::task_info const& task, std::exception_ptr e,
                                  boost::stacktrace::stacktrace const& where_thrown) {
    seen.push_back(task.name + ": " + crew_test::what_of(e));  // or: to the error tracker
    (void)where_thrown;
  });
  crew::set_error_handler([&](crew::task_info const& task, std::exception_ptr e) {
    seen.push_back(task.name + " returned " + crew_test::what_of(e));  // Go's "return err"
  });
  //]
  crew::go(ex, []() -> net::awaitable<void> { throw std::runtime_error("boom"); });
  co_await crew_test::yield_until([&] { return seen.size() == 1; });
  crew::set_exception_handler(nullptr);
  crew::set_error_handler(nullptr);
  BOOST_TEST(seen[0] == ": boom");
}

CO_TEST_CASE(runtime_workers) {
  auto ex = co_await net::this_coro::executor;
  std::atomic<int> runs{0};
  //[runtime_workers
  crew::start_worker(
      ex, "cache-refresher",
      [&]() -> net::awaitable<void> {
        ++runs;  // refresh once; returning (or failing) restarts it after a backoff
        co_return;
      },
      {.restart = crew::restart::permanent, .backoff = crew::backoff::constant(1ms)});

  crew::worker_info w = crew::worker_status("cache-refresher");  // state, restarts, last_error
  auto stop = crew::async_stop_worker("cache-refresher", net::use_awaitable);
  co_await std::move(stop);
  //]
  BOOST_TEST((w.state == crew::worker_state::running || w.state == crew::worker_state::waiting));
  BOOST_TEST((crew::worker_status("cache-refresher").state == crew::worker_state::stopped));
}
