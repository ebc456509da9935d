//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/restart.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <limits>

namespace crew::detail {

/// The handler of the wait between two runs. If it is destroyed without being called
/// (its execution context was destroyed), the driver hears of it all the same.
struct restart_driver::wait_handler {
  std::shared_ptr<restart_driver> driver;

  wait_handler(std::shared_ptr<restart_driver> d) noexcept : driver(std::move(d)) {}
  wait_handler(wait_handler&&) noexcept = default;
  wait_handler& operator=(wait_handler&&) = delete;
  ~wait_handler() {
    if (driver) std::exchange(driver, nullptr)->wait_ended(net::error::operation_aborted, true);
  }

  void operator()(boost::system::error_code ec) {
    std::exchange(driver, nullptr)->wait_ended(ec, false);
  }
};

restart_driver::restart_driver(net::any_io_executor ex, crew::clock& clk,
                               std::unique_ptr<restart_policy> policy, char const* owner_kind,
                               std::string owner_name, handler_type handler)
    : task_owner(owner_kind, std::move(owner_name)),
      ex_(plain_executor(ex)),
      clock_(clk),
      policy_(std::move(policy)) {
  handler_.emplace(std::move(handler), ex_);
}

restart_driver::~restart_driver() = default;

void restart_driver::start(clock::duration delay) {
  auto slot = net::get_associated_cancellation_slot(handler_->handler());
  if (slot.is_connected())
    slot.template emplace<keyed_cancellation<restart_driver>>(
        keyed_cancellation<restart_driver>{weak_from_this(), 0});
  if (auto* t = current_task()) {
    parent_id_ = t->id_;
    context_ = t->context();
  }
  {
    std::lock_guard lock(mutex_);
    self_ = shared_from_this();
  }
  act(restart_decision::restart(delay), false);
}

void restart_driver::spawn_run() noexcept {
  task_node* n = nullptr;
  try {
    task_spec spec;
    auto body = policy_->make_run(runs_ + 1, spec);
    spec.parent_id = parent_id_;
    spec.context = &context_;
    n = make_task(*this, ex_, std::move(body), std::move(spec));
    policy_->run_started(*n);
  } catch (...) {
    // The run could not even be made: a failure of the run.
    run_outcome o;
    o.what = run_outcome::kind::failure;
    o.error = std::current_exception();
    o.failure = make_failure(0, std::string(), {}, o.error);
    o.run = runs_ + 1;
    decide(std::move(o));
    return;
  }
  bool cancel = false;
  {
    std::lock_guard lock(mutex_);
    ++runs_;
    n->add_ref();
    current_ = node_ref(n);
    state_ = state::running;
    cancel = stop_requested_;
  }
  // A task cancelled before it starts ends without running its body.
  if (cancel) n->request_cancel(stop_type_);
  n->start(/*continuation=*/true);
}

void restart_driver::task_done(task_node* n, std::exception_ptr e) noexcept {
  run_outcome o;
  o.run = runs_;
  if (e) {
    o.what = n->cancel_requested() && is_operation_aborted(e) ? run_outcome::kind::cancelled
                                                              : run_outcome::kind::failure;
    try {
      if (o.what == run_outcome::kind::failure) o.failure = make_failure(*n, e);
    } catch (...) {
      std::terminate();  // only allocation can fail; a lost failure breaks the contract
    }
    o.error = std::move(e);
  }
  run_ended(std::move(o));
}

void restart_driver::task_abandoned(task_node*) noexcept {
  run_outcome o;
  o.what = run_outcome::kind::cancelled;
  o.run = runs_;
  o.abandoned = true;
  o.stopping = true;
  run_ended(std::move(o));
}

void restart_driver::run_ended(run_outcome&& o) noexcept {
  node_ref finished;
  {
    std::lock_guard lock(mutex_);
    finished = std::move(current_);
    state_ = state::deciding;
    o.stopping = o.stopping || stop_requested_;
  }
  decide(std::move(o));
}

void restart_driver::decide(run_outcome&& o) noexcept {
  bool const abandoned = o.abandoned;
  restart_decision d;
  try {
    d = policy_->next(std::move(o));
  } catch (...) {
    d = restart_decision::stop(std::current_exception());
  }
  act(std::move(d), abandoned);
}

void restart_driver::act(restart_decision d, bool abandoned) noexcept {
  bool stopped_between_runs = false;
  {
    std::lock_guard lock(mutex_);
    if (state_ == state::done) return;
    if (d.what != restart_decision::kind::stop && (stop_requested_ || abandoned)) {
      // Asked to stop while the policy decided: nothing runs again.
      if (abandoned)
        d = restart_decision::stop();
      else
        stopped_between_runs = true;
    }
    if (!stopped_between_runs) {
      switch (d.what) {
        case restart_decision::kind::stop:
          state_ = state::done;
          break;
        case restart_decision::kind::hold:
          state_ = state::held;
          // Under the lock: whoever hears of the hold and resumes or stops the driver
          // finds it held, and the policy is never called twice at once.
          policy_->held();
          return;
        case restart_decision::kind::restart:
          if (d.delay > clock::duration::zero()) {
            state_ = state::waiting;
            try {
              clock_.async_wait_for(ex_, d.delay,
                                    net::bind_cancellation_slot(wait_signal_.slot(),
                                                                wait_handler(shared_from_this())));
            } catch (...) {
              std::terminate();  // waiting allocates
            }
            return;
          }
          state_ = state::idle;
          break;
      }
    } else {
      state_ = state::done;
    }
  }
  if (stopped_between_runs) {
    complete(policy_->stopped());
  } else if (d.what == restart_decision::kind::stop) {
    complete(std::move(d.result));
  } else {
    spawn_run();
  }
}

void restart_driver::wait_ended(boost::system::error_code ec, bool lost) noexcept {
  bool stopping = false;
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::waiting) return;
    wait_signal_.slot().clear();
    // An abort nobody here asked for (the clock was destroyed) ends the driver too.
    stopping = stop_requested_ || lost || (ec && !std::exchange(wait_interrupted_, false));
    state_ = stopping ? state::done : state::deciding;
  }
  if (stopping) {
    complete(policy_->stopped());
  } else if (ec) {
    // interrupt_run() aborted the wait: no run happened; the policy decides again.
    run_outcome o;
    o.what = run_outcome::kind::cancelled;
    decide(std::move(o));
  } else {
    spawn_run();
  }
}

