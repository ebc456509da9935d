//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// echo_daemon: a TCP echo server on 127.0.0.1 built on crew::task_group, running on a
// crew::io_pool: one io_context per thread.
//
//   echo_daemon [--port P] [--threads N] [--grace-ms MS] [--self-test N]
//
// Every accepted connection is a named task of the server's group, placed on one of the
// pool's contexts, where its socket moves too. SIGINT or SIGTERM
// stops accepting, gives open connections --grace-ms to finish, then cancels the
// rest; a second signal cancels them at once. --self-test N runs N loopback clients
// that check their echoes byte for byte, then the daemon signals itself, drains and
// checks the counts. Exit status: 0 when nothing failed, 1 otherwise, 2 for bad usage.
//
#include <crew/crew.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t self_test_concurrency = 16;

struct config {
  unsigned short port = 0;
  std::size_t threads = 2;
  std::chrono::milliseconds grace = 2000ms;
  std::size_t self_test_clients = 0;  // 0: no self-test
  bool help = false;
};

constexpr char const* usage =
    "usage: echo_daemon [--port P] [--threads N] [--grace-ms MS] [--self-test N]\n"
    "  --port P       port to listen on at 127.0.0.1 (default 0: any free port)\n"
    "  --threads N    threads, each running an io_context of a crew::io_pool that\n"
    "                 the connections spread over (default 2)\n"
    "  --grace-ms MS  on SIGINT or SIGTERM, how long open connections may take to\n"
    "                 finish before they are cancelled (default 2000)\n"
    "  --self-test N  run N loopback clients against the daemon, then shut down and\n"
    "                 check that every byte came back\n";

class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::uint64_t parse_number(std::string_view option, std::string_view value, std::uint64_t min,
                           std::uint64_t max, std::string_view what) {
  std::uint64_t n = 0;
  auto const [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc{} || end != value.data() + value.size() || n < min ||
      n > max)
    throw usage_error(std::string(option) + ": '" + std::string(value) + "' is not " +
                      std::string(what) + " (" + std::to_string(min) + " to " +
                      std::to_string(max) + ")");
  return n;
}

config parse_command_line(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      cfg.help = true;
      continue;
    }
    std::string_view option = arg;
    std::string_view value;
    if (auto const eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      option = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (option == "--port" || option == "--threads" || option == "--grace-ms" ||
               option == "--self-test") {
      if (i + 1 == argc) throw usage_error(std::string(option) + " needs a value");
      value = argv[++i];
    }
    if (option == "--port")
      cfg.port = static_cast<unsigned short>(parse_number(option, value, 0, 65535, "a port"));
    else if (option == "--threads")
      cfg.threads = parse_number(option, value, 1, 256, "a number of threads");
    else if (option == "--grace-ms")
      cfg.grace = std::chrono::milliseconds(
          parse_number(option, value, 0, 86'400'000, "a number of milliseconds"));
    else if (option == "--self-test")
      cfg.self_test_clients = parse_number(option, value, 1, 10'000, "a number of clients");
    else if (arg.starts_with("-"))
      throw usage_error("unknown option '" + std::string(arg) + "'");
    else
      throw usage_error("unexpected argument '" + std::string(arg) + "'");
  }
  return cfg;
}

struct counters {
  std::atomic<std::uint64_t> connections_served{0};
  std::atomic<std::uint64_t> bytes_echoed{0};
};

std::string to_string(tcp::endpoint const& ep) {
  return ep.address().to_string() + ':' + std::to_string(ep.port());
}

char const* signal_name(int signo) {
  switch (signo) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
  }
  return "signal";
}

bool is_timed_out(std::exception_ptr const& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (boost::system::system_error const& se) {
    return se.code() == crew::error::timed_out;
  } catch (...) {
  }
  return false;
}

/// Prints every failure, descending into the task_errors of nested groups; returns
/// how many it printed.
std::size_t print_failures(crew::task_errors const& errors, std::string const& parents) {
  std::size_t count = 0;
  for (auto const& f : errors.failures()) {
    if (auto const* nested = f.as<crew::task_errors>()) {
      count += print_failures(*nested, parents + f.name + " > ");
    } else {
      std::cerr << "failure: " << parents << f;
      ++count;
    }
  }
  return count;
}

