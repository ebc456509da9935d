//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Starts the real samples/service_manager binary (its path is the first argument
// after `--`), makes HTTP requests to it over loopback TCP, sends it real signals with
// kill() — SIGHUP to reload its listener, SIGTERM or SIGINT to stop it — and checks its
// output, the order of its stages and its exit status.
//
#define BOOST_TEST_MODULE crew_service_manager
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include "daemon_process.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace net = boost::asio;
using crew_test::daemon_process;
using crew_test::port_of;
using crew_test::strings;
using net::ip::tcp;

namespace {

/// One HTTP/1.0 request; the body of the response, which must be a 200.
std::string get(unsigned short port) {
  net::io_context ctx;
  tcp::socket socket(ctx);
  socket.connect(tcp::endpoint(net::ip::address_v4::loopback(), port));
  net::write(socket, net::buffer(std::string("GET / HTTP/1.0\r\nHost: test\r\n\r\n")));
  std::string response;
  boost::system::error_code ec;
  net::read(socket, net::dynamic_buffer(response), ec);
  BOOST_TEST(ec == net::error::eof);  // HTTP/1.0: the server closes
  BOOST_TEST_REQUIRE(response.starts_with("HTTP/1.0 200 OK\r\n"), response);
  auto const body = response.find("\r\n\r\n");
  BOOST_TEST_REQUIRE(body != std::string::npos);
  return response.substr(body + 4);
}

/// The position of the first line equal to `line` at or after `from`, or npos.
std::size_t find_line(strings const& lines, std::string const& line, std::size_t from = 0) {
  auto const it = std::find(
      lines.begin() + static_cast<std::ptrdiff_t>(std::min(from, lines.size())), lines.end(), line);
  return it == lines.end() ? std::string::npos : static_cast<std::size_t>(it - lines.begin());
}

/// The lines that start with one of `prefixes`, in order.
strings only(strings const& lines, strings const& prefixes) {
  strings out;
  for (auto const& l : lines)
    for (auto const& p : prefixes)
      if (l.starts_with(p)) {
        out.push_back(l);
        break;
      }
  return out;
}

bool contains(strings const& lines, std::string const& part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](std::string const& l) { return l.find(part) != std::string::npos; });
}

/// A configuration file removed at the end of the test.
class config_file {
 public:
  explicit config_file(std::string const& text)
      : path_(std::filesystem::temp_directory_path() /
              ("crew_service_manager_" + std::to_string(::getpid()) + ".conf")) {
    write(text);
  }
  ~config_file() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  config_file(config_file const&) = delete;
  config_file& operator=(config_file const&) = delete;

  void write(std::string const& text) {
    std::ofstream out(path_, std::ios::trunc);
    out << text << '\n';
  }
  void remove() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

/// The lines a reload must print, and some it must not.
strings const reload_prefixes{
    "database: connecting", "database: closed",  "listener: ", "listening on",
    "reporter: initialize", "reporter: cleanup", "stopped"};

strings const stage_prefixes{
    "database: ", "listener: ", "reporter: initialize", "reporter: cleanup", "listening on",
    "signals: ",  "stopped"};

}  // namespace

