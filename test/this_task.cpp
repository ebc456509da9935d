//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// this_task, trace ids and task_local: readable from plain functions called inside a
// task, on whatever thread and after whatever kind of resumption.
//
#define BOOST_TEST_MODULE crew_this_task
#include <crew/retry.hpp>
#include <crew/task_group.hpp>
#include <crew/this_task.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "co_test.hpp"
#include "test_util.hpp"

namespace net = boost::asio;
using namespace std::chrono_literals;
using crew_test::yield_n;
using crew_test::yield_once;

namespace {

/// A plain function, as a logger would be: it knows nothing of coroutines.
std::string log_prefix() {
  std::ostringstream os;
  os << '[' << crew::this_task::id() << ' ' << crew::this_task::name() << ' '
     << crew::this_task::trace_id() << ']';
  return os.str();
}

crew::task_local<std::string> request_id{"none"};
crew::task_local<int> depth;

}  // namespace

BOOST_AUTO_TEST_CASE(outside_a_task_everything_is_empty) {
  BOOST_TEST(crew::this_task::id() == 0u);
  BOOST_TEST(crew::this_task::parent_id() == 0u);
  BOOST_TEST(crew::this_task::name().empty());
  BOOST_TEST(!crew::this_task::trace_id());
  BOOST_TEST(!crew::this_task::info());
  BOOST_TEST(crew::this_task::traceparent().empty());
  BOOST_TEST(!crew::this_task::set_trace_id(crew::trace_id::generate()));
  BOOST_TEST(
      !crew::this_task::set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  BOOST_TEST(request_id.get() == "none");
  BOOST_TEST(depth.get() == 0);
  BOOST_TEST(!request_id.set("x"));
  BOOST_TEST(!request_id.reset());
  BOOST_TEST(!request_id.has_value());
}

CO_TEST_CASE(a_plain_co_spawn_is_not_a_crew_task) {
  // The test body itself runs in a plain co_spawn.
  BOOST_TEST(crew::this_task::id() == 0u);
  co_await yield_once();
  BOOST_TEST(crew::this_task::id() == 0u);
}

CO_TEST_CASE(identity_inside_a_task_and_its_child) {
  auto ex = co_await net::this_coro::executor;
  std::uint64_t parent = 0, child_parent = 0, child = 0;
  std::string parent_log, parent_name;
  crew::task_group g{ex};
  g.spawn(
      [&]() -> net::awaitable<void> {
        parent = crew::this_task::id();
        parent_name = std::string(crew::this_task::name());
        parent_log = log_prefix();
        auto inner_ex = co_await net::this_coro::executor;
        crew::task_group inner{inner_ex};
        inner.spawn([&]() -> net::awaitable<void> {
          child = crew::this_task::id();
          child_parent = crew::this_task::parent_id();
          co_return;
        });
        co_await inner.wait();
        auto const info = crew::this_task::info();
        BOOST_TEST(info.id == parent);
        BOOST_TEST(std::string(info.owner_kind) == "task group");
        BOOST_TEST(info.spawn_site.line() > 0u);
      },
      {.name = "handler"});
  co_await g.wait();
  BOOST_TEST(parent != 0u);
  BOOST_TEST(parent_name == "handler");
  BOOST_TEST(child != 0u);
  BOOST_TEST(child != parent);
  BOOST_TEST(child_parent == parent);
  BOOST_TEST(parent_log.find("handler") != std::string::npos);
  BOOST_TEST(parent_log.find(std::to_string(parent)) != std::string::npos);
}

// ---------------------------------------------------------------- trace ids

BOOST_AUTO_TEST_CASE(trace_ids_parse_and_print) {
  auto const t = crew::trace_id::generate();
  BOOST_TEST(static_cast<bool>(t));
  BOOST_TEST(t.to_string().size() == 32u);
  BOOST_TEST((crew::trace_id::parse(t.to_string()) == t));
  BOOST_TEST(crew::trace_id::generate() != t);
  auto const p = crew::trace_id::parse("4BF92F3577B34DA6A3CE929D0E0E4736");
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->to_string() == "4bf92f3577b34da6a3ce929d0e0e4736");
  BOOST_TEST(p->high() == 0x4bf92f3577b34da6ull);
  BOOST_TEST(!crew::trace_id::parse("00000000000000000000000000000000"));
  BOOST_TEST(!crew::trace_id::parse("4bf92f3577b34da6a3ce929d0e0e473"));    // 31 digits
  BOOST_TEST(!crew::trace_id::parse("4bf92f3577b34da6a3ce929d0e0e47366"));  // 33
  BOOST_TEST(!crew::trace_id::parse("4bf92f3577b34da6a3ce929d0e0e473g"));
  BOOST_TEST(!crew::trace_id::parse(""));
  BOOST_TEST(crew::trace_id().to_string() == std::string(32, '0'));
}

