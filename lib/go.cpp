//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The runtime's tasks: `go` tasks owned by one process-wide owner that reports their
// failures, `go_with_cleanup` tasks whose owner runs the cleanup and then goes, a
// `go_with_retry` that is a retry reporting its last failure, and `async_with_timeout`,
// an owner racing its one task against a wait on the steady clock.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/task.hpp>
#include <crew/retry.hpp>
#include <crew/runtime.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace crew::detail {

namespace {

char const* const go_kind = "go";

/// Reports `e`, how `n` ended, unless it is success or the abort its cancellation caused.
void report_end(task_node const& n, std::exception_ptr const& e) noexcept {
  if (!e || (n.cancel_requested() && is_operation_aborted(e))) return;
  try {
    report_failure(go_kind, std::string(), "had a failure nobody handled", make_failure(n, e));
  } catch (...) {
    // make_failure allocates; report_failure itself never throws.
  }
}

/// The owner of every `go` task: it outlives them all, and keeps no state.
class go_owner final : public task_owner {
 public:
  go_owner() : task_owner(go_kind, std::string()) {}

  void task_done(task_node* n, std::exception_ptr e) noexcept override { report_end(*n, e); }
  void task_abandoned(task_node*) noexcept override {}
};

go_owner& the_go_owner() {
  // Never destroyed: go tasks may end during static destruction.
  static go_owner* const owner = new go_owner;
  return *owner;
}

/// The owner of one `go_with_cleanup` task: told once how it ended, it reports a
/// failure, runs the cleanup and deletes itself.
class cleanup_owner final : public task_owner {
 public:
  explicit cleanup_owner(unique_function<void()>&& cleanup)
      : task_owner(go_kind, std::string()), cleanup_(std::move(cleanup)) {}

  void task_done(task_node* n, std::exception_ptr e) noexcept override {
    report_end(*n, e);
    finish(*n);
  }

  void task_abandoned(task_node* n) noexcept override { finish(*n); }

 private:
  void finish(task_node const& n) noexcept {
    std::unique_ptr<cleanup_owner> const self(this);
    try {
      cleanup_();
    } catch (...) {
      try {
        report_failure(go_kind, std::string(), "had a cleanup that threw",
                       make_failure(n, std::current_exception(), task_stage::cleanup));
      } catch (...) {
        // make_failure allocates; report_failure itself never throws.
      }
    }
  }

  unique_function<void()> cleanup_;
};

/// Who the last attempt of a `go_with_retry` was, for the report of its failure.
struct attempt_identity {
  std::uint64_t id = 0;
  std::string name;
  source_location site;
};

/// The body of one attempt: notes which task runs it, then calls the factory.
task_body noting_attempt(task_body&& call, std::shared_ptr<attempt_identity> const& last) {
  return std::visit(
      [&](auto&& f) -> task_body {
        using fn_type = std::decay_t<decltype(f)>;
        if constexpr (awaitable_traits<fn_type>::value) {
          return std::move(f);  // factory.bind() makes calls, never awaitables
        } else {
          return fn_type([f = std::move(f), last]() mutable {
            if (task_node const* t = current_task()) {
              last->id = t->id_;
              last->name = t->name_;
              last->site = t->site_;
            }
            return f();
          });
        }
      },
      std::move(call));
}

// ---------------------------------------------------------------- async_with_timeout

char const* const timeout_kind = "async_with_timeout";

std::exception_ptr error_of(boost::system::error_code ec, char const* what) {
  return std::make_exception_ptr(boost::system::system_error(ec, what));
}

/** One async_with_timeout: the owner of its task, racing it against a wait. It lives
    until the task ended and the wait ended; its handler completes once, when the task
    ended. Every member function may be called from any thread.
*/
class timeout_op final : public task_owner, public std::enable_shared_from_this<timeout_op> {
 public:
  timeout_op(net::any_io_executor const& ex, runtime_handler&& handler)
      : task_owner(timeout_kind, std::string()),
        ex_(plain_executor(ex)),
        handler_(std::move(handler), ex_) {}

  void start(task_body&& body, clock::duration timeout, source_location site) {
    auto slot = net::get_associated_cancellation_slot(handler_.handler());
    if (slot.is_connected())
      slot.template emplace<keyed_cancellation<timeout_op>>(
          keyed_cancellation<timeout_op>{weak_from_this(), 0});
    task_spec spec;
    spec.site = site;
    task_node* const n = make_task(*this, ex_, std::move(body), std::move(spec));
    bool const wait = timeout != clock::duration::max();  // max() is never
    bool cancelled = false;
    {
      std::lock_guard lock(mutex_);
      n->add_ref();
      task_ = node_ref(n);
      self_ = shared_from_this();
      waiting_ = wait;
      cancelled = cancelled_;
    }
    if (wait) {
      try {
        clock::steady().async_wait_for(
            ex_, timeout,
            net::bind_cancellation_slot(wait_signal_.slot(), wait_handler(shared_from_this())));
      } catch (...) {
        // Without memory for the wait (whose handler, if made, has told wait_ended),
        // nothing starts.
        std::shared_ptr<timeout_op> self;
        {
          std::lock_guard lock(mutex_);
          waiting_ = false;
          wait_signal_.slot().clear();
          task_ = node_ref();
          self = std::move(self_);
        }
        n->discard();
        throw;
      }
    }
    if (cancelled) n->request_cancel(net::cancellation_type::terminal);
    n->start();
  }

