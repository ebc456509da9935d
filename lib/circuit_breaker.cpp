//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The circuit breaker: gobreaker v2's state machine (generations, a fixed or rolling
// window of counts, half-open trials) behind a mutex, shared by the breaker and every
// call in flight; a call is a crew task whose owner counts its outcome, then posts its
// completion. go_with_circuit_breaker's task has an owner that counts and reports.
//
#include <crew/circuit_breaker.hpp>
#include <crew/detail/duration.hpp>
#include <crew/detail/enum_name.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/task.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/system/system_error.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace crew {

char const* to_string(circuit_state s) noexcept {
  static char const* const names[] = {"closed", "half-open", "open"};
  return detail::enum_name(s, names);
}

std::ostream& operator<<(std::ostream& os, circuit_state s) {
  return os << to_string(s);
}

std::ostream& operator<<(std::ostream& os, circuit_counts const& c) {
  return os << "{requests " << c.requests << ", successes " << c.total_successes << ", failures "
            << c.total_failures << ", exclusions " << c.total_exclusions
            << ", consecutive successes " << c.consecutive_successes << ", consecutive failures "
            << c.consecutive_failures << '}';
}

namespace detail {

namespace {

char const* const breaker_kind = "circuit breaker";
constexpr std::uint64_t max_buckets = 65536;

using time_point = clock::time_point;
using duration = clock::duration;

/// The expiry that never comes: `saturating_add(now, duration::max())`.
constexpr time_point never = time_point::max();

std::uint64_t minus(std::uint64_t a, std::uint64_t b) noexcept {
  return a > b ? a - b : 0;
}

void count_success(circuit_counts& c) noexcept {
  ++c.total_successes;
  ++c.consecutive_successes;
  c.consecutive_failures = 0;
}

void count_failure(circuit_counts& c) noexcept {
  ++c.total_failures;
  ++c.consecutive_failures;
  c.consecutive_successes = 0;
}

/** gobreaker v2's rolling counts: the total of a ring of buckets, one per
    `bucket_period` of the closed state (one bucket: a fixed window). As time moves on,
    the oldest bucket drops out of the total. An outcome counts in the bucket of the
    time its call was let through (its age), unless that bucket has left the ring.
*/
class rolling_counts {
 public:
  explicit rolling_counts(std::size_t buckets) : buckets_(buckets) {}

  circuit_counts const& total() const noexcept { return total_; }
  std::uint64_t age() const noexcept { return age_; }
  bool rolling() const noexcept { return buckets_.size() >= 2; }

  /// Calls let through and not excluded: what the half-open limit counts.
  std::uint64_t valid_requests() const noexcept {
    return minus(total_.requests, total_.total_exclusions);
  }

  void on_request() noexcept {
    ++total_.requests;
    ++current().requests;
  }

  void on_success(std::uint64_t age) noexcept {
    if (auto* b = bucket(age)) {
      count_success(total_);
      count_success(*b);
    }
  }

  void on_failure(std::uint64_t age) noexcept {
    if (auto* b = bucket(age)) {
      count_failure(total_);
      count_failure(*b);
    }
  }

  void on_exclusion(std::uint64_t age) noexcept {
    if (auto* b = bucket(age)) {
      ++total_.total_exclusions;
      ++b->total_exclusions;
    }
  }

  void clear() noexcept {
    total_ = {};
    age_ = 0;
    for (auto& b : buckets_) b = {};
  }

  /// Moves the ring on to `age`.
  void grow(std::uint64_t age) noexcept {
    if (age <= age_) return;
    auto const diff = age - age_;
    if (diff >= buckets_.size()) {
      clear();
      age_ = age;
      return;
    }
    for (std::uint64_t i = 0; i < diff; ++i) roll();
  }

 private:
  circuit_counts& current() noexcept { return buckets_[age_ % buckets_.size()]; }

  circuit_counts* bucket(std::uint64_t age) noexcept {
    if (age > age_ || age_ - age >= buckets_.size()) return nullptr;
    return &buckets_[age % buckets_.size()];
  }

  void roll() noexcept {
    ++age_;
    auto& oldest = current();
    subtract(oldest);
    oldest = {};
  }

