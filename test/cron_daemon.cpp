//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Starts the real samples/cron_daemon binary (its path is the last argument, after
// `--`) with a config file written to a temporary directory, reads the runs and
// failures it prints, sends it SIGUSR1 (the scheduler's entries) and SIGTERM or SIGINT
// (a graceful stop that waits for the runs in flight), and checks its output and exit
// status; then starts it with bad configs and bad command lines, which it must refuse.
//
// Every wait is bounded (a deadline checked between lines), and the checks are on the
// order of the lines and on the outcomes, never on durations.
//
#define BOOST_TEST_MODULE cron_daemon
#include <boost/test/unit_test.hpp>

#include "daemon_process.hpp"

#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using crew_test::contains;
using crew_test::daemon_process;
using crew_test::strings;
using namespace std::chrono_literals;

namespace {

/// How long any one wait for the daemon may take before the test fails.
constexpr auto patience = 20s;

/// A temporary directory, removed with what it holds.
class temp_dir {
 public:
  temp_dir() {
    std::string name =
        (std::filesystem::temp_directory_path() / "crew_cron_daemon.XXXXXX").string();
    if (!::mkdtemp(name.data())) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  temp_dir(temp_dir const&) = delete;
  temp_dir& operator=(temp_dir const&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  /// Writes `text` to the file `name` in the directory; returns its path.
  std::string write(std::string const& name, std::string const& text) const {
    auto const file = (path_ / name).string();
    std::ofstream out(file);
    out << text;
    BOOST_TEST_REQUIRE(static_cast<bool>(out), "cannot write " << file);
    return file;
  }

  std::filesystem::path const& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Reads lines up to and including the first that starts with `prefix`, for at most
/// `patience` (the daemon's jobs print a line every second or so, so the deadline is
/// checked often).
std::string read_until(daemon_process& daemon, std::string const& prefix) {
  auto const deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    auto line = daemon.read_line();
    if (line.starts_with(prefix)) return line;
    if (std::chrono::steady_clock::now() > deadline)
      BOOST_FAIL("no line starting with '" << prefix << "' within " << patience.count()
                                           << " s; got:\n"
                                           << crew_test::joined(daemon.seen()));
  }
}

/// The first line seen so far that starts with `prefix`, or else the next one read
/// (see read_until): for lines of two jobs that may print in either order.
std::string await_line(daemon_process& daemon, std::string const& prefix) {
  for (auto const& line : daemon.seen())
    if (line.starts_with(prefix)) return line;
  return read_until(daemon, prefix);
}

/// The index of the first line in `lines` that starts with `prefix`; fails if none.
std::size_t index_of(strings const& lines, std::string const& prefix) {
  auto const it = std::find_if(lines.begin(), lines.end(),
                               [&](std::string const& l) { return l.starts_with(prefix); });
  BOOST_TEST_REQUIRE((it != lines.end()), "no line starting with '" << prefix << "' in:\n"
                                                                    << crew_test::joined(lines));
  return static_cast<std::size_t>(it - lines.begin());
}

std::size_t count_starting(strings const& lines, std::string const& prefix) {
  return static_cast<std::size_t>(std::count_if(
      lines.begin(), lines.end(), [&](std::string const& l) { return l.starts_with(prefix); }));
}

/// Sends SIGUSR1 and returns the entry lines printed between `entries:` and
/// `end of entries`, without their indentation.
strings request_entries(daemon_process& daemon) {
  daemon.signal(SIGUSR1);
  read_until(daemon, "entries:");
  strings entries;
  auto const deadline = std::chrono::steady_clock::now() + patience;
  for (auto line = daemon.read_line(); line != "end of entries"; line = daemon.read_line()) {
    BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < deadline), "no 'end of entries'");
    // Runs of other jobs never print inside the block: it is printed whole.
    BOOST_TEST_REQUIRE(line.starts_with("  "), "not an entry line: '" << line << "'");
    entries.push_back(line.substr(2));
  }
  return entries;
}

/// The entry line of job `name`; fails if there is none.
std::string const& entry_of(strings const& entries, std::string const& name) {
  return entries[index_of(entries, name + " ")];
}

/// Runs the daemon with `args` to its end; its exit status and its standard output
/// and standard error, merged.
std::pair<int, std::string> run_to_end(std::vector<std::string> args) {
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
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
  std::string out;
  if (rc == 0) {
    char chunk[4096];
    for (;;) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(patience / 1ms)) != 1) {
        ::kill(pid, SIGKILL);
        out += "\n[the test killed the daemon: no output for 20 s]";
        break;
      }
      auto const n = ::read(fds[0], chunk, sizeof chunk);
      if (n <= 0) break;
      out.append(chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(fds[0]);
  BOOST_TEST_REQUIRE(rc == 0);
  int status = 0;
  BOOST_TEST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), out};
}

}  // namespace