std::size_t print_failures(std::exception_ptr const& e) {
  if (!e) return 0;
  try {
    std::rethrow_exception(e);
  } catch (crew::task_errors const& errors) {
    return print_failures(errors, "");
  } catch (std::exception const& x) {
    std::cerr << "failure: " << x.what() << '\n';
  } catch (...) {
    std::cerr << "failure: unknown exception\n";
  }
  return 1;
}

net::awaitable<std::size_t> wait_and_report(crew::task_group& group) {
  std::size_t failures = 0;
  try {
    co_await group.wait();
  } catch (crew::task_errors const& errors) {
    failures = print_failures(errors, "");
  }
  co_return failures;
}

// ---------------------------------------------------------------- server

bool peer_went_away(boost::system::error_code const& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe;
}

//[echo_daemon_adopt
net::awaitable<void> echo(tcp::socket accepted, counters& stats) {
  // The io_pool placed this task on one of its contexts: the connection moves there
  // too, so that its reads and writes complete on the thread that runs the task.
  tcp::socket socket(co_await net::this_coro::executor);
  auto const protocol = accepted.local_endpoint().protocol();
  socket.assign(protocol, accepted.release());
  //]
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    auto [read_ec, n] =
        co_await socket.async_read_some(net::buffer(buffer), net::as_tuple(net::use_awaitable));
    if (peer_went_away(read_ec)) co_return;
    if (read_ec) throw boost::system::system_error(read_ec, "read");
    auto [write_ec, written] = co_await net::async_write(socket, net::buffer(buffer.data(), n),
                                                         net::as_tuple(net::use_awaitable));
    stats.bytes_echoed.fetch_add(written, std::memory_order_relaxed);
    if (peer_went_away(write_ec)) co_return;
    if (write_ec) throw boost::system::system_error(write_ec, "write");
  }
}

bool is_transient_accept_error(boost::system::error_code const& ec) {
  return ec == net::error::connection_aborted || ec == net::error::no_descriptors ||
         ec == boost::system::errc::too_many_files_open_in_system ||
         ec == net::error::no_buffer_space || ec == net::error::no_memory;
}

/// Runs until the acceptor is closed.
net::awaitable<void> accept_connections(tcp::acceptor& acceptor, crew::task_group& connections,
                                        counters& stats) {
  for (;;) {
    tcp::endpoint peer;
    auto accept = acceptor.async_accept(peer, net::as_tuple(net::use_awaitable));
    auto [ec, socket] = co_await std::move(accept);
    if (!acceptor.is_open()) co_return;
    if (ec) {
      if (!is_transient_accept_error(ec)) throw boost::system::system_error(ec, "accept");
      std::cerr << "echo_daemon: accept: " << ec.message() << ", retrying\n";
      net::steady_timer backoff(acceptor.get_executor(), 100ms);
      co_await backoff.async_wait(net::use_awaitable);
      continue;
    }
    stats.connections_served.fetch_add(1, std::memory_order_relaxed);
    connections.spawn(echo(std::move(socket), stats),
                      crew::spawn_options{.name = "conn " + to_string(peer)});
  }
}

net::awaitable<void> watch_signals(net::signal_set& signals, tcp::acceptor& acceptor,
                                   crew::task_group& connections) {
  int signo = co_await signals.async_wait(net::use_awaitable);
  std::cout << signal_name(signo) << " received: no longer accepting" << std::endl;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  for (;;) {
    signo = co_await signals.async_wait(net::use_awaitable);
    std::cout << signal_name(signo) << " received again: cancelling " << connections.size()
              << " connection(s) now" << std::endl;
    connections.cancel();
  }
}

// ---------------------------------------------------------------- self-test clients