  /// Takes the oldest bucket out of the total. A streak that reaches into it (the
  /// streak is as long as that bucket's own streak plus every outcome counted after
  /// it) loses that bucket's part, as gobreaker does. The total is the sum of the
  /// buckets, so "every outcome after it" is the total less the bucket.
  void subtract(circuit_counts const& b) noexcept {
    if (total_.consecutive_successes ==
        b.consecutive_successes + minus(total_.total_successes, b.total_successes))
      total_.consecutive_successes = minus(total_.consecutive_successes, b.consecutive_successes);
    if (total_.consecutive_failures ==
        b.consecutive_failures + minus(total_.total_failures, b.total_failures))
      total_.consecutive_failures = minus(total_.consecutive_failures, b.consecutive_failures);
    total_.requests = minus(total_.requests, b.requests);
    total_.total_successes = minus(total_.total_successes, b.total_successes);
    total_.total_failures = minus(total_.total_failures, b.total_failures);
    total_.total_exclusions = minus(total_.total_exclusions, b.total_exclusions);
  }

  circuit_counts total_;
  std::uint64_t age_ = 0;
  std::vector<circuit_counts> buckets_;
};

/** The settings' durations, checked and made plain: zero interval is "never", a zero
    open_timeout is 60 s, the interval is a whole number of buckets. */
struct timing {
  duration interval{};
  duration bucket_period{};
  std::size_t buckets = 1;
  duration open_timeout{};
};

[[noreturn]] void bad_setting(std::string const& what) {
  throw std::invalid_argument("crew::circuit_breaker: " + what);
}

timing check(circuit_breaker_settings const& s) {
  if (s.interval < duration::zero())
    bad_setting("interval is negative (" + format_duration(s.interval) + ")");
  if (s.bucket_period < duration::zero())
    bad_setting("bucket_period is negative (" + format_duration(s.bucket_period) + ")");
  if (s.open_timeout < duration::zero())
    bad_setting("open_timeout is negative (" + format_duration(s.open_timeout) + ")");
  timing t;
  t.interval = s.interval == duration::max() ? duration::zero() : s.interval;
  t.open_timeout = s.open_timeout == duration::zero() ? std::chrono::seconds(60) : s.open_timeout;
  if (s.bucket_period > duration::zero()) {
    if (t.interval == duration::zero())
      bad_setting("bucket_period (" + format_duration(s.bucket_period) +
                  ") needs a finite, positive interval (got " + format_duration(s.interval) + ")");
    auto const p = s.bucket_period.count();
    auto const i = t.interval.count();
    auto const n = static_cast<std::uint64_t>(i / p + (i % p != 0 ? 1 : 0));
    if (n > max_buckets || (n > 1 && static_cast<std::uint64_t>(duration::max().count() / p) < n))
      bad_setting("interval (" + format_duration(s.interval) + ") is more than " +
                  std::to_string(max_buckets) + " buckets of bucket_period (" +
                  format_duration(s.bucket_period) + ")");
    t.buckets = static_cast<std::size_t>(n);
    t.bucket_period = s.bucket_period;
    t.interval = s.bucket_period * static_cast<duration::rep>(n);
  }
  return t;
}

std::exception_ptr refusal_of(crew::error e, std::string const& name) {
  std::string what = "crew::circuit_breaker";
  if (!name.empty()) what += " '" + name + "'";
  return std::make_exception_ptr(boost::system::system_error(make_error_code(e), what));
}

/// The breaker whose callback runs on this thread, and how deeply: its destructor
/// must not wait for itself.
struct callback_marker {
  void const* state = nullptr;
  std::size_t depth = 0;
};
thread_local callback_marker current_callback;

/// The code a task returned (wrapped by the task layer), or none.
boost::system::error_code returned_code(std::exception_ptr const& e) noexcept {
  if (!e) return {};
  if (auto const* r = exception_cast<returned_system_error>(e)) return r->code();
  if (auto const* r = exception_cast<returned_std_system_error>(e))
    return boost::system::error_code(r->code());
  return {};
}

}  // namespace

/** A breaker's state, shared by the breaker and every call in flight. All member
    functions may be called from any thread. */
class breaker_state : public std::enable_shared_from_this<breaker_state> {
 public:
  explicit breaker_state(circuit_breaker_settings const& s)
      : name_(s.name),
        max_half_open_(s.max_half_open == 0 ? 1 : s.max_half_open),
        timing_(check(s)),
        trip_(s.trip),
        is_successful_(s.is_successful),
        is_excluded_(s.is_excluded),
        on_state_change_(s.on_state_change),
        clock_(s.clock ? *s.clock : clock::steady()),
        open_error_(refusal_of(error::circuit_open, name_)),
        too_many_error_(refusal_of(error::too_many_requests, name_)),
        counts_(timing_.buckets) {
    now_cache now(clock_);
    new_generation(now);
  }

