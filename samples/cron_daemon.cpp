//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// cron_daemon: runs the jobs of a config file on cron schedules and fixed periods
// with a crew::scheduler.
//
//   cron_daemon --config FILE [--grace-ms MS] [--check]
//
// The config file has one job per line; `#` starts a comment, blank lines are
// ignored. A job is three or four fields separated by `|`:
//
//   # name     | schedule                  | action        | overlap (optional)
//   heartbeat  | @every 2s                 | echo
//   rotate     | */5 * * * * *             | echo
//   report     | CRON_TZ=UTC 0 0 * * *     | echo
//   flaky      | @every 3s                 | fail
//   slow       | @every 1s                 | sleep 2500ms  | skip
//
//   name       one word, unique in the file: the scheduler's entry name.
//   schedule   `@every <duration>` (crew::scheduler::every), or a cron spec
//              (crew::scheduler::cron): 5 fields, or 6 with seconds first, optionally
//              after `CRON_TZ=<zone>`, or @yearly @monthly @weekly @daily @hourly.
//              Without CRON_TZ, cron specs are in the local time zone.
//   action     echo        prints `run <name> <n>`, the job's n-th run;
//              fail        prints `run <name> <n>` and throws std::runtime_error: the
//                          failure is printed (`failure: <name>: <what>`) and the job
//                          keeps its schedule;
//              sleep <d>   prints `run <name> <n>`, waits <d> (`2500ms` or `3s`) on a
//                          steady_timer, and prints `done <name> <n>`.
//   overlap    what a run that comes due while the previous run of the job still runs
//              does: skip (the default), queue, or allow (runs beside it).
//
// samples/cron_daemon.conf is such a file.
//
// The daemon checks the whole file before it schedules anything: every bad line is
// reported on standard error with its line number (for a bad schedule, the field,
// position and reason that crew::cron_error gives), and the daemon exits 2 with
// nothing scheduled. --check stops there: it prints each job's next run and exits 0.
//
// Running, it prints `ready: N jobs, pid P`, then one line per run and per failure.
//   SIGUSR1          prints `entries:`, one line per scheduler entry
//                    (crew::scheduler::entries()), and `end of entries`.
//   SIGTERM, SIGINT  a graceful stop: no run starts any more, the runs in flight are
//                    waited for (scheduler::async_stop), then the daemon prints
//                    `summary: jobs N, runs R, failures F, exit 0` and exits 0. Runs
//                    still going after --grace-ms (default 30000) are cancelled and
//                    the daemon exits 1.
// Exit status: 0 after a signal, 1 if the run ended otherwise, 2 for a bad command
// line or config.
//
// The daemon is a crew::run_group of three actors on a two-thread io_context:
//   scheduler  waits until the run is interrupted, then stops the scheduler and waits
//              for the runs in flight;
//   entries    prints the entries on each SIGUSR1;
//   signals    crew::signals(crew::default_signals()): SIGINT and SIGTERM.
//
#include <crew/crew.hpp>
#include <crew/cron.hpp>
#include <crew/scheduler.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------- command line

struct options {
  std::string config;
  std::chrono::milliseconds grace = 30'000ms;
  bool check = false;
};

constexpr char const* usage = "usage: cron_daemon --config FILE [--grace-ms MS] [--check]\n";

std::uint64_t parse_number(std::string_view option, char const* value, std::uint64_t max) {
  std::uint64_t n = 0;
  std::string_view v = value ? value : "";
  auto const [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || n > max)
    throw std::invalid_argument(std::string(option) + ": '" + std::string(v) +
                                "' is not a number from 0 to " + std::to_string(max));
  return n;
}

