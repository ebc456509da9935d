//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// task_dump: a daemon that prints crew's task dump on SIGUSR1, the way a Go program
// prints its goroutines.
//
//   task_dump [--sessions N] [--tick-ms MS] [--self-test]
//
//   server     a run group actor serving N simulated sessions: a task group
//              'sessions' whose tasks 'session 1'..'session N' each take a request
//              id (a crew::task_local) and a trace id from an incoming traceparent,
//              then spawn one or two queries ('query 1.1'...) in a group of their
//              own that wait on a timer: the dump shows the tree server → session →
//              query. They log through a plain function that knows nothing of
//              coroutines, yet prints the task's id, name, trace id and request id
//              (crew::this_task).
//   dumper     an actor that waits for SIGUSR1 and prints `--- task dump ---`,
//              crew::dump(), `--- end of dump ---`, again on every signal.
//   signals    crew::signals({SIGINT, SIGTERM}): a graceful shutdown.
//   heartbeat  a background worker (crew::start_worker): each run waits --tick-ms and
//              returns, and is started again at once; stopped with
//              crew::async_stop_all_workers once the run group ended.
//
// A crew::go task prints `task_dump: ready, pid P, N sessions` once every session and
// query is suspended. On SIGTERM the daemon prints a summary of crew::stats() and exits
// 0; 1 if something failed, 2 on a bad command line.
// --self-test raises SIGUSR1, checks the tree in the dump and the log lines, raises
// SIGTERM, and checks the statistics and the heartbeat worker.
//
#include <crew/crew.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

struct options {
  unsigned sessions = 3;
  std::chrono::milliseconds tick = 1000ms;
  bool self_test = false;
};

constexpr char const* usage = "usage: task_dump [--sessions N] [--tick-ms MS] [--self-test]\n";

std::uint64_t parse_number(std::string_view option, char const* value, std::uint64_t min,
                           std::uint64_t max) {
  std::uint64_t n = 0;
  std::string_view v = value ? value : "";
  auto const [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || n < min || n > max)
    throw std::invalid_argument(std::string(option) + ": '" + std::string(v) +
                                "' is not a number from " + std::to_string(min) + " to " +
                                std::to_string(max));
  return n;
}

options parse_command_line(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view const arg = argv[i];
    auto value = [&] { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--sessions")
      opt.sessions = static_cast<unsigned>(parse_number(arg, value(), 1, 1000));
    else if (arg == "--tick-ms")
      opt.tick = std::chrono::milliseconds(parse_number(arg, value(), 1, 86'400'000));
    else if (arg == "--self-test")
      opt.self_test = true;
    else
      throw std::invalid_argument("unknown argument '" + std::string(arg) + "'");
  }
  return opt;
}

/// Prints each line or block whole, from any thread, and keeps the lines for the
/// self-test.
class journal {
 public:
  void say(std::string line) {
    std::lock_guard lock(mutex_);
    std::cout << line << std::endl;
    lines_.push_back(std::move(line));
  }