  std::string const& name() const noexcept { return name_; }

  std::exception_ptr refusal(boost::system::error_code const& ec) const noexcept {
    if (ec == error::circuit_open) return open_error_;
    if (ec == error::too_many_requests) return too_many_error_;
    try {
      return std::make_exception_ptr(boost::system::system_error(ec, "crew::circuit_breaker"));
    } catch (...) {
      return std::current_exception();
    }
  }

  /// Lets a call through (`t` says under what), or says why not.
  boost::system::error_code admit(breaker_ticket& t) {
    boost::system::error_code ec;
    bool notify_now = false;
    {
      std::lock_guard lock(mutex_);
      if (detached_) return make_error_code(error::shut_down);
      now_cache now(clock_);
      auto const s = current_state(now);
      if (s == circuit_state::open) {
        ec = make_error_code(error::circuit_open);
      } else if (s == circuit_state::half_open && counts_.valid_requests() >= max_half_open_) {
        ec = make_error_code(error::too_many_requests);
      } else {
        counts_.on_request();
        t = {generation_, counts_.age()};
      }
      notify_now = must_notify();
    }
    if (notify_now) notify();
    return ec;
  }

  /// Counts a call's outcome: `e` is what it threw, or null.
  void settle(breaker_ticket const& t, std::exception_ptr const& e) noexcept {
    record(t, classify(e));
  }

  /// Counts a call as excluded without asking the predicates: it was cancelled, or
  /// its permit dropped.
  void exclude(breaker_ticket const& t) noexcept { record(t, outcome::excluded); }

  circuit_state state() {
    circuit_state s;
    bool notify_now = false;
    {
      std::lock_guard lock(mutex_);
      now_cache now(clock_);
      s = current_state(now);
      notify_now = must_notify();
    }
    if (notify_now) notify();
    return s;
  }

  circuit_counts counts() {
    circuit_counts c;
    bool notify_now = false;
    {
      std::lock_guard lock(mutex_);
      now_cache now(clock_);
      current_state(now);
      c = counts_.total();
      notify_now = must_notify();
    }
    if (notify_now) notify();
    return c;
  }

  /// The breaker is gone: nothing is counted and no callback starts any more. Waits
  /// for callbacks running on other threads.
  void detach() noexcept {
    std::unique_lock lock(mutex_);
    detached_ = true;
    changes_.clear();
    std::size_t const own = current_callback.state == this ? current_callback.depth : 0;
    idle_.wait(lock, [&] { return callbacks_ <= own; });
  }

 private:
  enum class outcome { success, failure, excluded };

  struct change {
    circuit_state from;
    circuit_state to;
  };

  /// Reads the clock at most once per locked step, and only if the step needs it.
  class now_cache {
   public:
    explicit now_cache(crew::clock& c) noexcept : clock_(c) {}
    time_point get() {
      if (!now_) now_ = clock_.now();
      return *now_;
    }

   private:
    crew::clock& clock_;
    std::optional<time_point> now_;
  };

  /// Marks a callback running on this thread, counted in callbacks_ (under the lock).
  class callback_scope {
   public:
    explicit callback_scope(breaker_state* s) noexcept : previous_(current_callback) {
      current_callback.state = s;
      current_callback.depth = previous_.state == s ? previous_.depth + 1 : 1;
    }
    ~callback_scope() { current_callback = previous_; }
    callback_scope(callback_scope const&) = delete;
    callback_scope& operator=(callback_scope const&) = delete;

   private:
    callback_marker previous_;
  };

  bool enter_callback() noexcept {
    std::lock_guard lock(mutex_);
    if (detached_) return false;
    ++callbacks_;
    return true;
  }

  void leave_callback() noexcept {
    std::lock_guard lock(mutex_);
    --callbacks_;
    if (detached_) idle_.notify_all();
  }