BOOST_AUTO_TEST_CASE(traceparent_headers_are_checked) {
  auto const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto const t = crew::trace_id::from_traceparent(good);
  BOOST_REQUIRE(t.has_value());
  BOOST_TEST(t->to_string() == "4bf92f3577b34da6a3ce929d0e0e4736");
  // A later version may append fields.
  BOOST_TEST(crew::trace_id::from_traceparent(
                 "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
                 .has_value());
  for (char const* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       // no flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 has no more
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
       })
    BOOST_TEST(!crew::trace_id::from_traceparent(bad).has_value(), bad);
}

CO_TEST_CASE(children_inherit_the_trace_id_and_roots_differ) {
  auto ex = co_await net::this_coro::executor;
  crew::trace_id root_a, root_b, child_a, grandchild_a;
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    root_a = crew::this_task::trace_id();
    auto inner_ex = co_await net::this_coro::executor;
    crew::task_group inner{inner_ex};
    inner.spawn([&]() -> net::awaitable<void> {
      child_a = crew::this_task::trace_id();
      auto leaf_ex = co_await net::this_coro::executor;
      crew::task_group leaf{leaf_ex};
      leaf.spawn([&]() -> net::awaitable<void> {
        grandchild_a = crew::this_task::trace_id();
        co_return;
      });
      co_await leaf.wait();
    });
    co_await inner.wait();
  });
  g.spawn([&]() -> net::awaitable<void> {
    root_b = crew::this_task::trace_id();
    co_return;
  });
  co_await g.wait();
  BOOST_TEST(static_cast<bool>(root_a));
  BOOST_TEST(static_cast<bool>(root_b));
  BOOST_TEST(root_a != root_b);
  BOOST_TEST(child_a == root_a);
  BOOST_TEST(grandchild_a == root_a);
}

CO_TEST_CASE(a_traceparent_header_sets_the_trace_for_the_task_and_later_children) {
  auto ex = co_await net::this_coro::executor;
  std::string outgoing, before, child;
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    before = crew::this_task::trace_id().to_string();
    BOOST_TEST(!crew::this_task::set_traceparent("garbage"));
    BOOST_TEST(crew::this_task::trace_id().to_string() == before);  // unchanged
    BOOST_TEST(crew::this_task::set_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    outgoing = crew::this_task::traceparent();
    auto inner_ex = co_await net::this_coro::executor;
    crew::task_group inner{inner_ex};
    inner.spawn([&]() -> net::awaitable<void> {
      child = crew::this_task::trace_id().to_string();
      co_return;
    });
    co_await inner.wait();
    BOOST_TEST(!crew::this_task::set_trace_id(crew::trace_id()));  // the invalid id
  });
  co_await g.wait();
  BOOST_TEST(before != "4bf92f3577b34da6a3ce929d0e0e4736");
  BOOST_TEST(child == "4bf92f3577b34da6a3ce929d0e0e4736");
  BOOST_REQUIRE(outgoing.size() == 55u);
  BOOST_TEST(outgoing.substr(0, 36) == "00-4bf92f3577b34da6a3ce929d0e0e4736-");
  BOOST_TEST(outgoing.substr(52) == "-01");
  BOOST_TEST(crew::trace_id::from_traceparent(outgoing).has_value());
}