  /// Several lines at once, never interleaved with another thread's.
  void say_block(std::string const& text) {
    std::lock_guard lock(mutex_);
    std::cout << text << std::flush;
  }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

struct daemon_state {
  options opt;
  journal out;
  std::atomic<std::uint64_t> heartbeats{0};
  std::atomic<bool> stopped{false};  // the run group ended
  std::atomic<unsigned> dumps{0};
  std::mutex dump_mutex;
  std::string last_dump;
};

/// Queries of session `n`: one for odd sessions, two for even ones.
unsigned queries_of(unsigned n) {
  return n % 2 == 0 ? 2 : 1;
}

unsigned queries_in_all(unsigned sessions) {
  return sessions + sessions / 2;
}

// ---------------------------------------------------------------- logging

//[task_dump_logger
crew::task_local<std::string> request_id{"-"};

/// A plain function, as any logger is: it knows nothing of coroutines, yet names the
/// crew task it was called from, wherever that task was resumed.
void log(journal& out, std::string_view message) {
  std::ostringstream line;
  line << "[task " << crew::this_task::id() << " '" << crew::this_task::name() << "' trace "
       << crew::this_task::trace_id() << ' ' << request_id.get() << "] " << message;
  out.say(line.str());
}
//]

/// A W3C traceparent header, as an incoming request would carry.
std::string incoming_traceparent() {
  char span[17];
  std::snprintf(span, sizeof span, "%016" PRIx64, crew::trace_id::generate().high() | 1);
  return "00-" + crew::trace_id::generate().to_string() + '-' + span + "-01";
}

// ---------------------------------------------------------------- server

//[task_dump_session
net::awaitable<void> query(daemon_state& d, std::string what) {
  log(d.out, "query " + what + " (traceparent " + crew::this_task::traceparent() + ")");
  auto ex = co_await net::this_coro::executor;
  net::steady_timer slow_database(ex, 1h);
  try {
    co_await slow_database.async_wait(net::use_awaitable);
  } catch (boost::system::system_error const& e) {
    if (e.code() == net::error::operation_aborted) log(d.out, "query cancelled");
    throw;
  }
}

net::awaitable<void> session(daemon_state& d, unsigned n) {
  auto const id = std::to_string(n);
  request_id.set("req-" + id);  // the queries get a copy
  crew::this_task::set_traceparent(incoming_traceparent());
  auto const count = queries_of(n);
  log(d.out, "session started, " + std::to_string(count) + (count == 1 ? " query" : " queries"));
  auto ex = co_await net::this_coro::executor;
  crew::task_group queries{ex, {.name = "session " + id + " queries"}};
  for (unsigned k = 1; k <= count; ++k)
    queries.spawn(query(d, "#" + std::to_string(k) + " of session " + id),
                  {.name = "query " + id + '.' + std::to_string(k)});
  co_await queries.wait();  // cancelled with the session: cancels the queries
}

net::awaitable<void> serve_sessions(daemon_state& d) {
  auto ex = co_await net::this_coro::executor;
  crew::task_group sessions{ex, {.name = "sessions"}};
  for (unsigned n = 1; n <= d.opt.sessions; ++n)
    sessions.spawn(session(d, n), {.name = "session " + std::to_string(n)});
  co_await sessions.wait();
}
//]

// ---------------------------------------------------------------- dumper

//[task_dump_dumper
/// Prints a task dump on each SIGUSR1. `usr1` was made before the run, so a signal sent
/// before this actor waits is kept for it.
net::awaitable<void> dump_on_signal(net::signal_set& usr1, daemon_state& d) {
  for (;;) {
    co_await usr1.async_wait(net::use_awaitable);
    std::ostringstream dump;
    crew::dump(dump);
    d.out.say_block("--- task dump ---\n" + dump.str() + "--- end of dump ---\n");
    {
      std::lock_guard lock(d.dump_mutex);
      d.last_dump = dump.str();
    }
    ++d.dumps;
  }
}
//]

// ---------------------------------------------------------------- heartbeat

net::awaitable<void> heartbeat(daemon_state& d) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex, d.opt.tick);
  co_await timer.async_wait(net::use_awaitable);
  ++d.heartbeats;
}

// ---------------------------------------------------------------- ready

/// Waits, 1 ms at a time, until `done()` or the run group ended; false for the latter.
net::awaitable<bool> poll_until(daemon_state& d, std::function<bool()> done) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex);
  while (!done()) {
    if (d.stopped) co_return false;
    timer.expires_after(1ms);
    co_await timer.async_wait(net::use_awaitable);
  }
  co_return true;
}

/// Whether every session and every query is live and suspended.
bool all_suspended(unsigned sessions) {
  unsigned session_count = 0, query_count = 0;
  for (auto const& t : crew::snapshot()) {
    if (t.state != crew::task_state::suspended) continue;
    if (t.info.owner_name == "sessions") ++session_count;
    if (t.info.owner_name.ends_with(" queries")) ++query_count;
  }
  return session_count == sessions && query_count == queries_in_all(sessions);
}

// ---------------------------------------------------------------- self-test

/// One task line of a dump.
struct dump_line {
  std::size_t indent = 0;
  std::uint64_t id = 0;
  std::string name;
  std::string state;
  std::string age;
  std::uint64_t parent = 0;  // as printed; 0 for none
  std::string trace;
  std::uint64_t above = 0;  // the task this line is indented under; 0 for a root
};

/// The task lines of `dump`, in order; throws on a line that is not one.
std::vector<dump_line> parse_dump(std::string const& dump) {
  static std::regex const task_line(
      R"(( *)task ([0-9]+)(?: '([^']*)')? (queued|running|suspended), age ([^,]+)(?:, parent ([0-9]+))?, (.*))");
  static std::regex const trace(R"(, trace ([0-9a-f]{32}),)");
  std::vector<dump_line> lines;
  std::vector<dump_line const*> path;  // the ancestors of the next line
  std::istringstream in(dump);
  std::string text;
  std::getline(in, text);
  if (!text.starts_with("crew: ")) throw std::runtime_error("no 'crew: ' header: '" + text + "'");
  while (std::getline(in, text)) {
    std::smatch m;
    if (!std::regex_match(text, m, task_line))
      throw std::runtime_error("not a task line: '" + text + "'");
    dump_line l;
    l.indent = static_cast<std::size_t>(m.length(1));
    l.id = std::stoull(m.str(2));
    l.name = m.str(3);
    l.state = m.str(4);
    l.age = m.str(5);
    l.parent = m[6].matched ? std::stoull(m.str(6)) : 0;
    std::smatch t;
    auto const rest = m.str(7);
    if (std::regex_search(rest, t, trace)) l.trace = t.str(1);
    lines.push_back(l);
  }
  // Each level is indented two spaces more than the one above it.
  std::vector<std::pair<std::size_t, std::uint64_t>> stack;  // (indent, id)
  for (auto& l : lines) {
    while (!stack.empty() && stack.back().first >= l.indent) stack.pop_back();
    if (!stack.empty() && stack.back().first + 2 == l.indent) l.above = stack.back().second;
    stack.emplace_back(l.indent, l.id);
  }
  return lines;
}