  /// gobreaker's currentState: what the time says first (under the lock).
  circuit_state current_state(now_cache& now) {
    switch (state_) {
      case circuit_state::closed:
        if (expiry_ != never) {
          if (now.get() >= expiry_) new_generation(now);
        } else if (counts_.rolling()) {
          counts_.grow(age_at(now.get()));
        }
        break;
      case circuit_state::open:
        if (expiry_ != never && now.get() >= expiry_) set_state(circuit_state::half_open, now);
        break;
      case circuit_state::half_open:
        break;
    }
    return state_;
  }

  std::uint64_t age_at(time_point now) const noexcept {
    if (now <= start_) return 0;
    return static_cast<std::uint64_t>((now - start_) / timing_.bucket_period);
  }

  void set_state(circuit_state s, now_cache& now) {
    if (state_ == s) return;
    auto const from = state_;
    state_ = s;
    new_generation(now);
    if (on_state_change_) changes_.push_back({from, s});
  }

  void new_generation(now_cache& now) {
    ++generation_;
    counts_.clear();
    switch (state_) {
      case circuit_state::closed:
        if (counts_.rolling()) {
          start_ = now.get();
          expiry_ = never;
        } else if (timing_.interval == duration::zero()) {
          expiry_ = never;
        } else {
          expiry_ = saturating_add(now.get(), timing_.interval);
        }
        break;
      case circuit_state::open:
        expiry_ = saturating_add(now.get(), timing_.open_timeout);
        break;
      case circuit_state::half_open:
        expiry_ = never;
        break;
    }
  }

  bool must_notify() const noexcept { return !changes_.empty() && !notifying_ && !detached_; }

  /// Asks the predicates what `e` counts as. What they throw goes to the failure path,
  /// and the outcome counts as a failure.
  outcome classify(std::exception_ptr const& e) noexcept {
    if (!is_excluded_ && !is_successful_) return e ? outcome::failure : outcome::success;
    if (!enter_callback()) return outcome::excluded;  // detached: not counted anyway
    outcome o = outcome::failure;
    {
      callback_scope scope(this);
      char const* which = "is_excluded";
      try {
        if (is_excluded_ && is_excluded_(e)) {
          o = outcome::excluded;
        } else {
          which = "is_successful";
          if (is_successful_)
            o = is_successful_(e) ? outcome::success : outcome::failure;
          else
            o = e ? outcome::failure : outcome::success;
        }
      } catch (...) {
        o = outcome::failure;
        report(which, std::current_exception());
      }
    }
    leave_callback();
    return o;
  }

  /// gobreaker's afterRequest.
  void record(breaker_ticket const& t, outcome o) noexcept {
    std::exception_ptr trip_error;
    bool notify_now = false;
    try {
      std::lock_guard lock(mutex_);
      if (detached_) return;
      now_cache now(clock_);
      auto const s = current_state(now);
      if (t.generation == generation_) {
        switch (o) {
          case outcome::excluded:
            counts_.on_exclusion(t.age);
            break;
          case outcome::success:
            counts_.on_success(t.age);
            if (s == circuit_state::half_open &&
                counts_.total().consecutive_successes >= max_half_open_)
              set_state(circuit_state::closed, now);
            break;
          case outcome::failure:
            if (s == circuit_state::closed) {
              counts_.on_failure(t.age);
              bool trip = false;
              try {
                trip = trip_ ? trip_(counts_.total()) : counts_.total().consecutive_failures > 5;
              } catch (...) {
                trip_error = std::current_exception();
              }
              if (trip) set_state(circuit_state::open, now);
            } else if (s == circuit_state::half_open) {
              set_state(circuit_state::open, now);
            }
            break;
        }
      }
      notify_now = must_notify();
    } catch (...) {
      std::terminate();  // only allocation (a state change queued) can fail
    }
    if (trip_error) report("trip", std::move(trip_error));
    if (notify_now) notify();
  }

  /// Calls on_state_change for each change queued, in order, one at a time, outside
  /// the lock; a call that finds another thread doing it leaves its changes to it.
  void notify() noexcept {
    // A callback may destroy the breaker, and with it the last reference to this.
    auto const keep = shared_from_this();
    std::unique_lock lock(mutex_);
    if (notifying_) return;
    notifying_ = true;
    while (!changes_.empty() && !detached_) {
      auto const c = changes_.front();
      changes_.pop_front();
      ++callbacks_;
      lock.unlock();
      {
        callback_scope scope(this);
        try {
          on_state_change_(name_, c.from, c.to);
        } catch (...) {
          report("on_state_change", std::current_exception());
        }
      }
      lock.lock();
      --callbacks_;
      if (detached_) idle_.notify_all();
    }
    notifying_ = false;
  }