options parse_command_line(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view const arg = argv[i];
    auto value = [&] { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--config") {
      auto const* file = value();
      if (!file || !*file) throw std::invalid_argument("--config: a file name is missing");
      opt.config = file;
    } else if (arg == "--grace-ms") {
      opt.grace = std::chrono::milliseconds(parse_number(arg, value(), 86'400'000));
    } else if (arg == "--check") {
      opt.check = true;
    } else {
      throw std::invalid_argument("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (opt.config.empty()) throw std::invalid_argument("--config FILE is required");
  return opt;
}

// ---------------------------------------------------------------- config file

enum class action_kind { echo, fail, sleep };

/// One line of the config file, checked.
struct job_config {
  int line = 0;
  std::string name;
  std::string schedule;  // as written
  /// `@every`: the period. Otherwise the parsed cron spec.
  std::optional<crew::clock::duration> period;
  std::optional<crew::cron_expression> cron;
  action_kind action = action_kind::echo;
  std::chrono::milliseconds sleep{};
  crew::overlap_policy overlap = crew::overlap_policy::skip;
};

/// The config file is bad: one message per problem, each naming its line.
struct bad_config : std::runtime_error {
  std::vector<std::string> problems;
  explicit bad_config(std::vector<std::string> p)
      : std::runtime_error("bad config"), problems(std::move(p)) {}
};

std::string_view trim(std::string_view s) {
  auto const first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

std::vector<std::string_view> split(std::string_view s, char separator) {
  std::vector<std::string_view> out;
  for (;;) {
    auto const at = s.find(separator);
    out.push_back(trim(s.substr(0, at)));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

//[cron_daemon_cron_error
/// What is wrong with a schedule, from the cron_error the parser threw:
/// `bad schedule '0 0 32 * *': day of month, position 5: <reason>`.
std::string describe(crew::cron_error const& e, std::string_view schedule) {
  std::ostringstream out;
  out << "bad schedule '" << schedule << "': ";
  std::ostringstream field;
  field << e.field();
  if (!field.str().empty()) out << field.str() << ", position " << e.position() << ": ";
  out << e.reason();
  return out.str();
}
//]

/// Parses `schedule` into `job`; throws crew::cron_error.
void parse_schedule(job_config& job, std::string_view schedule) {
  job.schedule = std::string(schedule);
  auto expr = crew::cron_expression::parse(schedule);
  if (auto const period = expr.every())
    job.period = std::chrono::duration_cast<crew::clock::duration>(*period);
  else
    job.cron = std::move(expr);
}

/// `2500ms` or `3s`; empty if it is neither.
std::optional<std::chrono::milliseconds> parse_sleep(std::string_view text) {
  std::uint64_t n = 0;
  auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string_view const unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (ec != std::errc{} || end == text.data() || n > 86'400'000) return std::nullopt;
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "s" && n <= 86'400) return std::chrono::seconds(n);
  return std::nullopt;
}

/// Parses the action field into `job`; returns what is wrong, or an empty string.
std::string parse_action(job_config& job, std::string_view action) {
  std::vector<std::string_view> words;
  for (auto w : split(action, ' '))
    if (!w.empty()) words.push_back(w);
  if (action == "echo") {
    job.action = action_kind::echo;
  } else if (action == "fail") {
    job.action = action_kind::fail;
  } else if (!words.empty() && words.front() == "sleep") {
    auto const d = words.size() == 2 ? parse_sleep(words[1]) : std::nullopt;
    if (!d) return "bad action '" + std::string(action) + "' (expected sleep <N>ms or sleep <N>s)";
    job.action = action_kind::sleep;
    job.sleep = *d;
  } else {
    return "unknown action '" + std::string(action) + "' (expected echo, fail or sleep <N>ms)";
  }
  return {};
}

std::optional<crew::overlap_policy> parse_overlap(std::string_view text) {
  for (auto p :
       {crew::overlap_policy::skip, crew::overlap_policy::queue, crew::overlap_policy::allow})
    if (text == crew::to_string(p)) return p;
  return std::nullopt;
}

/// Reads and checks the whole file. @throws bad_config listing every bad line.
std::vector<job_config> read_config(std::string const& file) {
  std::ifstream in(file);
  if (!in) throw bad_config({"cannot open '" + file + "': " + std::strerror(errno)});
  std::vector<job_config> jobs;
  std::vector<std::string> problems;
  std::map<std::string, int, std::less<>> defined;  // name → line
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    std::string_view content = text;
    content = trim(content.substr(0, content.find('#')));
    if (content.empty()) continue;
    auto const where = file + ", line " + std::to_string(line) + ": ";
    auto const fields = split(content, '|');
    if (fields.size() < 3 || fields.size() > 4) {
      problems.push_back(where + "expected 'name | schedule | action [| overlap]', got '" +
                         std::string(content) + "'");
      continue;
    }
    job_config job;
    job.line = line;
    job.name = std::string(fields[0]);
    if (job.name.empty() || job.name.find_first_of(" \t") != std::string::npos) {
      problems.push_back(where + "bad job name '" + job.name + "' (one word expected)");
      continue;
    }
    auto const what = where + "job '" + job.name + "': ";
    if (auto const [at, fresh] = defined.emplace(job.name, line); !fresh) {
      problems.push_back(what + "already defined on line " + std::to_string(at->second));
      continue;
    }
    try {
      parse_schedule(job, fields[1]);
    } catch (crew::cron_error const& e) {
      problems.push_back(what + describe(e, fields[1]));
      continue;
    }
    if (auto problem = parse_action(job, fields[2]); !problem.empty()) {
      problems.push_back(what + problem);
      continue;
    }
    if (fields.size() == 4) {
      auto const overlap = parse_overlap(fields[3]);
      if (!overlap) {
        problems.push_back(what + "unknown overlap '" + std::string(fields[3]) +
                           "' (expected skip, queue or allow)");
        continue;
      }
      job.overlap = *overlap;
    }
    jobs.push_back(std::move(job));
  }
  if (problems.empty() && jobs.empty()) problems.push_back(file + ": no jobs");
  if (!problems.empty()) throw bad_config(std::move(problems));
  return jobs;
}

// ---------------------------------------------------------------- the daemon

/// A job as it runs: its config and its run counter.
struct job {
  explicit job(job_config c) : config(std::move(c)) {}
  job_config const config;
  std::atomic<std::uint64_t> runs{0};
};

struct daemon_state {
  std::deque<job> jobs;  // a deque: the scheduled lambdas refer to its elements
  std::atomic<std::uint64_t> failures{0};
  std::mutex out_mutex;

  /// Prints a line or a block whole, from either thread, and flushes it.
  void say(std::string const& text) {
    std::lock_guard lock(out_mutex);
    std::cout << text << '\n' << std::flush;
  }

  std::uint64_t runs() const {
    std::uint64_t n = 0;
    for (auto const& j : jobs) n += j.runs.load();
    return n;
  }
};

//[cron_daemon_job
/// One run of a job: a task of the scheduler.
net::awaitable<void> run_job(job& j, daemon_state& d) {
  auto const n = std::to_string(++j.runs);
  d.say("run " + j.config.name + ' ' + n);
  switch (j.config.action) {
    case action_kind::echo:
      break;
    case action_kind::fail:
      throw std::runtime_error("simulated failure (run " + n + ")");
    case action_kind::sleep: {
      auto ex = co_await net::this_coro::executor;
      net::steady_timer timer(ex, j.config.sleep);
      co_await timer.async_wait(net::use_awaitable);
      d.say("done " + j.config.name + ' ' + n);
      break;
    }
  }
}

/// Adds `j` to the scheduler: `every` for an `@every` schedule, `cron` otherwise.
void schedule(crew::scheduler& scheduler, job& j, daemon_state& d) {
  crew::job_options options;
  options.overlap = j.config.overlap;
  auto factory = [&j, &d] { return run_job(j, d); };  // called once per run
  if (j.config.period)
    scheduler.every(j.config.name, *j.config.period, factory, options);
  else
    scheduler.cron(j.config.name, *j.config.cron, factory, options);
}
//]

//[cron_daemon_actors
/// The scheduler's actor. The jobs run on their own; this waits until the run is
/// interrupted (by a signal), then stops the scheduler — no run starts any more — and
/// waits for the runs in flight. If the run group's shutdown grace runs out first, it
/// cancels this actor again, and async_stop's cancellation cancels those runs.
net::awaitable<void> run_scheduler(crew::scheduler& scheduler) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer until_interrupted(ex, net::steady_timer::time_point::max());
  co_await until_interrupted.async_wait(net::as_tuple(net::use_awaitable));
  // Interrupted: let the next cancellation (the grace running out) reach async_stop.
  co_await net::this_coro::reset_cancellation_state();
  // Failed runs went to on_failure as they happened; this throws operation_aborted
  // only when the grace ran out and the runs in flight were cancelled.
  auto stop = scheduler.async_stop(net::use_awaitable);
  co_await std::move(stop);
}

/// Prints the entries on each SIGUSR1. `usr1` was made before the run, so a signal
/// that comes before this actor waits is kept for it.
net::awaitable<void> print_entries(net::signal_set& usr1, crew::scheduler const& scheduler,
                                   daemon_state& d) {
  for (;;) {
    co_await usr1.async_wait(net::use_awaitable);
    std::ostringstream out;
    out << "entries:\n";
    for (auto const& e : scheduler.entries()) out << "  " << e << '\n';
    out << "end of entries";
    d.say(out.str());
  }
}
//]

std::string signal_name(std::exception_ptr cause) {
  try {
    if (cause) std::rethrow_exception(cause);
    return "an actor returned";
  } catch (crew::signal_received const& s) {
    return s.signo() == SIGTERM ? "SIGTERM" : s.signo() == SIGINT ? "SIGINT" : "a signal";
  } catch (std::exception const& e) {
    return e.what();
  }
}

/// Prints what ended the run; returns the exit status.
int report(std::exception_ptr cause, daemon_state& d) {
  try {
    if (cause) std::rethrow_exception(cause);
    d.say("stopped: an actor returned");
    return 1;
  } catch (crew::signal_received const&) {
    d.say("stopped: " + signal_name(cause));
    return 0;
  } catch (crew::task_errors const& errors) {
    std::string text = "stopped with " + std::to_string(errors.size()) + " problems:";
    for (auto const& f : errors.failures()) text += "\n  " + crew::to_string(f);
    d.say(text);
    return 1;
  } catch (std::exception const& e) {
    d.say(std::string("stopped: ") + e.what());
    return 1;
  }
}

// ---------------------------------------------------------------- --check

std::string utc(std::chrono::system_clock::time_point t) {
  auto const seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

void print_check(std::vector<job_config> const& jobs) {
  auto const now = std::chrono::system_clock::now();
  for (auto const& j : jobs) {
    std::optional<std::chrono::system_clock::time_point> next;
    if (j.period)
      next = now + std::chrono::duration_cast<std::chrono::system_clock::duration>(*j.period);
    else
      next = j.cron->next(now);
    std::cout << j.name << "  " << j.schedule << "  next "
              << (next ? utc(*next) : std::string("never")) << '\n';
  }
  std::cout << "ok: " << jobs.size() << (jobs.size() == 1 ? " job" : " jobs") << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  std::vector<job_config> config;
  try {
    opt = parse_command_line(argc, argv);
    config = read_config(opt.config);
  } catch (bad_config const& e) {
    for (auto const& p : e.problems) std::cerr << "cron_daemon: " << p << '\n';
    std::cerr << "cron_daemon: " << e.problems.size()
              << (e.problems.size() == 1 ? " error" : " errors") << ", nothing scheduled\n";
    return 2;
  } catch (std::exception const& e) {
    std::cerr << "cron_daemon: " << e.what() << '\n' << usage;
    return 2;
  }
  if (opt.check) {
    print_check(config);
    return 0;
  }

  daemon_state d;
  for (auto& c : config) d.jobs.emplace_back(std::move(c));

  net::io_context ioc(2);
  // Registered now: SIGUSR1's default action would end the process.
  net::signal_set usr1(ioc, SIGUSR1);

  //[cron_daemon_main
  crew::scheduler_options scheduler_options;
  scheduler_options.name = "cron_daemon";
  scheduler_options.on_failure = [&d](crew::task_failure const& f) {
    ++d.failures;
    d.say("failure: " + f.name + ": " + f.what());
  };
  crew::scheduler scheduler{ioc.get_executor(), scheduler_options};
  for (auto& j : d.jobs) schedule(scheduler, j, d);

  crew::run_group_options options;
  options.name = "cron_daemon";
  options.shutdown_grace = opt.grace;
  crew::run_group daemon{ioc.get_executor(), options};
  daemon.add(crew::execute([&] { return run_scheduler(scheduler); }), crew::name("scheduler"),
             crew::interrupt([&](std::exception_ptr cause) {
               std::size_t in_flight = 0;
               for (auto const& e : scheduler.entries()) in_flight += e.running;
               d.say("stopping: " + signal_name(cause) + ", " + std::to_string(in_flight) +
                     (in_flight == 1 ? " run" : " runs") + " in flight");
             }));
  daemon.add(crew::execute([&] { return print_entries(usr1, scheduler, d); }),
             crew::name("entries"));
  daemon.add(crew::signals(crew::default_signals()));

  int status = 1;
  daemon.async_run([&](std::exception_ptr cause) { status = report(cause, d); });
  //]
  // The signals are registered once async_run returned: announce readiness only now.
  d.say("ready: " + std::to_string(d.jobs.size()) + (d.jobs.size() == 1 ? " job" : " jobs") +
        ", pid " + std::to_string(::getpid()));

  std::thread second([&] { ioc.run(); });
  ioc.run();
  second.join();
  d.say("summary: jobs " + std::to_string(d.jobs.size()) + ", runs " + std::to_string(d.runs()) +
        ", failures " + std::to_string(d.failures.load()) + ", exit " + std::to_string(status));
  return status;
}
