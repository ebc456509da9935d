//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Starts the real samples/graceful_shutdown binary (its path is the first argument
// after `--`), talks to it over loopback TCP, sends it real signals with kill(), and
// checks its output and its exit status.
//
#define BOOST_TEST_MODULE crew_graceful_shutdown
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace net = boost::asio;
using net::ip::tcp;

namespace {

std::string daemon_path() {
  auto const& suite = boost::unit_test::framework::master_test_suite();
  if (suite.argc < 2) throw std::runtime_error("usage: test_graceful_shutdown -- <daemon>");
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
        return line;
      }
      if (!fill()) throw std::runtime_error("the daemon closed its output; got: " + buffered_);
    }
  }

  /// The rest of the output, up to the daemon's exit.
  std::string read_rest() {
    while (fill()) {
    }
    return std::exchange(buffered_, {});
  }

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
};

unsigned short port_of(std::string const& listening_line) {
  auto const colon = listening_line.rfind(':');
  BOOST_TEST_REQUIRE(listening_line.starts_with("listening on 127.0.0.1:"));
  return static_cast<unsigned short>(std::stoi(listening_line.substr(colon + 1)));
}

std::string exchange(tcp::socket& socket, net::streambuf& in, std::string const& line) {
  net::write(socket, net::buffer(line));
  auto const n = net::read_until(socket, in, '\n');
  std::string reply(static_cast<char const*>(in.data().data()), n);
  in.consume(n);
  return reply;
}

bool contains(std::string const& text, std::string const& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigterm_drains_open_connections_and_exits_0) {
  daemon_process daemon({"--grace-ms", "30000", "--tick-ms", "5"});
  auto const port = port_of(daemon.read_line());
  net::io_context ctx;
  tcp::socket socket(ctx);
  socket.connect(tcp::endpoint(net::ip::address_v4::loopback(), port));
  net::streambuf in;
  BOOST_TEST(exchange(socket, in, "one\n") == "one\n");

  daemon.signal(SIGTERM);
  auto const draining = daemon.read_line();
  BOOST_TEST(draining.starts_with("draining: 1 connections"), draining);
  // Still served while the daemon drains.
  BOOST_TEST(exchange(socket, in, "two\n") == "two\n");
  socket.close();  // the last connection ends: the server actor returns

  auto const rest = daemon.read_rest();
  BOOST_TEST(contains(rest, "stopped: SIGTERM\n"), rest);
  BOOST_TEST(contains(rest, "summary: connections 1, lines 2, ticks "), rest);
  BOOST_TEST(contains(rest, ", exit 0\n"), rest);
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(sigint_with_no_connection_exits_0) {
  daemon_process daemon({"--tick-ms", "5"});
  port_of(daemon.read_line());
  daemon.signal(SIGINT);
  BOOST_TEST(daemon.read_line().starts_with("draining: 0 connections"));
  auto const rest = daemon.read_rest();
  BOOST_TEST(contains(rest, "stopped: SIGINT\n"), rest);
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(a_connection_outliving_the_grace_names_the_server_and_exits_1) {
  daemon_process daemon({"--grace-ms", "200", "--tick-ms", "5"});
  auto const port = port_of(daemon.read_line());
  net::io_context ctx;
  tcp::socket socket(ctx);
  socket.connect(tcp::endpoint(net::ip::address_v4::loopback(), port));
  net::streambuf in;
  BOOST_TEST(exchange(socket, in, "one\n") == "one\n");

  daemon.signal(SIGTERM);
  BOOST_TEST(daemon.read_line().starts_with("draining: 1 connections"));
  // The client never hangs up: once the grace ran out the server is cancelled again,
  // its open connection with it, and the result names it.
  auto const rest = daemon.read_rest();
  BOOST_TEST(contains(rest, "stopped with 2 problems:"), rest);
  BOOST_TEST(contains(rest, "SIGTERM") == false);  // no clean stop
  BOOST_TEST(contains(rest, "'server'"), rest);
  BOOST_TEST(contains(rest, "still running after the shutdown grace of 200 ms"), rest);
  BOOST_TEST(daemon.wait() == 1);
}
