//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A retry is a policy over the restart driver: each attempt is a crew task, and the
// policy decides after each failure whether to wait and try again.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/restart.hpp>
#include <crew/retry.hpp>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace crew {

void retrier::set_delay(duration d) {
  if (d < duration::zero()) {
    stop();
    throw std::invalid_argument("crew::retrier::set_delay: d is negative (" +
                                detail::format_duration(d) + ")");
  }
  delay_ = d;
}

namespace detail {

void validate_retry_options(retry_options const& o) {
  if (o.max_attempts == 0)
    throw std::invalid_argument(
        "crew::async_retry: max_attempts must be at least 1 or crew::unlimited (got 0)");
  if (o.max_elapsed < clock::duration::zero())
    throw std::invalid_argument("crew::async_retry: max_elapsed is negative (" +
                                format_duration(o.max_elapsed) + ")");
}

struct retry_access {
  static retrier make(clock& c) { return retrier(c); }
  static void begin(retrier& r, std::size_t n) { r.iteration_ = n; }

  /// The wait before the next attempt, or none when the retry must end.
  static std::optional<clock::duration> next_delay(retrier& r, retry_options const& o,
                                                   std::exception_ptr const& e, bool stopping) {
    if (stopping || r.stopped_ || r.iteration_ >= o.max_attempts) return std::nullopt;
    if (o.retry_if && !o.retry_if(e)) return std::nullopt;
    auto const n = static_cast<unsigned>(std::min<std::size_t>(r.iteration_, ~0u));
    auto const d = r.delay_ ? *r.delay_ : o.backoff.delay(n);
    if (o.max_elapsed != clock::duration::max()) {
      auto const elapsed = r.elapsed();  // never negative: the clock is steady
      if (elapsed > o.max_elapsed || d > o.max_elapsed - elapsed) return std::nullopt;
    }
    r.delay_.reset();
    r.last_failure_ = e;
    return d;
  }
};

namespace {

std::exception_ptr aborted() {
  return std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted));
}

class retry_policy final : public restart_policy {
 public:
  retry_policy(attempt_function fn, retry_options const& o, source_location site, clock& clk)
      : fn_(std::move(fn)), options_(o), site_(site), retrier_(retry_access::make(clk)) {}

  task_body make_run(std::size_t n, task_spec& spec) override {
    retry_access::begin(retrier_, n);
    spec.name = "attempt " + std::to_string(n);
    spec.site = site_;
    return fn_(retrier_);
  }

  restart_decision next(run_outcome&& o) override {
    switch (o.what) {
      case run_outcome::kind::success:
        return restart_decision::stop();
      case run_outcome::kind::cancelled:
        // The operation_aborted this operation's cancellation caused, never wrapped.
        return restart_decision::stop(o.error ? o.error : aborted());
      case run_outcome::kind::failure:
        break;
    }
    if (options_.all_failures) failures_.push_back(*o.failure);
    if (auto d = retry_access::next_delay(retrier_, options_, o.error, o.stopping))
      return restart_decision::restart(*d);
    if (options_.all_failures)
      return restart_decision::stop(std::make_exception_ptr(task_errors(std::move(failures_))));
    return restart_decision::stop(o.error);
  }

  std::exception_ptr stopped() override { return aborted(); }

 private:
  attempt_function fn_;
  retry_options const options_;
  source_location const site_;
  retrier retrier_;
  std::vector<task_failure> failures_;
};

}  // namespace

void start_retry(net::any_io_executor const& ex, attempt_function fn, retry_options const& o,
                 source_location site, retry_handler handler) {
  auto& clk = o.clock ? *o.clock : clock::steady();
  start_driver(ex, clk, std::make_unique<retry_policy>(std::move(fn), o, site, clk), "retry",
               std::string(), std::move(handler));
}

}  // namespace detail
}  // namespace crew