  /// A callback threw: the failure path hears of it.
  void report(char const* which, std::exception_ptr e) noexcept {
    try {
      std::uint64_t id = 0;
      std::string name = which;
      source_location site;
      if (task_node const* t = current_task()) {
        id = t->id_;
        site = t->site_;
      }
      report_failure(breaker_kind, name_, "had a callback that threw",
                     make_failure(id, std::move(name), site, std::move(e)));
    } catch (...) {
      // make_failure allocates; report_failure itself never throws.
    }
  }

  std::string const name_;
  std::uint64_t const max_half_open_;
  timing const timing_;
  std::function<bool(circuit_counts const&)> const trip_;
  std::function<bool(std::exception_ptr const&)> const is_successful_;
  std::function<bool(std::exception_ptr const&)> const is_excluded_;
  std::function<void(std::string const&, circuit_state, circuit_state)> const on_state_change_;
  crew::clock& clock_;
  std::exception_ptr const open_error_;
  std::exception_ptr const too_many_error_;

  std::mutex mutex_;
  std::condition_variable idle_;  // callbacks_ fell after detach
  circuit_state state_ = circuit_state::closed;
  std::uint64_t generation_ = 0;
  rolling_counts counts_;
  time_point start_{};
  time_point expiry_ = never;
  std::deque<change> changes_;  // for on_state_change, in order
  bool notifying_ = false;
  bool detached_ = false;
  std::size_t callbacks_ = 0;  // callbacks running outside the lock
};

namespace {

/** One async_call: the owner of its task. It counts the outcome on its permit, then
    posts the handler. It lives until the task ended. */
class breaker_call final : public task_owner, public std::enable_shared_from_this<breaker_call> {
 public:
  breaker_call(circuit_permit&& permit, std::string const& name, net::any_io_executor const& ex,
               breaker_handler&& handler)
      : task_owner(breaker_kind, name),
        permit_(std::move(permit)),
        ex_(plain_executor(ex)),
        handler_(std::move(handler), ex_) {}

  void start(task_body&& body, source_location site) {
    task_spec spec;
    spec.site = site;
    task_node* const n = make_task(*this, ex_, std::move(body), std::move(spec));
    n->add_ref();
    task_ = node_ref(n);
    auto slot = net::get_associated_cancellation_slot(handler_.handler());
    if (slot.is_connected()) {
      try {
        slot.template emplace<keyed_cancellation<breaker_call>>(
            keyed_cancellation<breaker_call>{weak_from_this(), 0});
      } catch (...) {
        task_ = node_ref();
        n->discard();
        throw;
      }
    }
    self_ = shared_from_this();  // until the task ended: the task's owner
    n->start();
  }

  /// For keyed_cancellation: the handler's slot was emitted.
  void cancel_key(std::uint64_t, net::cancellation_type) noexcept {
    task_->request_cancel(net::cancellation_type::terminal);
  }

  void task_done(task_node* n, std::exception_ptr e) noexcept override {
    boost::system::error_code ec;
    if (e && n->cancel_requested() && is_operation_aborted(e)) {
      breaker_access::release(permit_);  // neither success nor failure
      ec = net::error::operation_aborted;
    } else {
      permit_.done(e);
      ec = returned_code(e);
    }
    auto const self = std::move(self_);
    handler_.post(std::move(e), ec);
  }

  void task_abandoned(task_node*) noexcept override {
    // The execution context is being destroyed.
    breaker_access::release(permit_);
    auto const self = std::move(self_);
    handler_.post(std::make_exception_ptr(boost::system::system_error(
                      net::error::operation_aborted, "the call's execution context was destroyed")),
                  boost::system::error_code(net::error::operation_aborted));
  }

 private:
  circuit_permit permit_;
  net::any_io_executor const ex_;
  stored_handler<void(std::exception_ptr, boost::system::error_code)> handler_;
  node_ref task_;                       // set before start, never changed
  std::shared_ptr<breaker_call> self_;  // from start until the task ended
};

/** The owner of one go_with_circuit_breaker task: counts its outcome, reports its
    failure as a `go` task's is reported, and deletes itself. */
class breaker_go final : public task_owner {
 public:
  breaker_go(circuit_permit&& permit, std::string const& name)
      : task_owner(breaker_kind, name), permit_(std::move(permit)) {}

