//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A sample daemon as a child process, for the tests that start the real binary (its
// path is the last argument, after `--`), send it signals with kill(), and read its
// output line by line.
//
#ifndef CREW_TEST_DAEMON_PROCESS_HPP
#define CREW_TEST_DAEMON_PROCESS_HPP

#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace crew_test {

using strings = std::vector<std::string>;

inline std::string daemon_path() {
  auto const& suite = boost::unit_test::framework::master_test_suite();
  if (suite.argc < 2)
    throw std::runtime_error(std::string("usage: ") + suite.argv[0] + " -- <daemon>");
  return suite.argv[suite.argc - 1];
}

/// The daemon as a child process whose standard output is a pipe.
class daemon_process {
 public:
  explicit daemon_process(std::vector<std::string> args) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    ::posix_spawn_file_actions_addclose(&actions, fds[0]);
    args.insert(args.begin(), daemon_path());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int const rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed: " + std::string(std::strerror(rc)));
  }

  daemon_process(daemon_process const&) = delete;
  daemon_process& operator=(daemon_process const&) = delete;

  ~daemon_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }

  /// The next line of output, without its newline; throws after 60 s without one.
  std::string read_line() {
    for (;;) {
      if (auto const nl = buffered_.find('\n'); nl != std::string::npos) {
        auto line = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        seen_.push_back(line);
        return line;
      }
      if (!fill()) throw std::runtime_error("the daemon closed its output; got: " + buffered_);
    }
  }

  /// Reads lines up to and including the first that starts with `prefix`; returns it.
  std::string read_until(std::string const& prefix) {
    for (;;) {
      auto line = read_line();
      if (line.starts_with(prefix)) return line;
    }
  }

  /// The rest of the output, up to the daemon's exit, as lines.
  strings read_rest() {
    while (fill()) {
    }
    strings rest;
    std::string::size_type at = 0;
    for (auto nl = buffered_.find('\n'); nl != std::string::npos; nl = buffered_.find('\n', at)) {
      rest.push_back(buffered_.substr(at, nl - at));
      at = nl + 1;
    }
    buffered_.clear();
    seen_.insert(seen_.end(), rest.begin(), rest.end());
    return rest;
  }

  /// Every line read so far.
  strings const& seen() const { return seen_; }

  void signal(int signo) { BOOST_REQUIRE(::kill(pid_, signo) == 0); }

  /// The exit status, or -signo if a signal killed it.
  int wait() {
    int status = 0;
    BOOST_REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  bool fill() {
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, 60'000) != 1) throw std::runtime_error("no output from the daemon for 60 s");
    char chunk[4096];
    auto const n = ::read(out_, chunk, sizeof chunk);
    if (n <= 0) return false;
    buffered_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffered_;
  strings seen_;
};

inline unsigned short port_of(std::string const& listening_line) {
  auto const colon = listening_line.rfind(':');
  BOOST_TEST_REQUIRE(listening_line.starts_with("listening on 127.0.0.1:"));
  return static_cast<unsigned short>(std::stoi(listening_line.substr(colon + 1)));
}

/// Whether `text` holds `part`.
inline bool contains(std::string const& text, std::string const& part) {
  return text.find(part) != std::string::npos;
}

/// The lines, each followed by a newline.
inline std::string joined(strings const& lines) {
  std::string out;
  for (auto const& l : lines) out += l + '\n';
  return out;
}

}  // namespace crew_test

#endif