/// Varied sizes, some larger than a socket buffer.
std::array<std::size_t, 6> message_sizes(std::size_t client) {
  return {1,
          10 + client % 90,
          1500,
          4096 + 31 * (client % 100),
          65536 - client % 1000,
          200'000 + 997 * (client % 100)};
}

std::uint64_t bytes_sent_by(std::size_t client) {
  std::uint64_t n = 0;
  for (auto size : message_sizes(client)) n += size;
  return n;
}

/// Content that differs between clients and between messages.
std::vector<std::string> messages_for(std::size_t client) {
  std::vector<std::string> messages;
  auto x = static_cast<std::uint32_t>(client * 2654435761u + 1);
  for (auto size : message_sizes(client)) {
    std::string m(size, '\0');
    for (char& c : m) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>(x >> 24);
    }
    messages.push_back(std::move(m));
  }
  return messages;
}

net::awaitable<void> send_messages(tcp::socket& socket, std::vector<std::string> const& messages) {
  for (auto const& m : messages)
    co_await net::async_write(socket, net::buffer(m), net::use_awaitable);
  socket.shutdown(tcp::socket::shutdown_send);
}

net::awaitable<void> check_echoes(tcp::socket& socket, std::vector<std::string> const& messages,
                                  std::size_t client) {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    std::string reply(messages[i].size(), '\0');
    co_await net::async_read(socket, net::buffer(reply), net::use_awaitable);
    if (reply != messages[i]) {
      std::size_t at = 0;
      while (reply[at] == messages[i][at]) ++at;
      throw std::runtime_error("client " + std::to_string(client) + ": echo of message " +
                               std::to_string(i) + " (" + std::to_string(messages[i].size()) +
                               " bytes) differs at byte " + std::to_string(at));
    }
  }
  char extra;
  auto [ec, n] =
      co_await socket.async_read_some(net::buffer(&extra, 1), net::as_tuple(net::use_awaitable));
  if (ec != net::error::eof)
    throw std::runtime_error("client " + std::to_string(client) +
                             ": expected the end of the stream after the last echo, got " +
                             (ec ? ec.message() : std::to_string(n) + " more byte(s)"));
}

net::awaitable<void> run_client(tcp::endpoint server, std::size_t client) {
  // The sender and the receiver share the socket. They run on this task's context, a
  // single thread: nothing else keeps them apart.
  auto ex = co_await net::this_coro::executor;
  tcp::socket socket(ex);
  co_await socket.async_connect(server, net::use_awaitable);
  auto const messages = messages_for(client);
  crew::task_group_options options{.policy = crew::failure_policy::cancel_on_first};
  crew::task_group halves(ex, std::move(options));
  halves.spawn(send_messages(socket, messages), crew::spawn_options{.name = "send"});
  halves.spawn(check_echoes(socket, messages, client), crew::spawn_options{.name = "receive"});
  co_await halves.wait();
}

/// Runs the clients, at most 16 at once, then asks the daemon to shut down the way an
/// operator would. Client failures come out of here as a nested task_errors.
net::awaitable<void> run_self_test(tcp::endpoint server, std::size_t clients_n,
                                   net::any_io_executor pool) {
  // Once cancelled, still wait for the clients already started.
  co_await net::this_coro::throw_if_cancelled(false);
  auto const state = co_await net::this_coro::cancellation_state;
  auto const cancelled = [&state] { return state.cancelled() != net::cancellation_type::none; };

  crew::task_group_options options{.limit = self_test_concurrency, .name = "self-test clients"};
  crew::task_group clients(pool, std::move(options));
  for (std::size_t i = 0; i < clients_n && !cancelled(); ++i) {
    // Waits for a free slot; cancelled meanwhile, the client never starts.
    auto admitted = clients.async_spawn(run_client(server, i),
                                        crew::spawn_options{.name = "client " + std::to_string(i)},
                                        net::as_tuple(net::use_awaitable));
    co_await std::move(admitted);
  }
  if (cancelled()) clients.cancel();
  auto all_done = clients.async_wait(net::as_tuple(net::use_awaitable));
  auto [failures] = co_await std::move(all_done);
  if (!cancelled()) ::kill(::getpid(), SIGTERM);
  if (failures) std::rethrow_exception(failures);
}

// ---------------------------------------------------------------- daemon

