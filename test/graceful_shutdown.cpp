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

#include "daemon_process.hpp"

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace net = boost::asio;
using crew_test::contains;
using crew_test::daemon_process;
using crew_test::port_of;
using net::ip::tcp;

namespace {

std::string exchange(tcp::socket& socket, net::streambuf& in, std::string const& line) {
  net::write(socket, net::buffer(line));
  auto const n = net::read_until(socket, in, '\n');
  std::string reply(static_cast<char const*>(in.data().data()), n);
  in.consume(n);
  return reply;
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

  auto const rest = crew_test::joined(daemon.read_rest());
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
  auto const rest = crew_test::joined(daemon.read_rest());
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
  auto const rest = crew_test::joined(daemon.read_rest());
  BOOST_TEST(contains(rest, "stopped with 2 problems:"), rest);
  BOOST_TEST(contains(rest, "SIGTERM") == false);  // no clean stop
  BOOST_TEST(contains(rest, "'server'"), rest);
  BOOST_TEST(contains(rest, "still running after the shutdown grace of 200 ms"), rest);
  BOOST_TEST(daemon.wait() == 1);
}
