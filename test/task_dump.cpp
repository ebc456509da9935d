//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Starts the real samples/task_dump binary (its path is the first argument after
// `--`), sends it SIGUSR1 with kill() and reads the task dumps it prints — a tree of
// server, sessions and queries, with states, ages and trace ids — then SIGTERM or
// SIGINT, and checks its summary and exit status; and checks its bad command lines.
//
#define BOOST_TEST_MODULE crew_task_dump
#include <boost/test/unit_test.hpp>

#include "daemon_process.hpp"

#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using crew_test::daemon_process;
using crew_test::strings;
using namespace std::chrono_literals;

namespace {

/// One task line of a dump.
struct dump_line {
  std::size_t indent = 0;
  std::uint64_t id = 0;
  std::string name;
  std::string state;
  std::chrono::nanoseconds age{};
  std::uint64_t parent = 0;  // as printed; 0 for none
  std::string owner;         // "task group 'sessions'"...
  std::string trace;
  std::uint64_t above = 0;  // the task this line is indented under; 0 for a root
};

/// "1.5 s", "250 ms", "3 min"... as format_duration prints them.
std::chrono::nanoseconds parse_age(std::string const& text) {
  static std::regex const age(R"(([0-9]+(?:\.[0-9]+)?) (h|min|s|ms|us|ns))");
  std::smatch m;
  BOOST_TEST_REQUIRE(std::regex_match(text, m, age), "not an age: '" << text << "'");
  static std::map<std::string, double> const ns_per{{"h", 3600e9}, {"min", 60e9}, {"s", 1e9},
                                                    {"ms", 1e6},   {"us", 1e3},   {"ns", 1}};
  return std::chrono::nanoseconds(
      static_cast<std::int64_t>(std::stod(m.str(1)) * ns_per.at(m.str(2))));
}

/// A dump: its header's count, and its task lines, in order.
struct dump {
  std::size_t live = 0;
  std::vector<dump_line> tasks;

  dump_line const& operator[](std::string const& name) const {
    auto const it = std::find_if(tasks.begin(), tasks.end(),
                                 [&](dump_line const& l) { return l.name == name; });
    if (it == tasks.end()) throw std::runtime_error("no task '" + name + "' in the dump");
    return *it;
  }