/// What is wrong with `dump` for a daemon of `sessions` sessions; empty if nothing.
std::vector<std::string> check_dump(std::string const& dump, unsigned sessions) {
  std::vector<std::string> problems;
  std::vector<dump_line> lines;
  try {
    lines = parse_dump(dump);
  } catch (std::exception const& e) {
    return {e.what()};
  }
  std::map<std::string, dump_line> by_name;
  for (auto const& l : lines) by_name[l.name] = l;
  auto find = [&](std::string const& name) -> dump_line const* {
    auto const it = by_name.find(name);
    if (it != by_name.end()) return &it->second;
    problems.push_back("no task '" + name + "' in the dump");
    return nullptr;
  };
  auto const* server = find("server");
  auto const* dumper = find("dumper");
  if (!server) return problems;
  if (dumper && dumper->state != "running")
    problems.push_back("the dumper is " + dumper->state + ", not running, while it dumps");
  for (unsigned n = 1; n <= sessions; ++n) {
    auto const id = std::to_string(n);
    auto const* s = find("session " + id);
    if (!s) continue;
    if (s->above != server->id || s->parent != server->id)
      problems.push_back("'session " + id + "' is not indented under the server");
    if (s->state != "suspended") problems.push_back("'session " + id + "' is " + s->state);
    if (s->trace.empty() || s->trace == server->trace)
      problems.push_back("'session " + id + "' has no trace id of its own");
    for (unsigned k = 1; k <= queries_of(n); ++k) {
      auto const name = "query " + id + '.' + std::to_string(k);
      auto const* q = find(name);
      if (!q) continue;
      if (q->above != s->id || q->parent != s->id)
        problems.push_back("'" + name + "' is not indented under 'session " + id + "'");
      if (q->state != "suspended") problems.push_back("'" + name + "' is " + q->state);
      if (q->age.empty()) problems.push_back("'" + name + "' has no age");
      if (q->trace != s->trace)
        problems.push_back("'" + name + "' has not inherited the trace id of its session");
    }
  }
  return problems;
}

/// What is wrong with the log lines of session 2's second query: it must name itself,
/// and carry its session's request id and trace id, which the dump shows.
std::vector<std::string> check_log(std::vector<std::string> const& log_lines,
                                   std::string const& dump) {
  std::vector<dump_line> lines;
  try {
    lines = parse_dump(dump);
  } catch (std::exception const&) {
    return {};  // check_dump said so
  }
  auto const it =
      std::find_if(lines.begin(), lines.end(), [](auto const& l) { return l.name == "query 2.2"; });
  if (it == lines.end()) return {};
  auto const want = "[task " + std::to_string(it->id) + " 'query 2.2' trace " + it->trace +
                    " req-2] query #2 of session 2";
  if (std::none_of(log_lines.begin(), log_lines.end(),
                   [&](auto const& l) { return l.starts_with(want); }))
    return {"no log line starting with '" + want + "'"};
  return {};
}

/// Raises SIGUSR1, checks the dump, raises SIGTERM. Its problems go to `problems`.
net::awaitable<void> self_test(daemon_state& d, std::vector<std::string>& problems) {
  auto beats = poll_until(d, [&] { return d.heartbeats.load() >= 2; });
  if (!co_await std::move(beats)) {
    problems.push_back("the run ended before the heartbeat beat twice");
    co_return;
  }
  if (crew::worker_status("heartbeat").restarts == 0)
    problems.push_back("the heartbeat beat twice but was never restarted");
  auto const before = d.dumps.load();
  ::kill(::getpid(), SIGUSR1);
  auto wait = poll_until(d, [&] { return d.dumps.load() > before; });
  if (!co_await std::move(wait)) {
    problems.push_back("the run ended before the dump");
    co_return;
  }
  std::string dump;
  {
    std::lock_guard lock(d.dump_mutex);
    dump = d.last_dump;
  }
  for (auto& p : check_dump(dump, d.opt.sessions)) problems.push_back(std::move(p));
  if (d.opt.sessions >= 2)
    for (auto& p : check_log(d.out.lines(), dump)) problems.push_back(std::move(p));
  ::kill(::getpid(), SIGTERM);
}