  /// For keyed_cancellation: the handler's slot was emitted.
  void cancel_key(std::uint64_t, net::cancellation_type) noexcept {
    node_ref task;
    {
      std::lock_guard lock(mutex_);
      if (ended_) return;
      cancelled_ = true;
      task = task_;
    }
    if (task) task->request_cancel(net::cancellation_type::terminal);
  }

  void task_done(task_node* n, std::exception_ptr e) noexcept override {
    bool report = false;
    std::exception_ptr result;
    std::shared_ptr<timeout_op> self;
    node_ref task;
    {
      std::lock_guard lock(mutex_);
      ended_ = true;
      if (waiting_) wait_signal_.emit(net::cancellation_type::terminal);
      if (timed_out_) {
        report = e && !is_operation_aborted(e);
        result = error_of(crew::error::timed_out, "crew::async_with_timeout");
      } else {
        result = e;
      }
      self = std::move(self_);
      task = std::move(task_);
    }
    if (report) {
      try {
        report_failure(timeout_kind, std::string(), "had a failure after it timed out",
                       make_failure(*n, std::move(e)));
      } catch (...) {
        // make_failure allocates; report_failure itself never throws.
      }
    }
    handler_.post(std::move(result));
  }

  void task_abandoned(task_node*) noexcept override {
    // The execution context is being destroyed: its wait, if pending, goes with it.
    std::shared_ptr<timeout_op> self;
    node_ref task;
    {
      std::lock_guard lock(mutex_);
      ended_ = true;
      self = std::move(self_);
      task = std::move(task_);
    }
    handler_.post(
        error_of(net::error::operation_aborted, "the task's execution context was destroyed"));
  }

 private:
  /// The handler of the wait. If it is destroyed without being called (its execution
  /// context was destroyed), the operation hears of it all the same.
  struct wait_handler {
    std::shared_ptr<timeout_op> op;

    explicit wait_handler(std::shared_ptr<timeout_op> o) noexcept : op(std::move(o)) {}
    wait_handler(wait_handler&&) noexcept = default;
    wait_handler& operator=(wait_handler&&) = delete;
    ~wait_handler() {
      if (op) std::exchange(op, nullptr)->wait_ended(net::error::operation_aborted, true);
    }

    void operator()(boost::system::error_code ec) {
      std::exchange(op, nullptr)->wait_ended(ec, false);
    }
  };

  void wait_ended(boost::system::error_code ec, bool lost) noexcept {
    node_ref task;
    {
      std::lock_guard lock(mutex_);
      waiting_ = false;
      wait_signal_.slot().clear();
      // Only this operation aborts its wait, once the timeout no longer matters.
      if (ended_ || cancelled_ || lost || ec) return;
      timed_out_ = true;
      task = task_;
    }
    task->request_cancel(net::cancellation_type::terminal);
  }

  net::any_io_executor const ex_;
  stored_handler<void(std::exception_ptr)> handler_;  // posted once, when the task ended

  std::mutex mutex_;
  node_ref task_;                         // until it ended
  std::shared_ptr<timeout_op> self_;      // until the task ended: the task's owner
  net::cancellation_signal wait_signal_;  // emitted only under mutex_, while waiting_
  bool waiting_ = false;
  bool ended_ = false;
  bool timed_out_ = false;
  bool cancelled_ = false;
};

}  // namespace

void go(net::any_io_executor const& ex, task_body body, source_location site) {
  task_spec spec;
  spec.site = site;
  make_task(the_go_owner(), ex, std::move(body), std::move(spec))->start();
}

void go_with_cleanup(net::any_io_executor const& ex, task_body body,
                     unique_function<void()> cleanup, source_location site) {
  auto owner = std::make_unique<cleanup_owner>(std::move(cleanup));
  task_spec spec;
  spec.site = site;
  task_node* const n = make_task(*owner, ex, std::move(body), std::move(spec));
  owner.release();  // the task's end deletes it
  n->start();
}

void go_with_retry(net::any_io_executor const& ex, task_factory factory, std::size_t attempts,
                   clock::duration delay, source_location site) {
  if (attempts == 0)
    throw std::invalid_argument(
        "crew::go_with_retry: attempts must be at least 1 or crew::unlimited (got 0)");
  if (delay < clock::duration::zero())
    throw std::invalid_argument("crew::go_with_retry: delay is negative (" +
                                format_duration(delay) + ")");
  retry_options o;
  o.max_attempts = attempts;
  o.backoff = backoff::constant(delay);
  auto last = std::make_shared<attempt_identity>();
  attempt_function fn = [f = std::move(factory), last](retrier&) mutable -> task_body {
    *last = attempt_identity();  // the previous attempt ended
    return noting_attempt(f.bind(), last);
  };
  start_retry(ex, std::move(fn), o, site, [last](std::exception_ptr e) {
    if (!e) return;
    try {
      report_failure(go_kind, std::string(), "failed its last attempt",
                     make_failure(last->id, last->name, last->site, std::move(e)));
    } catch (...) {
      // make_failure allocates; report_failure itself never throws.
    }
  });
}

void validate_timeout(clock::duration timeout) {
  if (timeout < clock::duration::zero())
    throw std::invalid_argument("crew::async_with_timeout: timeout is negative (" +
                                format_duration(timeout) + ")");
}

void start_with_timeout(net::any_io_executor const& ex, task_body body, clock::duration timeout,
                        source_location site, runtime_handler handler) {
  validate_timeout(timeout);
  auto op = std::make_shared<timeout_op>(ex, std::move(handler));
  op->start(std::move(body), timeout, site);
}

}  // namespace crew::detail
