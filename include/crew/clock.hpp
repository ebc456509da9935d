//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_CLOCK_HPP
#define CREW_CLOCK_HPP

#include <crew/config.hpp>
#include <crew/detail/duration.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace crew {

/** The time source behind every wait crew makes: retry and loop delays, shutdown
    grace periods, supervisor restart windows.

    `crew::clock::steady()` is `std::chrono::steady_clock` with Asio's `steady_timer`.
    A test passes a `crew::manual_clock` instead, through the component's options,
    and runs in virtual time.
*/
class clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  using system_time_point = std::chrono::system_clock::time_point;

  virtual ~clock() = default;

  /// The steady clock; a process-wide object without state.
  static clock& steady() noexcept;

  virtual time_point now() const = 0;

  /** The wall-clock time now, which calendar schedules (`crew::cron_expression`) are
      computed in; waits still run on `now()`. The steady clock answers
      `std::chrono::system_clock::now()`; a manual clock answers the wall time it was
      started at, moved as far as its steady time has moved.
  */
  virtual system_time_point system_now() const = 0;

  /** Waits until `deadline`.

      @par Completion signature
      `void(boost::system::error_code)`: success when the deadline passed.

      @par Per-operation cancellation
      All types: completes at once with `operation_aborted`.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) CompletionToken>
  auto async_wait_until(net::any_io_executor const& ex, time_point deadline,
                        CompletionToken&& token) {
    return net::async_initiate<CompletionToken, void(boost::system::error_code)>(
        initiate_wait{this, ex}, token, deadline);
  }

  /// As `async_wait_until(ex, now() + d, token)`, where the sum saturates: a `d` that
  /// reaches past `time_point::max()`, such as `duration::max()`, waits until
  /// cancelled.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) CompletionToken>
  auto async_wait_for(net::any_io_executor const& ex, duration d, CompletionToken&& token) {
    return async_wait_until(ex, detail::saturating_add(now(), d),
                            std::forward<CompletionToken>(token));
  }

 protected:
  using wait_handler = net::any_completion_handler<void(boost::system::error_code)>;

  /// The initiation of the waits, as Asio's own initiations are.
  struct initiate_wait {
    using executor_type = net::any_io_executor;
    clock* self;
    net::any_io_executor ex;
    executor_type get_executor() const noexcept { return ex; }
    template <class Handler>
    void operator()(Handler&& handler, time_point deadline) const {
      self->do_async_wait(ex, deadline, wait_handler(std::forward<Handler>(handler)));
    }
  };

  /// Completes `handler` once `deadline` passed, or with `operation_aborted` when its
  /// cancellation slot is emitted. Never calls `handler` inside this call.
  virtual void do_async_wait(net::any_io_executor const& ex, time_point deadline,
                             wait_handler handler) = 0;
};

/** A clock that stands still until the test moves it.

    Waits complete, in deadline order, when `advance` moves the clock to or past their
    deadline; each completion is posted to its handler's executor. Time stops at
    `time_point::max()`, the deadline of a wait for `duration::max()`. A pending wait
    keeps its executor busy, as a real timer does. All member functions may be
    called from any thread. The clock must outlive every wait on it.
*/
class manual_clock final : public clock {
 public:
  /// Starts at `start`; the default is an arbitrary fixed point, not the real time. Its
  /// wall time starts at the Unix epoch.
  explicit manual_clock(time_point start = time_point(std::chrono::hours(1)));
  /// Starts at `start`, with the wall time `system_start`: a test of a calendar
  /// schedule starts on the date it needs.
  manual_clock(time_point start, system_time_point system_start);
  manual_clock(manual_clock const&) = delete;
  manual_clock& operator=(manual_clock const&) = delete;
  ~manual_clock() override;

  time_point now() const override;
  system_time_point system_now() const override;

  /// Moves the clock forward by `d`, stopping at `time_point::max()`, and completes
  /// every wait now due. @throws std::invalid_argument if `d` is negative.
  void advance(duration d);

  /// Moves the clock to the earliest pending deadline (if later than now) and
  /// completes the waits due then. Returns false when no wait was pending.
  bool advance_to_next();

  /// The number of waits not yet completed.
  std::size_t pending() const;

  /// The earliest pending deadline, or `time_point::max()` when none is pending.
  time_point next_deadline() const;

 protected:
  void do_async_wait(net::any_io_executor const& ex, time_point deadline,
                     wait_handler handler) override;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace crew

#endif