namespace {

/// 1,000 suspensions of every kind, checking after each that the task is still itself.
net::awaitable<void> wander(net::any_io_executor strand_ex, int& mismatches) {
  auto const id = crew::this_task::id();
  auto const trace = crew::this_task::trace_id();
  auto ex = co_await net::this_coro::executor;
  net::local::stream_protocol::socket a(ex), b(ex);
  net::local::connect_pair(a, b);
  net::steady_timer timer(ex);
  auto check = [&] {
    if (crew::this_task::id() != id || crew::this_task::trace_id() != trace ||
        request_id.get() != "req-" + std::to_string(id))
      ++mismatches;
  };
  request_id.set("req-" + std::to_string(id));
  for (int i = 0; i < 250; ++i) {
    co_await net::post(ex, net::use_awaitable);
    check();
    timer.expires_after(0ms);
    co_await timer.async_wait(net::use_awaitable);
    check();
    co_await net::post(strand_ex, net::use_awaitable);  // resumes via the strand
    check();
    char out = 'x', in = 0;
    co_await net::async_write(a, net::buffer(&out, 1), net::use_awaitable);
    co_await net::async_read(b, net::buffer(&in, 1), net::use_awaitable);
    check();
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(identity_survives_1000_suspensions_on_a_2_thread_pool) {
  net::thread_pool pool(2);
  auto strand = net::make_strand(pool);
  int mismatches[8] = {};
  crew::task_group g{pool.get_executor()};
  for (int& m : mismatches) g.spawn(wander(strand, m));
  auto fut = g.async_wait(net::use_future);
  BOOST_CHECK_NO_THROW(fut.get());
  pool.join();
  for (int m : mismatches) BOOST_TEST(m == 0);
}

CO_TEST_CASE_MT(identity_survives_suspensions_on_a_2_thread_io_context, 2) {
  auto ex = co_await net::this_coro::executor;
  auto strand = net::make_strand(ex);
  int mismatches[4] = {};
  crew::task_group g{ex};
  for (int& m : mismatches) g.spawn(wander(strand, m));
  co_await g.wait();
  for (int m : mismatches) BOOST_TEST(m == 0);
}

// ---------------------------------------------------------------- task_local

CO_TEST_CASE(task_locals_are_isolated_between_tasks_on_one_thread) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::string> seen;
  crew::task_group g{ex};
  for (int i = 0; i < 3; ++i)
    g.spawn([&, i]() -> net::awaitable<void> {
      BOOST_TEST(request_id.get() == "none");
      BOOST_TEST(request_id.set("r" + std::to_string(i)));
      for (int k = 0; k < 5; ++k) {
        co_await yield_once();  // the other tasks run and set theirs meanwhile
        if (request_id.get() != "r" + std::to_string(i)) seen.push_back(request_id.get());
      }
      BOOST_TEST(request_id.has_value());
      BOOST_TEST(request_id.reset());
      BOOST_TEST(request_id.get() == "none");
    });
  co_await g.wait();
  BOOST_TEST(seen.empty());
}

CO_TEST_CASE(children_inherit_a_copy_of_each_task_local) {
  auto ex = co_await net::this_coro::executor;
  int child_saw = -1, child_after_parent_set = -1, parent_after_child_set = -1;
  bool child_set = false, parent_set = false;
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    depth.set(1);
    auto inner_ex = co_await net::this_coro::executor;
    crew::task_group inner{inner_ex};
    inner.spawn([&]() -> net::awaitable<void> {
      child_saw = depth.get();
      depth.set(2);
      child_set = true;
      co_await crew_test::yield_until([&] { return parent_set; });
      child_after_parent_set = depth.get();
    });
    co_await crew_test::yield_until([&] { return child_set; });
    parent_after_child_set = depth.get();
    depth.set(3);
    parent_set = true;
    co_await inner.wait();
    BOOST_TEST(depth.get() == 3);
  });
  co_await g.wait();
  BOOST_TEST(child_saw == 1);
  BOOST_TEST(parent_after_child_set == 1);
  BOOST_TEST(child_after_parent_set == 2);
}

CO_TEST_CASE(retry_attempts_inherit_the_callers_context) {
  auto ex = co_await net::this_coro::executor;
  std::vector<std::string> seen;
  crew::trace_id caller_trace;
  std::vector<crew::trace_id> attempt_traces;
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    request_id.set("retrying");
    caller_trace = crew::this_task::trace_id();
    auto inner_ex = co_await net::this_coro::executor;
    auto op = crew::async_retry(
        inner_ex,
        [&]() -> net::awaitable<void> {
          seen.push_back(request_id.get());
          attempt_traces.push_back(crew::this_task::trace_id());
          if (seen.size() < 3) throw crew_test::test_error(1);
          co_return;
        },
        {.backoff = crew::backoff::none()}, net::as_tuple(net::use_awaitable));
    auto [e] = co_await std::move(op);
    BOOST_TEST(!e);
  });
  co_await g.wait();
  BOOST_TEST((seen == std::vector<std::string>{"retrying", "retrying", "retrying"}));
  for (auto const& t : attempt_traces) BOOST_TEST(t == caller_trace);
}

CO_TEST_CASE(a_task_local_of_a_move_only_type) {
  static crew::task_local<std::unique_ptr<int>> owned;
  auto ex = co_await net::this_coro::executor;
  crew::task_group g{ex};
  g.spawn([&]() -> net::awaitable<void> {
    BOOST_TEST(owned.get() == nullptr);
    owned.set(std::make_unique<int>(42));
    co_await yield_once();
    BOOST_TEST(*owned.get() == 42);
  });
  co_await g.wait();
}
