//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// service_manager: a daemon made of managed tasks in a crew::task_manager.
//
//   service_manager [--port P] [--config FILE] [--tick-ms MS] [--self-test]
//
//   database  a fake database connection: initialize connects, execute waits until
//             cancelled, cleanup closes.
//   listener  an HTTP/1.0 server on 127.0.0.1 (--port, 0 for any free port) that answers
//             every request with the current configuration: the content of --config
//             FILE, or a greeting, and the configuration's generation. It is wrapped in
//             crew::tasks::interruptible({SIGHUP}, ...): SIGHUP reloads it (cleanup
//             closes the acceptor, initialize reads the configuration again and opens
//             it on the same port, execute serves again).
//   reporter  crew::tasks::repeat_timer: prints the requests served every --tick-ms.
//   signals   an execute-only task of kind stop_group that returns on SIGINT or
//             SIGTERM: the manager then cancels every execute and cleans the managed
//             tasks up in reverse order of add: reporter, listener, database.
//
// Every stage prints a line as it happens. The daemon exits 0 after a clean shutdown,
// 1 when the run reported failures (printed), 2 on a bad command line.
// --self-test runs the daemon with a client of its own: it makes a request, raises
// SIGHUP, checks that the reload happened, raises SIGTERM, and checks the order of the
// cleanups.
//
#include <crew/crew.hpp>
#include <crew/task_manager.hpp>
#include <crew/tasks.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct options {
  unsigned short port = 0;
  std::string config_file;  // empty: no file, a greeting
  std::chrono::milliseconds tick = 1000ms;
  bool self_test = false;
};

