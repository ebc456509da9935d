//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// graceful_shutdown: a daemon made of three actors in a crew::run_group.
//
//   graceful_shutdown [--port P] [--grace-ms MS] [--tick-ms MS] [--self-test]
//
//   server   a line-echo TCP server on 127.0.0.1; every connection is a task of its
//            own task_group. Interrupted, it stops accepting and drains: open
//            connections are served until their clients hang up.
//   worker   a periodic job that runs every --tick-ms.
//   signals  crew::signals(crew::default_signals()): SIGINT and SIGTERM.
//
// On SIGTERM the run group interrupts the server and the worker and gives them
// --grace-ms to return. The daemon then prints a summary and exits 0; if an actor
// was still running when the grace ran out, it prints it and exits 1.
// --self-test connects a client, sends itself SIGTERM with kill(), checks that the
// open connection is still served while the daemon drains, and hangs up.
//
#include <crew/crew.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iostream>
#include <istream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct config {
  unsigned short port = 0;
  std::chrono::milliseconds grace = 5000ms;
  std::chrono::milliseconds tick = 100ms;
  bool self_test = false;
};

constexpr char const* usage =
    "usage: graceful_shutdown [--port P] [--grace-ms MS] [--tick-ms MS] [--self-test]\n";

std::uint64_t parse_number(std::string_view option, char const* value, std::uint64_t max) {
  std::uint64_t n = 0;
  std::string_view v = value ? value : "";
  auto const [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || n > max)
    throw std::invalid_argument(std::string(option) + ": '" + std::string(v) +
                                "' is not a number from 0 to " + std::to_string(max));
  return n;
}

config parse_command_line(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string_view const arg = argv[i];
    auto value = [&] { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--port")
      cfg.port = static_cast<unsigned short>(parse_number(arg, value(), 65535));
    else if (arg == "--grace-ms")
      cfg.grace = std::chrono::milliseconds(parse_number(arg, value(), 86'400'000));
    else if (arg == "--tick-ms")
      cfg.tick = std::chrono::milliseconds(parse_number(arg, value(), 86'400'000));
    else if (arg == "--self-test")
      cfg.self_test = true;
    else
      throw std::invalid_argument("unknown argument '" + std::string(arg) + "'");
  }
  if (cfg.tick == 0ms) throw std::invalid_argument("--tick-ms: must be at least 1");
  return cfg;
}

struct stats {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> lines{0};
  std::atomic<std::uint64_t> ticks{0};
};

// ---------------------------------------------------------------- actors

net::awaitable<void> session(tcp::socket socket, stats& st) {
  net::streambuf buffer;
  for (;;) {
    auto [ec, n] =
        co_await net::async_read_until(socket, buffer, '\n', net::as_tuple(net::use_awaitable));
    if (ec == net::error::eof) co_return;  // the client hung up
    if (ec) throw boost::system::system_error(ec, "read");
    co_await net::async_write(socket, buffer.data(), net::transfer_exactly(n), net::use_awaitable);
    buffer.consume(n);
    ++st.lines;
  }
}

//[graceful_server
net::awaitable<void> serve(tcp::acceptor& acceptor, stats& st) {
  crew::task_group connections{acceptor.get_executor()};
  try {
    for (;;) {
      auto socket = co_await acceptor.async_accept(net::use_awaitable);
      ++st.connections;
      connections.spawn(session(std::move(socket), st));
    }
  } catch (boost::system::system_error const& e) {
    if (e.code() != net::error::operation_aborted) throw;
  }
  // Interrupted: no new connections. Drain the open ones; the run group's
  // shutdown_grace bounds this, cancelling the wait (and the connections) again.
  co_await net::this_coro::reset_cancellation_state();
  co_await connections.wait();
}
//]

net::awaitable<void> periodic_worker(std::chrono::milliseconds period, stats& st) {
  net::steady_timer timer(co_await net::this_coro::executor);
  for (;;) {
    timer.expires_after(period);
    co_await timer.async_wait(net::use_awaitable);
    ++st.ticks;
  }
}