void restart_driver::stop(net::cancellation_type type) noexcept {
  node_ref run;
  bool end_hold = false;
  {
    std::lock_guard lock(mutex_);
    if (state_ == state::done) return;
    bool const again = std::exchange(stop_requested_, true);
    stop_type_ = type;
    switch (state_) {
      case state::running:
        run = current_;  // cancelled, or cancelled again
        break;
      case state::waiting:
        if (!again) wait_signal_.emit(net::cancellation_type::terminal);
        break;
      case state::held:
        state_ = state::done;
        end_hold = true;
        break;
      case state::idle:
      case state::deciding:
      case state::done:
        break;  // spawn_run and act look at stop_requested_
    }
  }
  if (run) run->request_cancel(type);
  if (end_hold) complete(policy_->stopped());
}

void restart_driver::interrupt_run() noexcept {
  node_ref run;
  {
    std::lock_guard lock(mutex_);
    if (state_ == state::running) {
      run = current_;
    } else if (state_ == state::waiting) {
      wait_interrupted_ = true;
      wait_signal_.emit(net::cancellation_type::terminal);
    }
  }
  if (run) run->request_cancel(net::cancellation_type::terminal);
}

void restart_driver::resume(restart_decision d) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::held) return;
    state_ = state::deciding;
  }
  act(std::move(d), false);
}

void restart_driver::complete(std::exception_ptr result) noexcept {
  std::optional<stored_handler<void(std::exception_ptr)>> h;
  std::shared_ptr<restart_driver> self;
  {
    std::lock_guard lock(mutex_);
    if (handler_) {
      h.emplace(std::move(*handler_));
      handler_.reset();
    }
    self = std::move(self_);
  }
  if (h) h->post(std::move(result));
}

std::shared_ptr<restart_driver> start_driver(net::any_io_executor const& ex, crew::clock& clk,
                                             std::unique_ptr<restart_policy> policy,
                                             char const* owner_kind, std::string owner_name,
                                             restart_driver::handler_type handler,
                                             clock::duration delay) {
  auto d = std::make_shared<restart_driver>(ex, clk, std::move(policy), owner_kind,
                                            std::move(owner_name), std::move(handler));
  d->start(delay);
  return d;
}

// ---------------------------------------------------------------- run_once

namespace {

class once_policy final : public restart_policy {
 public:
  once_policy(task_factory f, std::string name, source_location site,
              std::function<void(std::uint64_t)> on_start)
      : factory_(std::move(f)),
        name_(std::move(name)),
        site_(site),
        on_start_(std::move(on_start)) {}

  task_body make_run(std::size_t, task_spec& spec) override {
    spec.name = name_;
    spec.site = site_;
    return factory_.bind();
  }

  void run_started(task_node const& t) override {
    if (on_start_) on_start_(t.id_);
  }

  restart_decision next(run_outcome&& o) override { return restart_decision::stop(o.error); }

  std::exception_ptr stopped() override {
    return std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted));
  }

 private:
  task_factory factory_;
  std::string name_;
  source_location site_;
  std::function<void(std::uint64_t)> on_start_;
};

}  // namespace

std::unique_ptr<restart_policy> make_once_policy(task_factory factory, std::string name,
                                                 source_location site,
                                                 std::function<void(std::uint64_t)> on_start) {
  return std::make_unique<once_policy>(std::move(factory), std::move(name), site,
                                       std::move(on_start));
}

void run_once(net::any_io_executor const& ex, task_factory factory, char const* owner_kind,
              std::string name, source_location site, restart_driver::handler_type handler) {
  auto policy = make_once_policy(std::move(factory), name, site);
  start_driver(ex, clock::steady(), std::move(policy), owner_kind, std::move(name),
               std::move(handler));
}

// ---------------------------------------------------------------- drive

net::awaitable<std::exception_ptr> drive(crew::clock& clk, std::unique_ptr<restart_policy> policy,
                                         char const* owner_kind, std::string owner_name) {
  return drive(clk, std::move(policy), owner_kind, std::move(owner_name), nullptr);
}

net::awaitable<std::exception_ptr> drive(
    crew::clock& clk, std::unique_ptr<restart_policy> policy, char const* owner_kind,
    std::string owner_name,
    std::function<void(std::shared_ptr<restart_driver> const&)> before_start) {
  auto const ex = co_await net::this_coro::executor;
  auto token = net::as_tuple(net::use_awaitable);
  auto op = net::async_initiate<decltype(token), void(std::exception_ptr)>(
      [&](auto handler) {
        auto d = std::make_shared<restart_driver>(ex, clk, std::move(policy), owner_kind,
                                                  std::move(owner_name),
                                                  restart_driver::handler_type(std::move(handler)));
        if (before_start) before_start(d);
        d->start();
      },
      token);
  auto [e] = co_await std::move(op);
  co_return e;
}

}  // namespace crew::detail
