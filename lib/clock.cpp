//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/clock.hpp>
#include <crew/detail/handler.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace crew {

namespace {

class steady_clock_impl final : public clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  system_time_point system_now() const override { return std::chrono::system_clock::now(); }

 protected:
  void do_async_wait(net::any_io_executor const& ex, time_point deadline,
                     wait_handler handler) override {
    auto timer = std::make_unique<net::steady_timer>(ex, deadline);
    auto& t = *timer;
    // The handler owns the timer; the timer's operation owns the handler.
    t.async_wait(net::consign(std::move(handler), std::move(timer)));
  }
};

}  // namespace

clock& clock::steady() noexcept {
  static steady_clock_impl instance;
  return instance;
}

// ---------------------------------------------------------------- manual_clock

struct manual_clock::state : std::enable_shared_from_this<state> {
  struct waiter {
    waiter(time_point d, std::uint64_t s, wait_handler&& h, net::any_io_executor const& ex)
        : deadline(d), seq(s), handler(std::move(h), ex) {}
    time_point deadline;
    std::uint64_t seq;
    detail::stored_handler<void(boost::system::error_code)> handler;
  };

  // any_completion_handler must never be move-assigned (Asio 1.26 recurses), so
  // waiters stay where they were allocated.
  using waiter_ptr = std::unique_ptr<waiter>;

  mutable std::mutex mutex;
  time_point now;
  time_point start;
  system_time_point system_start;
  std::uint64_t next_seq = 0;
  std::vector<waiter_ptr> waiters;  // unordered; few at a time

  static void complete(waiter_ptr w, boost::system::error_code ec) { w->handler.post(ec); }

  // Takes the waiters due at `now`, in deadline then arrival order.
  std::vector<waiter_ptr> take_due_locked() {
    std::vector<waiter_ptr> due;
    auto it = std::stable_partition(waiters.begin(), waiters.end(),
                                    [&](waiter_ptr const& w) { return w->deadline > now; });
    std::move(it, waiters.end(), std::back_inserter(due));
    waiters.erase(it, waiters.end());
    std::sort(due.begin(), due.end(), [](waiter_ptr const& a, waiter_ptr const& b) {
      return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
    });
    return due;
  }

  // A wait's cancellation (keyed_cancellation): harmless once the wait completed.
  void cancel_key(std::uint64_t seq, net::cancellation_type) {
    std::unique_lock lock(mutex);
    auto it = std::find_if(waiters.begin(), waiters.end(),
                           [&](waiter_ptr const& w) { return w->seq == seq; });
    if (it == waiters.end()) return;
    auto w = std::move(*it);
    waiters.erase(it);
    lock.unlock();
    complete(std::move(w), net::error::operation_aborted);
  }
};

manual_clock::manual_clock(time_point start) : manual_clock(start, system_time_point{}) {}

manual_clock::manual_clock(time_point start, system_time_point system_start)
    : state_(std::make_shared<state>()) {
  state_->now = state_->start = start;
  state_->system_start = system_start;
}

manual_clock::~manual_clock() {
  // Waits still pending are abandoned, as a destroyed timer's would be aborted.
  std::vector<state::waiter_ptr> left;
  {
    std::lock_guard lock(state_->mutex);
    left.swap(state_->waiters);
  }
  for (auto& w : left) state::complete(std::move(w), net::error::operation_aborted);
}

clock::time_point manual_clock::now() const {
  std::lock_guard lock(state_->mutex);
  return state_->now;
}

clock::system_time_point manual_clock::system_now() const {
  std::lock_guard lock(state_->mutex);
  // Saturates as the steady time does: a clock advanced to time_point::max() reads
  // the latest wall time there is.
  auto const moved =
      std::chrono::duration_cast<system_time_point::duration>(state_->now - state_->start);
  if (moved > system_time_point::max() - state_->system_start) return system_time_point::max();
  return state_->system_start + moved;
}

void manual_clock::advance(duration d) {
  if (d < duration::zero())
    throw std::invalid_argument("crew::manual_clock::advance: d is negative (" +
                                detail::format_duration(d) + ")");
  std::vector<state::waiter_ptr> due;
  {
    std::lock_guard lock(state_->mutex);
    state_->now = detail::saturating_add(state_->now, d);
    due = state_->take_due_locked();
  }
  for (auto& w : due) state::complete(std::move(w), {});
}

bool manual_clock::advance_to_next() {
  std::vector<state::waiter_ptr> due;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->waiters.empty()) return false;
    auto next =
        (*std::min_element(state_->waiters.begin(), state_->waiters.end(),
                           [](auto const& a, auto const& b) { return a->deadline < b->deadline; }))
            ->deadline;
    state_->now = std::max(state_->now, next);
    due = state_->take_due_locked();
  }
  for (auto& w : due) state::complete(std::move(w), {});
  return true;
}

std::size_t manual_clock::pending() const {
  std::lock_guard lock(state_->mutex);
  return state_->waiters.size();
}

clock::time_point manual_clock::next_deadline() const {
  std::lock_guard lock(state_->mutex);
  time_point next = time_point::max();
  for (auto const& w : state_->waiters) next = std::min(next, w->deadline);
  return next;
}

void manual_clock::do_async_wait(net::any_io_executor const& ex, time_point deadline,
                                 wait_handler handler) {
  auto slot = net::get_associated_cancellation_slot(handler);
  std::uint64_t seq;
  {
    std::lock_guard lock(state_->mutex);
    seq = state_->next_seq++;
  }
  auto w = std::make_unique<state::waiter>(deadline, seq, std::move(handler), ex);
  // The slot is the initiator's: fill it before another thread can complete the wait.
  if (slot.is_connected())
    slot.template emplace<detail::keyed_cancellation<state>>(
        detail::keyed_cancellation<state>{state_, seq});
  std::unique_lock lock(state_->mutex);
  if (deadline > state_->now) {
    state_->waiters.push_back(std::move(w));
    return;
  }
  lock.unlock();
  state::complete(std::move(w), {});
}

}  // namespace crew