// ---------------------------------------------------------------- self-test client

net::awaitable<std::string> exchange(tcp::socket& socket, net::streambuf& in, std::string line) {
  co_await net::async_write(socket, net::buffer(line), net::use_awaitable);
  auto n = co_await net::async_read_until(socket, in, '\n', net::use_awaitable);
  std::string reply(static_cast<char const*>(in.data().data()), n);
  in.consume(n);
  co_return reply;
}

net::awaitable<void> self_test_client(tcp::endpoint server, std::atomic<bool>& draining) {
  auto ex = co_await net::this_coro::executor;
  tcp::socket socket(ex);
  co_await socket.async_connect(server, net::use_awaitable);
  net::streambuf in;
  if (co_await exchange(socket, in, "before\n") != "before\n")
    throw std::runtime_error("self-test: bad echo before SIGTERM");
  ::kill(::getpid(), SIGTERM);
  net::steady_timer timer(ex);
  while (!draining.load()) {
    timer.expires_after(1ms);
    co_await timer.async_wait(net::use_awaitable);
  }
  // The daemon is draining: this open connection is still served.
  if (co_await exchange(socket, in, "after\n") != "after\n")
    throw std::runtime_error("self-test: bad echo while draining");
}

/// Prints what ended the run; returns the exit status.
int report(std::exception_ptr cause) {
  try {
    if (cause) std::rethrow_exception(cause);
    std::cout << "stopped: an actor returned" << std::endl;
    return 0;
  } catch (crew::signal_received const& s) {
    std::cout << "stopped: " << (s.signo() == SIGTERM ? "SIGTERM" : "SIGINT") << std::endl;
    return 0;
  } catch (crew::task_errors const& errors) {
    std::cout << "stopped with " << errors.size() << " problems:\n";
    for (auto const& f : errors.failures()) std::cout << "  " << crew::to_string(f) << '\n';
    std::cout.flush();
    return 1;
  } catch (std::exception const& e) {
    std::cout << "stopped: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  try {
    cfg = parse_command_line(argc, argv);
  } catch (std::exception const& e) {
    std::cerr << "graceful_shutdown: " << e.what() << '\n' << usage;
    return 2;
  }

  net::io_context ioc(2);
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::address_v4::loopback(), cfg.port));
  stats st;
  std::atomic<bool> draining{false};

  //[graceful_main
  crew::run_group_options options;
  options.shutdown_grace = cfg.grace;
  options.name = "daemon";
  crew::run_group daemon{ioc.get_executor(), options};
  daemon.add(crew::execute([&] { return serve(acceptor, st); }), crew::name("server"),
             crew::interrupt([&](std::exception_ptr) {
               draining = true;
               std::cout << "draining: " << st.connections << " connections, grace "
                         << cfg.grace.count() << " ms" << std::endl;
             }));
  daemon.add(crew::execute([&] { return periodic_worker(cfg.tick, st); }), crew::name("worker"));
  daemon.add(crew::signals(crew::default_signals()));

  int status = 1;
  daemon.async_run([&](std::exception_ptr cause) { status = report(cause); });
  //]
  // The signals are registered once async_run returned: announce the port only now.
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;

  if (cfg.self_test)
    net::co_spawn(ioc, self_test_client(acceptor.local_endpoint(), draining),
                  [&](std::exception_ptr e) {
                    if (!e) return;
                    status = 1;
                    try {
                      std::rethrow_exception(e);
                    } catch (std::exception const& x) {
                      std::cout << "self-test failed: " << x.what() << std::endl;
                    }
                  });

  std::thread second([&] { ioc.run(); });
  ioc.run();
  second.join();
  std::cout << "summary: connections " << st.connections << ", lines " << st.lines << ", ticks "
            << st.ticks << ", exit " << status << std::endl;
  return status;
}