/// The go task: announces readiness, then runs the self-test if asked to.
net::awaitable<void> startup(daemon_state& d, std::vector<std::string>& problems) {
  auto const sessions = d.opt.sessions;
  auto wait = poll_until(d, [sessions] { return all_suspended(sessions); });
  if (!co_await std::move(wait)) {
    problems.push_back("the run ended before every session was ready");
    co_return;
  }
  d.out.say("task_dump: ready, pid " + std::to_string(::getpid()) + ", " +
            std::to_string(sessions) + (sessions == 1 ? " session" : " sessions"));
  if (d.opt.self_test) {
    auto test = self_test(d, problems);
    co_await std::move(test);
  }
}

// ---------------------------------------------------------------- result

/// Prints what ended the run; returns the exit status.
int report(std::exception_ptr cause, journal& out) {
  try {
    if (cause) std::rethrow_exception(cause);
    out.say("stopped: an actor returned");
    return 0;
  } catch (crew::signal_received const& s) {
    out.say(std::string("stopped: ") + (s.signo() == SIGTERM ? "SIGTERM" : "SIGINT"));
    return 0;
  } catch (crew::task_errors const& errors) {
    out.say("stopped with failures: " + std::string(errors.what()));
    for (auto const& f : errors.failures()) out.say("  " + crew::to_string(f));
    return 1;
  } catch (std::exception const& e) {
    out.say(std::string("stopped: ") + e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  daemon_state d;
  try {
    d.opt = parse_command_line(argc, argv);
  } catch (std::exception const& e) {
    std::cerr << "task_dump: " << e.what() << '\n' << usage;
    return 2;
  }

  net::io_context ioc(2);
  // Registered now: SIGUSR1's default action would end the process.
  net::signal_set usr1(ioc, SIGUSR1);

  //[task_dump_main
  crew::worker_options heartbeat_options;
  heartbeat_options.restart = crew::restart::permanent;
  heartbeat_options.backoff = crew::backoff::none();  // each run waits --tick-ms itself
  crew::start_worker(
      ioc.get_executor(), "heartbeat", [&d] { return heartbeat(d); }, heartbeat_options);

  crew::run_group_options options;
  options.name = "task_dump";
  crew::run_group daemon{ioc.get_executor(), options};
  daemon.add(crew::execute([&] { return serve_sessions(d); }), crew::name("server"));
  daemon.add(crew::execute([&] { return dump_on_signal(usr1, d); }), crew::name("dumper"));
  daemon.add(crew::signals({SIGINT, SIGTERM}));

  int status = 1;
  daemon.async_run([&](std::exception_ptr cause) {
    status = report(cause, d.out);
    d.stopped = true;
    auto stopped = net::bind_executor(ioc, [&](std::exception_ptr e) {
      if (e) status = 1;
      auto const beats = d.heartbeats.load();
      d.out.say("heartbeat: stopped after " + std::to_string(beats) +
                (beats == 1 ? " beat" : " beats"));
    });
    crew::async_stop_all_workers(stopped);
  });
  //]

  std::vector<std::string> problems;  // of the self-test
  crew::go(ioc.get_executor(), startup(d, problems));

  std::thread second([&] { ioc.run(); });
  ioc.run();
  second.join();

  auto const stats = crew::stats();
  // The signals actor that ended on SIGTERM counts as cancelled, not failed.
  if (stats.failed > 0) status = 1;
  if (d.opt.self_test) {
    if (stats.launched != stats.succeeded + stats.failed + stats.cancelled || stats.active != 0)
      problems.push_back("the statistics do not add up once every task ended");
    if (crew::worker_status("heartbeat").state != crew::worker_state::stopped)
      problems.push_back(std::string("the heartbeat worker is ") +
                         crew::to_string(crew::worker_status("heartbeat").state));
    if (status != 0) problems.push_back("exit " + std::to_string(status));
    for (auto const& p : problems) d.out.say("self-test: failed: " + p);
    if (problems.empty())
      d.out.say("self-test: passed");
    else
      status = 1;
  }
  d.out.say("summary: launched " + std::to_string(stats.launched) + ", succeeded " +
            std::to_string(stats.succeeded) + ", failed " + std::to_string(stats.failed) +
            ", cancelled " + std::to_string(stats.cancelled) + ", peak active " +
            std::to_string(stats.peak_active) + ", dumps " + std::to_string(d.dumps.load()) +
            ", exit " + std::to_string(status));
  return status;
}