  void task_done(task_node* n, std::exception_ptr e) noexcept override {
    std::unique_ptr<breaker_go> const self(this);
    bool const cancelled = e && n->cancel_requested() && is_operation_aborted(e);
    if (cancelled)
      breaker_access::release(permit_);
    else
      permit_.done(e);
    if (!e || cancelled) return;
    try {
      report_failure(breaker_kind, owner_name(), "had a failure nobody handled",
                     make_failure(*n, std::move(e)));
    } catch (...) {
      // make_failure allocates; report_failure itself never throws.
    }
  }

  void task_abandoned(task_node*) noexcept override { delete this; }

 private:
  circuit_permit permit_;
};

/// The body of a refused go_with_circuit_breaker task: returns why.
net::awaitable<boost::system::error_code> refused(boost::system::error_code ec) {
  co_return ec;
}

}  // namespace

circuit_permit breaker_admit(std::shared_ptr<breaker_state> const& s,
                             boost::system::error_code& ec) {
  breaker_ticket t;
  ec = s->admit(t);
  if (ec) return circuit_permit();
  return breaker_access::make_permit(s, t);
}

std::exception_ptr breaker_refusal(breaker_state const& s,
                                   boost::system::error_code const& ec) noexcept {
  return s.refusal(ec);
}

void start_breaker_call(circuit_permit&& permit, net::any_io_executor const& ex, task_body&& body,
                        source_location site, breaker_handler&& handler) {
  auto const& name = breaker_access::state(permit)->name();
  auto op = std::allocate_shared<breaker_call>(net::recycling_allocator<breaker_call>(),
                                               std::move(permit), name, ex, std::move(handler));
  op->start(std::move(body), site);
}

void start_breaker_go(std::shared_ptr<breaker_state> const& s, net::any_io_executor const& ex,
                      task_body&& body, source_location site) {
  boost::system::error_code ec;
  circuit_permit permit = breaker_admit(s, ec);
  auto owner = std::make_unique<breaker_go>(std::move(permit), s->name());
  task_spec spec;
  spec.site = site;
  task_node* const n =
      make_task(*owner, ex, ec ? task_body(refused(ec)) : std::move(body), std::move(spec));
  owner.release();  // the task's end deletes it
  n->start();
}

void throw_bad_factory(char const* who, char const* what) {
  throw std::invalid_argument(std::string(who) + ": factory " + what);
}

}  // namespace detail

// ---------------------------------------------------------------- circuit_permit

circuit_permit& circuit_permit::operator=(circuit_permit&& o) noexcept {
  if (this != &o) {
    release();
    state_ = std::move(o.state_);
    ticket_ = o.ticket_;
  }
  return *this;
}

circuit_permit::~circuit_permit() {
  release();
}

void circuit_permit::release() noexcept {
  if (auto s = std::move(state_)) s->exclude(ticket_);
}

void circuit_permit::done() {
  done(std::exception_ptr());
}

void circuit_permit::done(std::exception_ptr const& e) {
  if (auto s = std::move(state_)) s->settle(ticket_, e);
}

void circuit_permit::done(boost::system::error_code const& ec) {
  if (!state_) return;
  done(detail::failure_of(ec));
}

// ---------------------------------------------------------------- circuit_breaker

circuit_breaker::circuit_breaker() : circuit_breaker(circuit_breaker_settings{}) {}

circuit_breaker::circuit_breaker(circuit_breaker_settings const& settings)
    : state_(std::make_shared<detail::breaker_state>(settings)) {}

circuit_breaker::~circuit_breaker() {
  state_->detach();
}

std::string const& circuit_breaker::name() const noexcept {
  return state_->name();
}

circuit_state circuit_breaker::state() const {
  return state_->state();
}

circuit_counts circuit_breaker::counts() const {
  return state_->counts();
}

circuit_permit circuit_breaker::allow(boost::system::error_code& ec) {
  return detail::breaker_admit(state_, ec);
}

circuit_permit circuit_breaker::allow() {
  boost::system::error_code ec;
  auto p = detail::breaker_admit(state_, ec);
  if (ec) std::rethrow_exception(state_->refusal(ec));
  return p;
}

}  // namespace crew
