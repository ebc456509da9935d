//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/loop.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace crew::detail {

struct loop_settings {
  crew::clock::duration restart_delay;
  crew::backoff backoff;
  crew::clock* clock;
  std::string name;
};

namespace {

void report_iteration(loop_settings const& s, actor const& a, std::exception_ptr e) {
  if (a.on_failure) {
    try {
      a.on_failure(e);
      return;
    } catch (...) {
      e = std::current_exception();
    }
  }
  task_failure f;
  f.name = a.name;
  f.trace = throw_site_trace(e);
  f.exception = std::move(e);
  f.stage = a.on_failure ? task_stage::handler : task_stage::execute;
  report_failure("loop", s.name, "had a failure nobody handled", std::move(f));
}

net::awaitable<void> restart_loop(std::shared_ptr<actor const> a,
                                  std::shared_ptr<loop_settings const> s) {
  auto ex = co_await net::this_coro::executor;
  auto& clk = s->clock ? *s->clock : clock::steady();
  unsigned failures = 0;
  for (;;) {
    std::exception_ptr e;
    try {
      co_await a->execute();
    } catch (...) {
      e = std::current_exception();
    }
    auto state = co_await net::this_coro::cancellation_state;
    if (state.cancelled() != net::cancellation_type::none) {
      // Stopped. An operation_aborted is the stop's doing; anything else is a real
      // failure of this last iteration.
      if (e && !is_operation_aborted(e)) report_iteration(*s, *a, e);
      co_return;
    }
    auto delay = s->restart_delay;
    if (e) {
      ++failures;
      report_iteration(*s, *a, e);
      delay = std::max(delay, s->backoff.delay(failures));
    } else {
      failures = 0;
    }
    if (delay > clock::duration::zero())
      co_await clk.async_wait_for(ex, delay, net::use_awaitable);
    else
      co_await net::post(ex, net::use_awaitable);
  }
}

}  // namespace

std::shared_ptr<loop_settings const> make_loop_settings(loop_options const& o) {
  if (o.restart_delay < clock::duration::zero())
    throw std::invalid_argument(
        "crew::loop: options.restart_delay is negative (" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(o.restart_delay).count()) +
        " ms)");
  return std::make_shared<loop_settings const>(
      loop_settings{o.restart_delay, o.backoff, o.clock, o.name});
}

run_group_options run_options_of(loop_options const& o) {
  run_group_options r;
  r.shutdown_grace = o.shutdown_grace;
  r.clock = o.clock;
  r.name = o.name;
  check_options(r, "crew::loop");
  return r;
}

actor loop_actor(actor a, std::shared_ptr<loop_settings const> const& settings) {
  if (!a.execute)
    throw std::invalid_argument("crew::loop::add: the actor '" + a.name +
                                "' has no execute function");
  actor wrapped;
  wrapped.name = a.name;
  wrapped.interrupt = a.interrupt;
  wrapped.on_failure = a.on_failure;  // hears of an actor outliving the shutdown grace
  // Failures of iterations are reported by the restart loop; the wrapper ends only
  // when it is stopped.
  wrapped.execute = [inner = std::make_shared<actor const>(std::move(a)), settings] {
    return restart_loop(inner, settings);
  };
  return wrapped;
}

}  // namespace crew::detail