constexpr char const* usage =
    "usage: service_manager [--port P] [--config FILE] [--tick-ms MS] [--self-test]\n";

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
    if (arg == "--port") {
      opt.port = static_cast<unsigned short>(parse_number(arg, value(), 65535));
    } else if (arg == "--config") {
      char const* file = value();
      if (!file || !*file) throw std::invalid_argument("--config: needs a file name");
      opt.config_file = file;
    } else if (arg == "--tick-ms") {
      opt.tick = std::chrono::milliseconds(parse_number(arg, value(), 86'400'000));
    } else if (arg == "--self-test") {
      opt.self_test = true;
    } else {
      throw std::invalid_argument("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (opt.tick == 0ms) throw std::invalid_argument("--tick-ms: must be at least 1");
  return opt;
}

/// Prints each line whole, from any thread, and keeps them for the self-test.
class journal {
 public:
  void say(std::string line) {
    std::lock_guard lock(mutex_);
    std::cout << line << std::endl;
    lines_.push_back(std::move(line));
  }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

/// What the tasks share: the output, the counters, and the executor their I/O objects
/// use (the io_context's own: an object that outlives a stage must not be bound to the
/// stage's task, which `co_await this_coro::executor` would name).
struct service {
  net::any_io_executor ex;
  journal out;
  options opt;
  std::atomic<std::uint64_t> requests{0};
  std::atomic<unsigned> generation{0};  // of the listener's configuration
  std::atomic<unsigned short> port{0};  // bound by the listener's first initialize
  std::atomic<unsigned> listening{0};   // how many times the listener began serving
};

// ---------------------------------------------------------------- database

//[service_database
/// A fake database connection: a crew::managed_task.
class database {
 public:
  explicit database(service& svc) : svc_(svc) {}

  net::awaitable<void> initialize() {
    svc_.out.say("database: connecting");
    co_return;
  }

  net::awaitable<void> execute() {
    svc_.out.say("database: connected");
    net::steady_timer idle(svc_.ex, net::steady_timer::time_point::max());
    // Parks until the manager cancels the execute stage: the wait completes with
    // operation_aborted, which the manager counts as cancelled, not as a failure.
    co_await idle.async_wait(net::as_tuple(net::use_awaitable));
    svc_.out.say("database: execute cancelled");
  }

  net::awaitable<void> cleanup() {
    svc_.out.say("database: closed");
    co_return;
  }

 private:
  service& svc_;
};
//]

static_assert(crew::managed_task<database>);

// ---------------------------------------------------------------- listener

/// The configuration's text: the file's content without trailing white space, or a
/// greeting when there is no file.
std::string read_config(std::string const& file) {
  if (file.empty()) return "hello from service_manager";
  std::ifstream in(file);
  if (!in) throw std::runtime_error("listener: cannot read the configuration '" + file + "'");
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  while (!text.empty() && std::string_view(" \t\r\n").find(text.back()) != std::string_view::npos)
    text.pop_back();
  return text;
}

/// One connection: a request line (and its headers, if it names an HTTP version), then
/// an HTTP/1.0 response whose body is `body`, then the server closes. I/O errors end
/// the connection quietly.
net::awaitable<void> session(tcp::socket socket, std::string body, service& svc) {
  net::streambuf in;
  auto [ec, n] =
      co_await net::async_read_until(socket, in, '\n', net::as_tuple(net::use_awaitable));
  if (ec) co_return;
  std::string const request(static_cast<char const*>(in.data().data()), n);
  in.consume(n);
  if (request.find(" HTTP/") != std::string::npos) {
    for (;;) {  // headers, up to an empty line
      auto [hec, hn] =
          co_await net::async_read_until(socket, in, '\n', net::as_tuple(net::use_awaitable));
      if (hec) co_return;
      bool const end = hn <= 2 && (hn == 1 || *static_cast<char const*>(in.data().data()) == '\r');
      in.consume(hn);
      if (end) break;
    }
  }
  std::string const response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  auto [wec, wn] =
      co_await net::async_write(socket, net::buffer(response), net::as_tuple(net::use_awaitable));
  if (wec) co_return;
  ++svc.requests;
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

//[service_listener
/// An HTTP/1.0 server: a crew::managed_task whose initialize reads the configuration
/// and opens the acceptor, execute serves, cleanup closes the acceptor. Wrapped in
/// crew::tasks::interruptible, it runs cleanup, initialize and execute again on SIGHUP.
class listener {
 public:
  explicit listener(service& svc) : svc_(svc) {}

  net::awaitable<void> initialize() {
    body_ = read_config(svc_.opt.config_file);  // a failure here fails the stage
    auto const generation = ++svc_.generation;
    body_ += " (config generation " + std::to_string(generation) + ")\n";
    svc_.out.say("listener: initialize (config generation " + std::to_string(generation) + ")");
    // The first initialize binds --port (0: any free port); a reload binds that port again.
    auto const port = svc_.port.load() ? svc_.port.load() : svc_.opt.port;
    acceptor_.emplace(svc_.ex);
    tcp::endpoint const endpoint(net::ip::address_v4::loopback(), port);
    acceptor_->open(endpoint.protocol());
    acceptor_->set_option(tcp::acceptor::reuse_address(true));
    acceptor_->bind(endpoint);
    acceptor_->listen();
    svc_.port = acceptor_->local_endpoint().port();
    co_return;
  }

  net::awaitable<void> execute() {
    // SIGHUP is caught from here on: interruptible registered it before calling this.
    svc_.out.say("listening on 127.0.0.1:" + std::to_string(svc_.port.load()));
    ++svc_.listening;
    crew::task_group connections{svc_.ex};
    try {
      for (;;) {
        auto socket = co_await acceptor_->async_accept(net::use_awaitable);
        connections.spawn(session(std::move(socket), body_, svc_));
      }
    } catch (boost::system::system_error const& e) {
      if (e.code() != net::error::operation_aborted) throw;
    }
    // Cancelled (a reload, or the shutdown): the open connections go too.
    svc_.out.say("listener: execute cancelled");
    co_await net::this_coro::reset_cancellation_state();
    connections.cancel();
    co_await connections.wait();
  }

  net::awaitable<void> cleanup() {
    svc_.out.say("listener: cleanup");
    boost::system::error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
    acceptor_.reset();
    co_return;
  }

 private:
  service& svc_;
  std::optional<tcp::acceptor> acceptor_;
  std::string body_;
};
//]

// ---------------------------------------------------------------- reporter

/// Run on every tick by crew::tasks::repeat_timer.
class reporter {
 public:
  explicit reporter(service& svc) : svc_(svc) {}

  net::awaitable<void> initialize() {
    svc_.out.say("reporter: initialize");
    co_return;
  }

  net::awaitable<void> execute() {
    svc_.out.say("reporter: " + std::to_string(svc_.requests.load()) + " requests served");
    co_return;
  }

  net::awaitable<void> cleanup() {
    svc_.out.say("reporter: cleanup");
    co_return;
  }

 private:
  service& svc_;
};

// ---------------------------------------------------------------- signals

//[service_signals
/// Returns once SIGINT or SIGTERM arrives. `signals` was made before the run, so a
/// signal that comes before this task starts waiting is kept for it.
net::awaitable<void> wait_for_stop(net::signal_set& signals, journal& out) {
  out.say("signals: waiting for SIGINT or SIGTERM");
  int const signo = co_await signals.async_wait(net::use_awaitable);
  out.say(std::string("signals: ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + ", shutting down");
}
//]

// ---------------------------------------------------------------- self-test client

/// Waits, 1 ms at a time, until `ready()`.
net::awaitable<void> poll_until(std::function<bool()> ready) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex);
  for (int i = 0; !ready(); ++i) {
    if (i == 60'000) throw std::runtime_error("self-test: waited 60 s in vain");
    timer.expires_after(1ms);
    co_await timer.async_wait(net::use_awaitable);
  }
}

/// One request; the whole response.
net::awaitable<std::string> http_get(unsigned short port) {
  auto ex = co_await net::this_coro::executor;
  tcp::socket socket(ex);
  co_await socket.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), port),
                                net::use_awaitable);
  std::string const request = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  co_await net::async_write(socket, net::buffer(request), net::use_awaitable);
  std::string response;
  auto [ec, n] = co_await net::async_read(socket, net::dynamic_buffer(response),
                                          net::as_tuple(net::use_awaitable));
  if (ec != net::error::eof) throw std::runtime_error("self-test: no response: " + ec.message());
  co_return response;
}

void expect_generation(std::string const& response, unsigned generation) {
  auto const want = "(config generation " + std::to_string(generation) + ")\n";
  if (!response.starts_with("HTTP/1.0 200 OK\r\n") || !response.ends_with(want))
    throw std::runtime_error("self-test: expected a response ending with '" + want + "', got '" +
                             response + "'");
}

/// Runs as an execute-only task of kind `error`: returning ends only itself; a failure
/// ends the run with it.
net::awaitable<void> self_test_client(service& svc) {
  {
    auto op = poll_until([&] { return svc.listening.load() >= 1; });
    co_await std::move(op);
  }
  auto const before = co_await http_get(svc.port.load());
  expect_generation(before, 1);
  ::kill(::getpid(), SIGHUP);  // reload the listener
  {
    auto op = poll_until([&] { return svc.listening.load() >= 2; });
    co_await std::move(op);
  }
  auto const after = co_await http_get(svc.port.load());
  expect_generation(after, 2);
  ::kill(::getpid(), SIGTERM);  // stop the daemon
}

/// The order of the lines the self-test is about; an empty string when it is right.
std::string check_order(std::vector<std::string> const& lines) {
  auto find = [&](std::string const& line, std::size_t from) {
    auto const it = std::find(lines.begin() + static_cast<std::ptrdiff_t>(from), lines.end(), line);
    return it == lines.end() ? std::string::npos : static_cast<std::size_t>(it - lines.begin());
  };
  std::vector<std::string> const expected{
      "database: connecting",
      "listener: initialize (config generation 1)",
      "reporter: initialize",
      "listener: cleanup",  // the reload
      "listener: initialize (config generation 2)",
      "signals: SIGTERM, shutting down",
      "reporter: cleanup",  // the shutdown: reverse order of add
      "listener: cleanup",
      "database: closed",
      "stopped: clean shutdown",
  };
  std::size_t at = 0;
  for (auto const& line : expected) {
    auto const found = find(line, at);
    if (found == std::string::npos)
      return "expected '" + line + "' after line " + std::to_string(at);
    at = found + 1;
  }
  return {};
}

// ---------------------------------------------------------------- result

/// Prints what ended the run; returns the exit status.
int report(std::exception_ptr result, journal& out) {
  if (!result) {
    out.say("stopped: clean shutdown");
    return 0;
  }
  try {
    std::rethrow_exception(result);
  } catch (crew::task_errors const& errors) {
    out.say("stopped with failures: " + std::string(errors.what()));
  } catch (std::exception const& e) {
    out.say(std::string("stopped: ") + e.what());
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  service svc;
  try {
    svc.opt = parse_command_line(argc, argv);
  } catch (std::exception const& e) {
    std::cerr << "service_manager: " << e.what() << '\n' << usage;
    return 2;
  }

  net::io_context ioc(2);
  svc.ex = ioc.get_executor();
  // Registered now: a SIGINT or SIGTERM from here on is kept for the signals task.
  net::signal_set stop_signals(ioc, SIGINT, SIGTERM);

  //[service_main
  crew::task_manager_options options;
  options.name = "service";
  crew::task_manager manager{ioc.get_executor(), options};
  // Initialized in this order, cleaned up in the reverse one.
  manager.add("database", database{svc}, crew::task_kind::strict);
  manager.add("listener", crew::tasks::interruptible({SIGHUP}, listener{svc}),
              crew::task_kind::strict);
  manager.add("reporter", crew::tasks::repeat_timer(svc.opt.tick, reporter{svc}),
              crew::task_kind::strict);
  // Execute only: when it returns normally, the run shuts down without an error.
  manager.add_execute_task(
      "signals", [&] { return wait_for_stop(stop_signals, svc.out); }, crew::task_kind::stop_group);

  int status = 1;
  manager.async_run([&](std::exception_ptr result) { status = report(result, svc.out); });
  //]

  if (svc.opt.self_test)
    manager.add_execute_task(
        "self-test", [&] { return self_test_client(svc); }, crew::task_kind::error);

  std::thread second([&] { ioc.run(); });
  ioc.run();
  second.join();

  if (svc.opt.self_test) {
    auto const problem = check_order(svc.out.lines());
    if (!problem.empty() || status != 0) {
      svc.out.say("self-test failed: " +
                  (problem.empty() ? "exit " + std::to_string(status) : problem));
      status = 1;
    } else {
      svc.out.say("self-test: passed");
    }
  }
  svc.out.say("summary: requests " + std::to_string(svc.requests.load()) + ", config generation " +
              std::to_string(svc.generation.load()) + ", exit " + std::to_string(status));
  return status;
}