BOOST_AUTO_TEST_CASE(jobs_run_sigusr1_lists_entries_and_sigterm_waits_for_the_runs_in_flight) {
  temp_dir dir;
  auto const config = dir.write("jobs.conf",
                                "# name     | schedule              | action        | overlap\n"
                                "heartbeat  | @every 1s             | echo\n"
                                "\n"
                                "rotate     | */5 * * * * *         | echo          | queue\n"
                                "report     | CRON_TZ=UTC 0 0 * * * | echo\n"
                                "flaky      | @every 1s             | fail          # throws\n"
                                "slow       | @every 1s             | sleep 4000ms  | skip\n");
  daemon_process daemon({"--config", config});
  BOOST_TEST(read_until(daemon, "ready: ").starts_with("ready: 5 jobs, pid "));

  // The jobs run: the heartbeat twice, and the flaky job fails twice and is still
  // run again, each failure printed by the scheduler's on_failure.
  await_line(daemon, "run heartbeat 2");
  await_line(daemon, "failure: flaky: simulated failure (run 2)");
  BOOST_TEST(index_of(daemon.seen(), "run flaky 1") <
             index_of(daemon.seen(), "failure: flaky: simulated failure (run 1)"));
  BOOST_TEST(index_of(daemon.seen(), "failure: flaky: simulated failure (run 1)") <
             index_of(daemon.seen(), "run flaky 2"));

  // SIGUSR1: one line per entry, in name order, each with its spec and its next run.
  auto const entries = request_entries(daemon);
  BOOST_TEST(entries.size() == 5u, crew_test::joined(entries));
  strings names;
  for (auto const& e : entries) names.push_back(e.substr(0, e.find(' ')));
  BOOST_TEST(names == (strings{"flaky", "heartbeat", "report", "rotate", "slow"}),
             crew_test::joined(entries));
  for (auto const& [name, spec] :
       std::vector<std::pair<std::string, std::string>>{{"heartbeat", "@every"},
                                                        {"rotate", "*/5 * * * * *"},
                                                        {"report", "CRON_TZ=UTC 0 0 * * *"},
                                                        {"flaky", "@every"},
                                                        {"slow", "@every"}}) {
    BOOST_TEST_CONTEXT(name) {
      auto const& e = entry_of(entries, name);
      BOOST_TEST(contains(e, "  " + spec), e);
      BOOST_TEST(contains(e, "  next 2"), e);  // a date, not "never"
    }
  }
  // The daily report runs at midnight UTC.
  BOOST_TEST(contains(entry_of(entries, "report"), " 00:00:00 UTC"));
  auto const& flaky = entry_of(entries, "flaky");
  BOOST_TEST(contains(flaky, "last failed"), flaky);
  BOOST_TEST(contains(flaky, "simulated failure"), flaky);

  // SIGTERM while the slow job runs: the daemon waits for that run to end, then stops.
  auto const slow_run = read_until(daemon, "run slow ");
  auto const run_number = slow_run.substr(slow_run.rfind(' ') + 1);
  daemon.signal(SIGTERM);
  auto const rest = daemon.read_rest();
  auto const stopping = index_of(rest, "stopping: SIGTERM, ");
  auto const done = index_of(rest, "done slow " + run_number);
  auto const stopped = index_of(rest, "stopped: SIGTERM");
  auto const summary = index_of(rest, "summary: ");
  BOOST_TEST(stopping < done);
  BOOST_TEST(done < stopped);
  BOOST_TEST(stopped < summary);
  BOOST_TEST(summary == rest.size() - 1, crew_test::joined(rest));
  BOOST_TEST(!contains(rest[stopping], ", 0 runs in flight"), rest[stopping]);
  // Once the stop completed, no run starts.
  for (auto i = stopped; i < rest.size(); ++i) BOOST_TEST(!rest[i].starts_with("run "), rest[i]);
  // The slow run was not cancelled: it ended normally, and no failure names it.
  auto const& seen = daemon.seen();
  BOOST_TEST(count_starting(seen, "failure: slow") == 0u);
  BOOST_TEST(count_starting(seen, "failure: ") == count_starting(seen, "failure: flaky: "));
  // The summary counts what the daemon printed.
  BOOST_TEST(rest[summary] == "summary: jobs 5, runs " +
                                  std::to_string(count_starting(seen, "run ")) + ", failures " +
                                  std::to_string(count_starting(seen, "failure: ")) + ", exit 0");
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(sigint_stops_it_too) {
  temp_dir dir;
  auto const config = dir.write("one.conf", "heartbeat | @every 1s | echo\n");
  daemon_process daemon({"--config", config});
  BOOST_TEST(read_until(daemon, "ready: ").starts_with("ready: 1 job, pid "));
  read_until(daemon, "run heartbeat 1");
  daemon.signal(SIGINT);
  auto const rest = daemon.read_rest();
  BOOST_TEST(index_of(rest, "stopping: SIGINT, ") < index_of(rest, "stopped: SIGINT"));
  auto const& summary = rest[index_of(rest, "summary: jobs 1, runs ")];
  BOOST_TEST(summary.ends_with(", failures 0, exit 0"), summary);
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(a_run_outliving_the_grace_is_cancelled_and_the_daemon_exits_1) {
  temp_dir dir;
  auto const config = dir.write("stuck.conf", "stuck | @every 1s | sleep 600s\n");
  daemon_process daemon({"--config", config, "--grace-ms", "200"});
  read_until(daemon, "ready: ");
  read_until(daemon, "run stuck 1");
  daemon.signal(SIGTERM);
  auto const rest = daemon.read_rest();
  auto const text = crew_test::joined(rest);
  BOOST_TEST(contains(text, "stopping: SIGTERM, 1 run in flight\n"), text);
  BOOST_TEST(contains(text, "done stuck") == false, text);
  BOOST_TEST(contains(text, "'scheduler'"), text);  // the actor still stopping
  BOOST_TEST(contains(text, "shutdown grace of 200 ms"), text);
  BOOST_TEST(rest.back().ends_with(", exit 1"), text);
  BOOST_TEST(daemon.wait() == 1);
}

BOOST_AUTO_TEST_CASE(bad_schedules_are_reported_by_line_and_nothing_is_scheduled) {
  temp_dir dir;
  auto const config = dir.write("bad.conf",
                                "# line 1\n"
                                "heartbeat | @every 1s  | echo\n"
                                "nightly   | 0 0 32 * * | echo\n"
                                "\n"
                                "often     | 60 * * * * | echo\n"
                                "weekly    | @weekly    | echo\n");
  auto const [status, out] = run_to_end({"--config", config});
  BOOST_TEST(status == 2);
  // cron_error's field and position: the day of month at offset 4 of the spec.
  BOOST_TEST(contains(out, "cron_daemon: " + config +
                               ", line 3: job 'nightly': bad schedule '0 0 32 * *': "
                               "day of month, position 4: "),
             out);
  BOOST_TEST(
      contains(out, ", line 5: job 'often': bad schedule '60 * * * *': minute, position 0: "), out);
  BOOST_TEST(contains(out, "line 2") == false, out);
  BOOST_TEST(contains(out, "line 6") == false, out);
  BOOST_TEST(contains(out, "cron_daemon: 2 errors, nothing scheduled\n"), out);
  BOOST_TEST(contains("\n" + out, "\nready: ") == false, out);
  BOOST_TEST(contains("\n" + out, "\nrun ") == false, out);
}

BOOST_AUTO_TEST_CASE(other_bad_configs_and_command_lines_exit_2_with_a_clear_message) {
  temp_dir dir;
  struct bad {
    std::string config;  // the file's content; empty: the arguments say it all
    std::vector<std::string> args;
    std::string message;
  };
  auto const missing = (dir.path() / "missing.conf").string();
  for (auto const& b : {
           bad{"a | @every 1s | echo\nb | @every 1s | frobnicate\n",
               {},
               "line 2: job 'b': unknown action 'frobnicate' (expected echo, fail or sleep <N>ms)"},
           bad{"a | @every 1s | sleep\n",
               {},
               "line 1: job 'a': bad action 'sleep' (expected sleep"},
           bad{"a | @every 1s | sleep 5 minutes\n",
               {},
               "line 1: job 'a': bad action 'sleep 5 minutes'"},
           bad{"a | @every 1s | echo | sometimes\n",
               {},
               "line 1: job 'a': unknown overlap 'sometimes' (expected skip, queue or allow)"},
           bad{"a | @every 1s | echo\n\na | @daily | echo\n",
               {},
               "line 3: job 'a': already defined on line 1"},
           bad{"a @every 1s echo\n", {}, "line 1: expected 'name | schedule | action [| overlap]'"},
           bad{"two words | @every 1s | echo\n", {}, "line 1: bad job name 'two words'"},
           bad{"a | | echo\n", {}, "line 1: job 'a': bad schedule '': "},
           bad{"# nothing\n", {}, "no jobs"},
           bad{"",
               {"--config", missing},
               "cannot open '" + missing + "': No such file or directory"},
           bad{"", {}, "cron_daemon: --config FILE is required\nusage: cron_daemon --config FILE"},
           bad{"", {"--config"}, "cron_daemon: --config: a file name is missing"},
           bad{"",
               {"--config", missing, "--grace-ms", "soon"},
               "--grace-ms: 'soon' is not a number"},
           bad{"", {"--verbose"}, "cron_daemon: unknown argument '--verbose'"},
       }) {
    auto args = b.args;
    if (!b.config.empty()) args = {"--config", dir.write("case.conf", b.config)};
    BOOST_TEST_CONTEXT(b.message) {
      auto const [status, out] = run_to_end(args);
      BOOST_TEST(status == 2);
      BOOST_TEST(contains(out, b.message), out);
      BOOST_TEST(contains("\n" + out, "\nready: ") == false, out);
    }
  }
}

BOOST_AUTO_TEST_CASE(check_prints_the_next_runs_and_exits_0) {
  temp_dir dir;
  auto const config = dir.write("jobs.conf",
                                "heartbeat | @every 2s             | echo\n"
                                "report    | CRON_TZ=UTC 0 0 * * * | echo\n"
                                "never     | 0 0 30 2 *            | echo  # February 30\n");
  auto const [status, out] = run_to_end({"--config", config, "--check"});
  BOOST_TEST(status == 0);
  BOOST_TEST(contains(out, "heartbeat  @every 2s  next 2"), out);
  BOOST_TEST(contains(out, "report  CRON_TZ=UTC 0 0 * * *  next 2"), out);
  BOOST_TEST(contains(out, " 00:00:00 UTC\n"), out);  // midnight UTC
  BOOST_TEST(contains(out, "never  0 0 30 2 *  next never\n"), out);
  BOOST_TEST(contains(out, "ok: 3 jobs\n"), out);
  BOOST_TEST(contains("\n" + out, "\nready: ") == false, out);
}

BOOST_AUTO_TEST_CASE(the_sample_config_passes_the_check) {
  auto const sample =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "samples" / "cron_daemon.conf";
  BOOST_TEST_REQUIRE(std::filesystem::exists(sample), sample);
  auto const [status, out] = run_to_end({"--config", sample.string(), "--check"});
  BOOST_TEST(status == 0);
  BOOST_TEST(contains(out, "ok: 6 jobs\n"), out);
}