BOOST_AUTO_TEST_CASE(sighup_reloads_the_listener_and_sigterm_cleans_up_in_reverse_order) {
  config_file config("hello");
  daemon_process daemon({"--config", config.path(), "--tick-ms", "5"});
  auto const port = port_of(daemon.read_until("listening on"));
  BOOST_TEST(get(port) == "hello (config generation 1)\n");

  // SIGHUP: the listener alone cleans up, reads its configuration again, and serves.
  config.write("bonjour");
  auto const before_reload = daemon.seen().size();
  daemon.signal(SIGHUP);
  BOOST_TEST(port_of(daemon.read_until("listening on")) == port);  // the same port again
  strings const reload(daemon.seen().begin() + static_cast<std::ptrdiff_t>(before_reload),
                       daemon.seen().end());
  // Not "database: connected" nor "signals: waiting ...": those executes may print after
  // the listener's first "listening on".
  BOOST_TEST(
      only(reload, reload_prefixes) == (strings{"listener: execute cancelled", "listener: cleanup",
                                                "listener: initialize (config generation 2)",
                                                "listening on 127.0.0.1:" + std::to_string(port)}),
      boost::test_tools::per_element());
  BOOST_TEST(get(port) == "bonjour (config generation 2)\n");  // served after the reload

  // SIGTERM: every execute is cancelled, then the cleanups run in reverse order of add.
  daemon.signal(SIGTERM);
  auto const rest = daemon.read_rest();
  auto const stopping = find_line(rest, "signals: SIGTERM, shutting down");
  BOOST_TEST_REQUIRE(stopping != std::string::npos);
  strings const after(rest.begin() + static_cast<std::ptrdiff_t>(stopping) + 1, rest.end());
  BOOST_TEST(only(after, {"reporter: cleanup", "listener: cleanup", "database: closed",
                          "stopped"}) == (strings{"reporter: cleanup", "listener: cleanup",
                                                  "database: closed", "stopped: clean shutdown"}),
             boost::test_tools::per_element());
  // Every execute has returned before the first cleanup.
  auto const first_cleanup = find_line(after, "reporter: cleanup");
  BOOST_TEST(find_line(after, "listener: execute cancelled") < first_cleanup);
  BOOST_TEST(find_line(after, "database: execute cancelled") < first_cleanup);
  BOOST_TEST(contains(rest, "summary: requests 2, config generation 2, exit 0"));
  BOOST_TEST(daemon.wait() == 0);

  // The start-up, for the record: initialized in order of add.
  auto const& all = daemon.seen();
  BOOST_TEST(find_line(all, "database: connecting") <
             find_line(all, "listener: initialize (config generation 1)"));
  BOOST_TEST(find_line(all, "listener: initialize (config generation 1)") <
             find_line(all, "reporter: initialize"));
  // The reporter ran (how many requests its first run saw depends on the timing).
  BOOST_TEST(contains(all, " requests served"));
}

BOOST_AUTO_TEST_CASE(sigint_with_no_request_exits_0) {
  daemon_process daemon({"--tick-ms", "5"});
  auto const port = port_of(daemon.read_until("listening on"));
  BOOST_TEST(get(port) == "hello from service_manager (config generation 1)\n");
  daemon.signal(SIGINT);
  auto const rest = daemon.read_rest();
  BOOST_TEST(contains(rest, "signals: SIGINT, shutting down"));
  BOOST_TEST(only(rest, {"reporter: cleanup", "listener: cleanup", "database: closed"}) ==
                 (strings{"reporter: cleanup", "listener: cleanup", "database: closed"}),
             boost::test_tools::per_element());
  BOOST_TEST(daemon.wait() == 0);
}

BOOST_AUTO_TEST_CASE(a_configuration_that_cannot_be_read_fails_initialize_and_exits_1) {
  daemon_process daemon({"--config", "/nonexistent/crew/service.conf"});
  auto const rest = daemon.read_rest();
  // The listener's initialize failed: it and the database are cleaned up, in reverse
  // order; the reporter never initialized and nothing executed.
  BOOST_TEST(only(rest, stage_prefixes) ==
                 (strings{"database: connecting", "listener: cleanup", "database: closed",
                          "stopped with failures: 1 task failed"}),
             boost::test_tools::per_element());
  BOOST_TEST(contains(rest, "'listener'"));
  BOOST_TEST(contains(rest, "(initialize)"));
  BOOST_TEST(contains(rest, "cannot read the configuration '/nonexistent/crew/service.conf'"));
  BOOST_TEST(contains(rest, ", exit 1"));
  BOOST_TEST(daemon.wait() == 1);
}

BOOST_AUTO_TEST_CASE(a_reload_that_cannot_read_its_configuration_ends_the_run_with_exit_1) {
  config_file config("hello");
  daemon_process daemon({"--config", config.path(), "--tick-ms", "5"});
  port_of(daemon.read_until("listening on"));
  config.remove();
  daemon.signal(SIGHUP);
  auto const rest = daemon.read_rest();
  // The reload's initialize failed inside the listener's execute stage: the run shuts
  // down, and every task is cleaned up in reverse order.
  auto const reload = find_line(rest, "listener: cleanup");
  BOOST_TEST_REQUIRE(reload != std::string::npos);
  strings const after(rest.begin() + static_cast<std::ptrdiff_t>(reload) + 1, rest.end());
  BOOST_TEST(only(after, {"reporter: cleanup", "listener: cleanup", "database: closed"}) ==
                 (strings{"reporter: cleanup", "listener: cleanup", "database: closed"}),
             boost::test_tools::per_element());
  BOOST_TEST(contains(rest, "cannot read the configuration"));
  BOOST_TEST(contains(rest, "'listener'"));
  BOOST_TEST(contains(rest, ", exit 1"));
  BOOST_TEST(daemon.wait() == 1);
}