/// Runs on the pool's first context, with the acceptor and the signal set; spawns the
/// connections on the pool's executor. Returns the exit status.
net::awaitable<int> run_daemon(tcp::acceptor& acceptor, net::signal_set& signals, config const& cfg,
                               net::any_io_executor pool) {
  auto ex = co_await net::this_coro::executor;
  auto const server = acceptor.local_endpoint();
  counters stats;
  std::size_t failures = 0;

  crew::task_group connections(pool);
  crew::task_group self_test(pool);
  crew::task_group control(ex);
  control.spawn(watch_signals(signals, acceptor, connections),
                crew::spawn_options{.name = "signals"});
  if (cfg.self_test_clients > 0)
    self_test.spawn(run_self_test(server, cfg.self_test_clients, pool),
                    crew::spawn_options{.name = "self-test"});

  try {
    co_await accept_connections(acceptor, connections, stats);
  } catch (std::exception const& e) {
    std::cerr << "echo_daemon: " << e.what() << ": no longer accepting\n";
    ++failures;
  }
  boost::system::error_code ignored;
  acceptor.close(ignored);
  self_test.cancel();

  std::cout << "draining " << connections.size() << " connection(s), grace " << cfg.grace.count()
            << " ms" << std::endl;
  auto grace = connections.async_wait_for(cfg.grace, net::as_tuple(net::use_awaitable));
  auto [drained] = co_await std::move(grace);
  if (is_timed_out(drained)) {
    std::cout << "grace period over: cancelling " << connections.size() << " connection(s)"
              << std::endl;
    connections.cancel();
  } else {
    failures += print_failures(drained);
  }
  failures += co_await wait_and_report(connections);
  failures += co_await wait_and_report(self_test);
  control.cancel();
  failures += co_await wait_and_report(control);

  auto const served = stats.connections_served.load();
  auto const echoed = stats.bytes_echoed.load();
  std::cout << (cfg.self_test_clients > 0 ? "self-test" : "echo_daemon") << ": connections served "
            << served << ", bytes echoed " << echoed << ", failures " << failures << std::endl;
  if (cfg.self_test_clients == 0) co_return failures == 0 ? 0 : 1;

  std::uint64_t expected_bytes = 0;
  for (std::size_t i = 0; i < cfg.self_test_clients; ++i) expected_bytes += bytes_sent_by(i);
  bool ok = failures == 0;
  if (served != cfg.self_test_clients) {
    std::cout << "self-test: expected " << cfg.self_test_clients << " connections, served "
              << served << std::endl;
    ok = false;
  }
  if (echoed != expected_bytes) {
    std::cout << "self-test: expected " << expected_bytes << " bytes echoed, got " << echoed
              << std::endl;
    ok = false;
  }
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  try {
    cfg = parse_command_line(argc, argv);
  } catch (usage_error const& e) {
    std::cerr << "echo_daemon: " << e.what() << '\n' << usage;
    return 2;
  }
  if (cfg.help) {
    std::cout << usage;
    return 0;
  }

  //[echo_daemon_pool
  crew::io_pool pool(cfg.threads);
  // The acceptor, the signal set and the daemon's own coroutine live on the first
  // context, a single thread: they need no strand.
  auto const home = pool.context(0).get_executor();
  // Installed before the port is printed, so that a signal sent by whoever reads it
  // is never the default, fatal one.
  net::signal_set signals(home, SIGINT, SIGTERM);
  tcp::acceptor acceptor(home);
  //]
  tcp::endpoint const endpoint(net::ip::address_v4::loopback(), cfg.port);
  try {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
  } catch (boost::system::system_error const& e) {
    std::cerr << "echo_daemon: cannot listen on " << to_string(endpoint) << ": "
              << e.code().message() << '\n';
    return 1;
  }
  std::cout << "listening on " << to_string(acceptor.local_endpoint()) << ", " << cfg.threads
            << " thread(s)" << std::endl;

  int status = 1;
  net::co_spawn(home, run_daemon(acceptor, signals, cfg, pool.get_executor()),
                [&status, &pool](std::exception_ptr e, int rc) {
                  status = rc;
                  if (e) {
                    status = 1;
                    print_failures(e);
                  }
                  pool.stop();
                });
  pool.run();
  return status;
}