  std::size_t count(std::string const& name) const {
    return static_cast<std::size_t>(std::count_if(
        tasks.begin(), tasks.end(), [&](dump_line const& l) { return l.name == name; }));
  }
};

dump parse_dump(strings const& lines) {
  static std::regex const header(R"(crew: ([0-9]+) live tasks?)");
  static std::regex const task_line(
      R"(( *)task ([0-9]+)(?: '([^']*)')? (queued|running|suspended), age ([^,]+)(?:, parent ([0-9]+))?, ([a-z ]+(?: '[^']*')?)(?:, trace ([0-9a-f]{32}))?, spawned at (.+))");
  dump d;
  BOOST_TEST_REQUIRE(!lines.empty());
  std::smatch m;
  BOOST_TEST_REQUIRE(std::regex_match(lines[0], m, header), lines[0]);
  d.live = std::stoul(m.str(1));
  std::vector<std::pair<std::size_t, std::uint64_t>> stack;  // (indent, id) of the ancestors
  for (std::size_t i = 1; i < lines.size(); ++i) {
    BOOST_TEST_REQUIRE(std::regex_match(lines[i], m, task_line), "not a task line: " << lines[i]);
    dump_line l;
    l.indent = static_cast<std::size_t>(m.length(1));
    l.id = std::stoull(m.str(2));
    l.name = m.str(3);
    l.state = m.str(4);
    l.age = parse_age(m.str(5));
    l.parent = m[6].matched ? std::stoull(m.str(6)) : 0;
    l.owner = m.str(7);
    l.trace = m.str(8);
    BOOST_TEST(!m.str(9).empty());  // a spawn site
    while (!stack.empty() && stack.back().first >= l.indent) stack.pop_back();
    if (!stack.empty()) {
      BOOST_TEST(l.indent == stack.back().first + 2, "line " << i << " jumps a level");
      l.above = stack.back().second;
    }
    stack.emplace_back(l.indent, l.id);
    d.tasks.push_back(std::move(l));
  }
  BOOST_TEST(d.live == d.tasks.size());
  return d;
}

/// Sends SIGUSR1 and reads the dump it prints.
dump request_dump(daemon_process& daemon) {
  daemon.signal(SIGUSR1);
  daemon.read_until("--- task dump ---");
  strings lines;
  for (auto line = daemon.read_line(); line != "--- end of dump ---"; line = daemon.read_line())
    lines.push_back(line);
  return parse_dump(lines);
}

unsigned queries_of(unsigned session) {
  return session % 2 == 0 ? 2 : 1;
}

/// The tree: the server actor, its sessions indented under it, their queries under them,
/// every trace id inherited from the session, and the dumper running as it dumps.
void check_tree(dump const& d, unsigned sessions) {
  auto const& server = d["server"];
  BOOST_TEST(server.owner == "run group 'task_dump'");
  BOOST_TEST(server.parent == 0u);
  BOOST_TEST(server.above == 0u);
  BOOST_TEST(server.state == "suspended");
  BOOST_TEST(d["dumper"].state == "running");
  BOOST_TEST(d.count("heartbeat") <= 1u);  // a run in flight, or between two runs
  for (unsigned n = 1; n <= sessions; ++n) {
    auto const id = std::to_string(n);
    auto const& s = d["session " + id];
    BOOST_TEST_CONTEXT(s.name) {
      BOOST_TEST(s.parent == server.id);
      BOOST_TEST(s.above == server.id);
      BOOST_TEST(s.indent == server.indent + 2);
      BOOST_TEST(s.owner == "task group 'sessions'");
      BOOST_TEST(s.state == "suspended");
      BOOST_TEST(s.age <= server.age);
      BOOST_TEST(s.trace.size() == 32u);
      BOOST_TEST(s.trace != server.trace);  // set from the session's traceparent
    }
    for (unsigned k = 1; k <= queries_of(n); ++k) {
      auto const& q = d["query " + id + '.' + std::to_string(k)];
      BOOST_TEST_CONTEXT(q.name) {
        BOOST_TEST(q.parent == s.id);
        BOOST_TEST(q.above == s.id);
        BOOST_TEST(q.indent == s.indent + 2);
        BOOST_TEST(q.owner == "task group 'session " + id + " queries'");
        BOOST_TEST(q.state == "suspended");
        BOOST_TEST(q.age <= s.age);
        BOOST_TEST(q.trace == s.trace);  // inherited
      }
    }
  }
  auto const queries = std::count_if(d.tasks.begin(), d.tasks.end(),
                                     [](auto const& l) { return l.name.starts_with("query "); });
  BOOST_TEST(static_cast<unsigned>(queries) == sessions + sessions / 2);
}

/// The value after `key ` in a line of "key value, key value" pairs.
std::uint64_t field(std::string const& line, std::string const& key) {
  std::smatch m;
  BOOST_TEST_REQUIRE(std::regex_search(line, m, std::regex(key + " ([0-9]+)")),
                     "no '" << key << "' in " << line);
  return std::stoull(m.str(1));
}

std::string const& line_starting(strings const& lines, std::string const& prefix) {
  auto const it = std::find_if(lines.begin(), lines.end(),
                               [&](std::string const& l) { return l.starts_with(prefix); });
  BOOST_TEST_REQUIRE((it != lines.end()), "no line starting with '" << prefix << "'");
  return *it;
}

/// Runs the daemon with `args` to its end; its exit status and standard error.
std::pair<int, std::string> run_for_stderr(std::vector<std::string> args) {
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  ::posix_spawn_file_actions_addclose(&actions, fds[0]);
  args.insert(args.begin(), crew_test::daemon_path());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int const rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  std::string err;
  if (rc == 0) {
    char chunk[4096];
    for (;;) {
      pollfd p{fds[0], POLLIN, 0};
      BOOST_TEST_REQUIRE(::poll(&p, 1, 60'000) == 1, "no output for 60 s");
      auto const n = ::read(fds[0], chunk, sizeof chunk);
      if (n <= 0) break;
      err.append(chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(fds[0]);
  BOOST_TEST_REQUIRE(rc == 0);
  int status = 0;
  BOOST_TEST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), err};
}

}  // namespace

BOOST_AUTO_TEST_CASE(each_sigusr1_prints_a_dump_and_sigterm_prints_the_summary) {
  daemon_process daemon({"--sessions", "3", "--tick-ms", "5"});
  auto const ready = daemon.read_until("task_dump: ready");
  BOOST_TEST(ready.ends_with(", 3 sessions"));

  auto const first = request_dump(daemon);
  check_tree(first, 3);
  std::this_thread::sleep_for(50ms);
  auto const second = request_dump(daemon);  // the daemon kept running
  check_tree(second, 3);
  for (auto const* name : {"server", "session 1", "session 2", "query 2.2"}) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(second[name].id == first[name].id);  // the same tasks, older
      // Order, not a duration: ages are printed rounded to the millisecond, so the
      // difference after a 50 ms pause may print as 49 ms.
      BOOST_TEST((second[name].age > first[name].age));
    }
  }
  // The dumper is one task looping, not a task per signal.
  BOOST_TEST(second["dumper"].id == first["dumper"].id);

  // The log lines name their task and carry its trace id and request id, which the
  // queries inherited from their session.
  auto const& seen = daemon.seen();
  for (unsigned n = 1; n <= 3; ++n) {
    auto const id = std::to_string(n);
    auto const& s = first["session " + id];
    line_starting(seen, "[task " + std::to_string(s.id) + " 'session " + id + "' trace " + s.trace +
                            " req-" + id + "] session started");
    for (unsigned k = 1; k <= queries_of(n); ++k) {
      auto const& q = first["query " + id + '.' + std::to_string(k)];
      char span[17];
      std::snprintf(span, sizeof span, "%016llx", static_cast<unsigned long long>(q.id));
      line_starting(seen, "[task " + std::to_string(q.id) + " '" + q.name + "' trace " + q.trace +
                              " req-" + id + "] query #" + std::to_string(k) + " of session " + id +
                              " (traceparent 00-" + q.trace + '-' + span + "-01)");
    }
  }

  daemon.signal(SIGTERM);
  auto const rest = daemon.read_rest();
  BOOST_TEST(std::count(rest.begin(), rest.end(), "stopped: SIGTERM") == 1);
  auto const cancelled_queries = std::count_if(rest.begin(), rest.end(), [](auto const& l) {
    return l.starts_with("[task ") && l.ends_with("] query cancelled");
  });
  BOOST_TEST(cancelled_queries == 4);
  line_starting(rest, "heartbeat: stopped after ");
  auto const& summary = line_starting(rest, "summary: ");
  BOOST_TEST(field(summary, "launched") ==
             field(summary, "succeeded") + field(summary, "failed") + field(summary, "cancelled"));
  // The signals actor ends the run with crew::signal_received: a stop, counted as
  // cancelled.
  BOOST_TEST(field(summary, "failed") == 0u);
  // At least: 3 actors, 3 sessions, 4 queries, the go task and a heartbeat run.
  BOOST_TEST(field(summary, "launched") >= 12u);
  BOOST_TEST(field(summary, "cancelled") >= 9u);  // the tree, the dumper, the heartbeat
  BOOST_TEST(field(summary, "dumps") == 2u);
  BOOST_TEST(summary.ends_with(", exit 0"));
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(one_session_and_sigint) {
  daemon_process daemon({"--sessions", "1"});
  BOOST_TEST(daemon.read_until("task_dump: ready").ends_with(", 1 session"));
  auto const d = request_dump(daemon);
  check_tree(d, 1);
  BOOST_TEST(d.count("session 2") == 0u);
  daemon.signal(SIGINT);
  auto const rest = daemon.read_rest();
  BOOST_TEST(std::count(rest.begin(), rest.end(), "stopped: SIGINT") == 1);
  BOOST_TEST(line_starting(rest, "summary: ").ends_with(", dumps 1, exit 0"));
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(a_bad_command_line_exits_2_naming_the_option) {
  struct bad {
    std::vector<std::string> args;
    std::string message;
  };
  for (auto const& b : {
           bad{{"--sessions", "many"}, "task_dump: --sessions: 'many' is not a number from 1 to"},
           bad{{"--sessions", "0"}, "task_dump: --sessions: '0' is not a number from 1 to"},
           bad{{"--sessions"}, "task_dump: --sessions: '' is not a number"},
           bad{{"--tick-ms", "-5"}, "task_dump: --tick-ms: '-5' is not a number"},
           bad{{"--tick-ms", "0"}, "task_dump: --tick-ms: '0' is not a number from 1 to"},
           bad{{"--verbose"}, "task_dump: unknown argument '--verbose'"},
       }) {
    BOOST_TEST_CONTEXT(crew_test::joined(b.args)) {
      auto const [status, err] = run_for_stderr(b.args);
      BOOST_TEST(status == 2);
      BOOST_TEST(err.starts_with(b.message), err);
      BOOST_TEST(crew_test::contains(err, "usage: task_dump "));
    }
  }
}
