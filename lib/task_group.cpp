//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/group_core.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/small_vector.hpp>

#include <stdexcept>
#include <string>

namespace crew::detail {

bool is_operation_aborted(std::exception_ptr const& e) noexcept {
  auto const* se = exception_cast<boost::system::system_error>(e);
  return se && se->code() == boost::asio::error::operation_aborted;
}

namespace {

std::exception_ptr aborted_exception() {
  return std::make_exception_ptr(
      boost::system::system_error(boost::asio::error::operation_aborted));
}

/// A wait's result, shared by the waiters completed together. The failures in it stay
/// accounted for until a waiter's handler has run: if none ever does (their context was
/// destroyed first), they go to the failure path.
struct delivery {
  std::exception_ptr result;
  char const* owner_kind = "";
  std::string owner_name;
  std::atomic<bool> delivered{false};

  ~delivery() {
    if (delivered.load(std::memory_order_acquire)) return;
    if (auto const* errors = exception_cast<task_errors>(result)) {
      failure_report r;
      r.owner_kind = owner_kind;
      r.owner_name = std::move(owner_name);
      r.event = "ended with failures its wait never delivered";
      r.failures = errors->failures();
      r.dropped = errors->dropped();
      report_failures(std::move(r));
    }
  }
};

}  // namespace

// ---------------------------------------------------------------- wait_op

/// A pending async_wait or async_wait_for, linked into its group while it waits.
class wait_op {
 public:
  wait_op(wait_handler&& h, net::any_io_executor const& ex) : handler_(std::move(h), ex) {}

  /// Hands the result to the waiter's handler, through its executor. Called once.
  void complete(std::shared_ptr<delivery> d, bool aborted_result) noexcept {
    if (timer_) timer_->cancel();
    std::exception_ptr result = aborted_result ? aborted_exception() : nullptr;
    handler_.post_call([d = std::move(d), result = std::move(result)](wait_handler h) mutable {
      if (!result) {
        d->delivered.store(true, std::memory_order_release);
        result = d->result;
      }
      d.reset();
      std::move(h)(std::move(result));
    });
    drop();
  }

  void finish_timed_out() noexcept {
    handler_.post(
        std::make_exception_ptr(boost::system::system_error(make_error_code(error::timed_out))));
    drop();
  }

  void start_timer(std::shared_ptr<group_core> const& core, std::chrono::steady_clock::duration d) {
    timer_.emplace(handler_.io_executor(), d);
    // One reference for the group's link, one for the timer's handler; the handler
    // drops its reference even if it is destroyed without being called.
    refs_ = 2;
    struct timer_ref {
      wait_op* op;
      timer_ref(wait_op* o) noexcept : op(o) {}
      timer_ref(timer_ref&& o) noexcept : op(std::exchange(o.op, nullptr)) {}
      ~timer_ref() {
        if (op) op->drop();
      }
    };
    timer_->async_wait(
        [ref = timer_ref(this), weak = std::weak_ptr<group_core>(core)](boost::system::error_code) {
          if (auto c = weak.lock()) c->wait_timed_out(ref.op);
        });
  }

  void drop() noexcept {
    if (--refs_ == 0) delete this;
  }

  wait_op* prev_ = nullptr;
  wait_op* next_ = nullptr;
  std::uint64_t key_ = 0;
  std::uint64_t target_ = 0;  // a barrier's: the index of the first task it does not wait for
  bool linked_ = false;
  bool aborted_ = false;
  bool barrier_ = false;

 private:
  stored_handler<void(std::exception_ptr)> handler_;
  std::optional<net::steady_timer> timer_;
  std::atomic<int> refs_{1};
};

// ---------------------------------------------------------------- the locked sections' work

/// Runs the group's queued handler calls, one at a time, on the group's executor. If
/// its context is destroyed before it runs, the calls still end, and a failure the
/// group did not keep goes to the failure path.
struct group_core::drain_op {
  std::shared_ptr<group_core> core;

  explicit drain_op(std::shared_ptr<group_core> c) noexcept : core(std::move(c)) {}
  drain_op(drain_op&&) noexcept = default;
  drain_op& operator=(drain_op&&) = delete;
  ~drain_op() {
    if (core) std::exchange(core, nullptr)->drain(/*lost=*/true);
  }
  void operator()() { std::exchange(core, nullptr)->drain(/*lost=*/false); }
};

struct group_core::after_unlock {
  std::vector<node_ref> to_cancel;
  boost::asio::cancellation_type cancel_type = boost::asio::cancellation_type::terminal;
  boost::container::small_vector<task_node*, 2> to_start;
  boost::container::small_vector<std::pair<wait_op*, bool>, 2> to_complete;
  std::shared_ptr<delivery> result;
  boost::container::small_vector<std::pair<spawn_waiter*, boost::system::error_code>, 1> spawns;
  std::vector<task_node*> to_discard;
  bool drain = false;                 // post a drain_op
  std::vector<task_failure> dropped;  // past the retention bound, with no handler
  // Once the lock is released another thread may end the group's last task and drop
  // the group: whatever runs after the unlock and needs the group holds this.
  std::shared_ptr<group_core> self;
};

// ---------------------------------------------------------------- group_core

group_core::group_core(net::any_io_executor ex, task_group_options const& o, char const* kind,
                       std::optional<std::size_t> queue_capacity)
    : task_owner(kind, o.name),
      ex_(plain_executor(ex)),
      limit_(o.limit),
      failures_(o.keep_failures),
      on_failure_(o.on_failure),
      policy_(o.policy),
      pool_(queue_capacity.has_value()),
      queue_capacity_(queue_capacity.value_or(0)) {
  if (pool_) {
    if (o.limit == 0)
      throw std::invalid_argument(
          "crew::worker_pool: workers must be at least 1 or crew::unlimited, got 0");
    if (queue_capacity_ == 0)
      throw std::invalid_argument(
          "crew::worker_pool: queue_capacity must be at least 1 or crew::unlimited, got 0");
    if (o.keep_failures == 0)
      throw std::invalid_argument(
          "crew::worker_pool: options.keep_failures must be at least 1 or crew::unlimited, got 0");
    return;
  }
  if (o.limit == 0)
    throw std::invalid_argument(
        "crew::task_group: options.limit must be at least 1 or crew::unlimited, got 0");
  if (o.keep_failures == 0)
    throw std::invalid_argument(
        "crew::task_group: options.keep_failures must be at least 1 or crew::unlimited, got 0");
}

group_core::~group_core() {
  report_failures(
      failures_.take_report(owner_kind(), owner_name(), "ended with failures nobody waited for"));
}

std::uint64_t group_core::next_key() noexcept {
  return keys_.fetch_add(1, std::memory_order_relaxed) + 1;
}

bool group_core::idle_locked() const noexcept {
  return running_ == 0 && queued_ == 0 && pending_handlers_ == 0;
}

group_core::admitted group_core::spawn(task_body&& body, spawn_options&& options,
                                       source_location site, admit_mode mode,
                                       spawn_waiter* waiter) {
  task_spec spec;
  spec.name = std::move(options.name);
  spec.site = site;
  spec.on_failure = std::move(options.on_failure);
  return spawn(std::move(body), std::move(spec), mode, waiter);
}

group_core::admitted group_core::spawn(task_body&& body, task_spec&& spec, admit_mode mode,
                                       spawn_waiter* waiter) {
  task_node* n = make_task(*this, ex_, std::move(body), std::move(spec));
  n->waiter_ = waiter;
  if (waiter) waiter->key_ = next_key();
  return admit(n, mode);
}

group_core::admitted group_core::admit(task_node* n, admit_mode mode) {
  after_unlock todo;
  admitted result;
  {
    std::lock_guard lock(mutex_);
    bool const was_idle = !keep_alive_;
    if (closed_ && pool_) {
      // Closed since the task was made (try_reserve_submit checked before).
      if (n->waiter_) {
        todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr),
                                 make_error_code(error::shut_down));
      }
      if (mode == admit_mode::reserved) --running_;
      if (mode == admit_mode::reserved_queue) --queued_;
      todo.to_discard.push_back(n);
      fill_slots_locked(todo);
      finish_waits_locked(todo);
      if (!todo.self) todo.self = keep_alive_;
      result = admitted::refused;
    } else if (mode == admit_mode::reserved ||
               (mode != admit_mode::reserved_queue && running_ < limit_ && queue_.empty())) {
      if (pool_) {
        n->index_ = next_index_++;
        ++counts_.submitted;
        running_list_.push_back(n);  // in index order: a barrier reads the oldest
      } else {
        running_list_.push_front(n);
      }
      n->in_running_list_ = true;
      if (mode != admit_mode::reserved) ++running_;
      if (n->waiter_)
        todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), boost::system::error_code{});
      if (cancelled_) {
        n->add_ref();
        todo.to_cancel.emplace_back(n);
      }
      result = admitted::started;
    } else if (mode == admit_mode::reserved_queue ||
               (mode == admit_mode::submit && queued_ < queue_capacity_ && pending_.empty())) {
      n->index_ = next_index_++;
      ++counts_.submitted;
      queue_.push_back(n);
      if (mode == admit_mode::submit) ++queued_;  // a reserved place was counted already
      if (n->waiter_)
        todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), boost::system::error_code{});
      result = admitted::queued;
      // A slot may have freed since the place was reserved, with nothing queued to take
      // it: the task would wait for a retirement that never comes.
      fill_slots_locked(todo);
    } else if (mode == admit_mode::submit) {
      pending_.push_back(n);
      ++pending_count_;
      if (n->waiter_) n->waiter_->queued(weak_from_this());
      result = admitted::waiting;
    } else {
      queue_.push_back(n);
      if (mode == admit_mode::spawn) ++queued_;
      if (n->waiter_) n->waiter_->queued(weak_from_this());
      result = admitted::queued;
    }
    if (was_idle && result != admitted::refused) keep_alive_ = shared_from_this();
  }
  run(todo);
  if (result == admitted::started) n->start();
  return result;
}

bool group_core::try_reserve() {
  std::lock_guard lock(mutex_);
  if (running_ >= limit_ || !queue_.empty()) return false;
  ++running_;
  if (!keep_alive_) keep_alive_ = shared_from_this();
  return true;
}

group_core::reservation group_core::try_reserve_submit() {
  std::lock_guard lock(mutex_);
  if (closed_) throw boost::system::system_error(make_error_code(error::shut_down));
  if (running_ < limit_ && queue_.empty() && pending_.empty()) {
    ++running_;
    if (!keep_alive_) keep_alive_ = shared_from_this();
    return reservation::slot;
  }
  if (queued_ < queue_capacity_ && pending_.empty()) {
    ++queued_;
    if (!keep_alive_) keep_alive_ = shared_from_this();
    return reservation::queue;
  }
  return reservation::none;
}

void group_core::release_reservation(reservation r) noexcept {
  if (r == reservation::slot) return release_reservation();
  if (r != reservation::queue) return;
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    --queued_;
    fill_slots_locked(todo);
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::close() noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    closed_ = true;
    while (task_node* n = pending_.pop_front()) {
      --pending_count_;
      todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr),
                               make_error_code(error::shut_down));
      todo.to_discard.push_back(n);
    }
    todo.self = keep_alive_;
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

bool group_core::closed() const noexcept {
  std::lock_guard lock(mutex_);
  return closed_;
}

group_core::counts group_core::get_counts() const noexcept {
  std::lock_guard lock(mutex_);
  counts c = counts_;
  c.running = running_;
  c.queued = queued_;
  c.waiting = pending_count_;
  return c;
}

void group_core::count_end_locked(task_node*, bool failed, bool cancelled) noexcept {
  if (failed)
    ++counts_.failed;
  else if (cancelled)
    ++counts_.cancelled;
  else
    ++counts_.succeeded;
}

void group_core::release_reservation() noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    --running_;
    fill_slots_locked(todo);
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();  // only allocation can fail, as in retire()
  }
  run(todo);
}

void group_core::task_done(task_node* n, std::exception_ptr e) noexcept {
  std::optional<task_failure> failure;
  bool const cancelled = e && n->cancel_requested() && is_operation_aborted(e);
  if (e && !cancelled) {
    try {
      failure = make_failure(*n, std::move(e));
    } catch (...) {
      std::terminate();  // only allocation can fail; a lost failure breaks the contract
    }
  }
  retire(n, std::move(failure), n->on_failure_ ? &n->on_failure_ : &on_failure_, cancelled);
}

void group_core::record(task_failure&& f) noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    todo.self = keep_alive_;
    record_failure_locked(std::move(f), &on_failure_, todo);
  } catch (...) {
    std::terminate();  // only allocation can fail, as in retire()
  }
  run(todo);
}

void group_core::task_abandoned(task_node* n) noexcept {
  std::optional<task_failure> none;
  retire(n, std::move(none), nullptr, true);
}

void group_core::retire(task_node* n, std::optional<task_failure>&& failure,
                        failure_handler const* handler, bool cancelled) noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    if (!n->in_running_list_) return;  // never admitted, or withdrawn from the queue
    running_list_.erase(n);
    n->in_running_list_ = false;
    --running_;
    count_end_locked(n, failure.has_value(), cancelled);
    if (failure) record_failure_locked(std::move(*failure), handler, todo);
    fill_slots_locked(todo);
    finish_waits_locked(todo);
  } catch (...) {
    // Only allocation can fail here; a group that cannot record a failure cannot
    // honour its contract either.
    std::terminate();
  }
  run(todo);
}

void group_core::drain(bool lost) noexcept {
  for (;;) {
    std::optional<handler_call> call;
    {
      std::lock_guard lock(mutex_);
      if (handler_queue_.empty()) {
        draining_ = false;
        return;
      }
      call.emplace(std::move(handler_queue_.front()));
      handler_queue_.pop_front();
      handler_index_ = call->failure.index.value_or(no_index);
    }
    std::exception_ptr handler_error;
    if (!lost) {
      try {
        call->handler(call->failure);
      } catch (...) {
        handler_error = std::current_exception();
      }
    } else if (!call->kept) {
      report_failure(owner_kind(), owner_name(), "lost a failure: its on_failure handler never ran",
                     call->failure);
    }
    handler_done(call->failure, std::move(handler_error), /*drained=*/true);
  }
}

void group_core::handler_done(task_failure const& failure, std::exception_ptr handler_error,
                              bool drained) noexcept {
  after_unlock todo;
  try {
    std::optional<task_failure> f;
    if (handler_error) f = make_failure(failure, std::move(handler_error), task_stage::handler);
    std::lock_guard lock(mutex_);
    --pending_handlers_;
    if (drained) handler_index_ = no_index;  // a dropped failure is not the one drain() runs
    if (f) record_failure_locked(std::move(*f), nullptr, todo);  // no handler for a handler
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::record_failure_locked(task_failure&& f, failure_handler const* handler_ptr,
                                       after_unlock& todo) {
  if (policy_ == failure_policy::cancel_on_first && !cancelled_) cancel_locked(todo);
  failure_handler const* handler = handler_ptr && *handler_ptr ? handler_ptr : nullptr;
  std::optional<task_failure> copy;
  if (handler) copy.emplace(f);
  bool const kept = failures_.add(std::move(f));
  if (!handler && kept) return;
  // Either keeps the group busy until done, so that no wait completes before it.
  ++pending_handlers_;
  if (!todo.self) todo.self = keep_alive_;
  if (!handler) {
    // Past the retention bound and no handler sees it: to the failure path, at once.
    todo.dropped.push_back(std::move(f));
    return;
  }
  handler_queue_.push_back(handler_call{*handler, std::move(*copy), kept});
  if (!std::exchange(draining_, true)) todo.drain = true;
}

void group_core::cancel_locked(after_unlock& todo) {
  cancelled_ = true;
  todo.to_cancel.reserve(todo.to_cancel.size() + running_);
  for (task_node* n = running_list_.front(); n; n = n->next_) {
    n->add_ref();
    todo.to_cancel.emplace_back(n);
  }
}

void group_core::fill_slots_locked(after_unlock& todo) {
  for (;;) {
    // A pool's submissions waiting for room in the queue get it, in order.
    while (!pending_.empty() && queued_ < queue_capacity_) {
      task_node* n = pending_.pop_front();
      --pending_count_;
      n->index_ = next_index_++;
      ++counts_.submitted;
      queue_.push_back(n);
      ++queued_;
      todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), boost::system::error_code{});
    }
    if (queue_.empty() || running_ >= limit_) break;
    task_node* n = queue_.pop_front();
    if (n->waiter_)
      todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), boost::system::error_code{});
    else
      --queued_;
    if (pool_)
      running_list_.push_back(n);
    else
      running_list_.push_front(n);
    n->in_running_list_ = true;
    ++running_;
    if (cancelled_) {
      n->add_ref();
      todo.to_cancel.emplace_back(n);
    }
    todo.to_start.push_back(n);
  }
}

std::uint64_t group_core::watermark_locked() const noexcept {
  std::uint64_t w = next_index_;
  if (!running_list_.empty()) w = std::min(w, running_list_.front()->index_);
  if (!queue_.empty()) w = std::min(w, queue_.front()->index_);
  w = std::min(w, handler_index_);
  for (auto const& call : handler_queue_) w = std::min(w, call.failure.index.value_or(no_index));
  return w;
}

void group_core::finish_barriers_locked(after_unlock& todo) {
  std::uint64_t const w = watermark_locked();
  for (wait_op* op = waiters_.front(); op;) {
    wait_op* const next = op->next_;
    if (op->barrier_ && op->target_ <= w) {
      if (!todo.result) {
        auto d = std::make_shared<delivery>();
        d->result = failures_.take_errors();
        if (d->result) {
          d->owner_kind = owner_kind();
          d->owner_name = owner_name();
        }
        todo.result = std::move(d);
      }
      waiters_.erase(op);
      op->linked_ = false;
      todo.to_complete.emplace_back(op, op->aborted_ && !todo.result->result);
    }
    op = next;
  }
  if (!todo.self) todo.self = keep_alive_;
}

void group_core::finish_waits_locked(after_unlock& todo) {
  if (!idle_locked()) {
    if (pool_ && !waiters_.empty()) finish_barriers_locked(todo);
    return;
  }
  if (!waiters_.empty()) {
    auto d = std::make_shared<delivery>();
    d->result = failures_.take_errors();
    if (d->result) {
      d->owner_kind = owner_kind();
      d->owner_name = owner_name();
    }
    while (wait_op* op = waiters_.pop_front()) {
      op->linked_ = false;
      todo.to_complete.emplace_back(op, op->aborted_ && !d->result);
    }
    todo.result = std::move(d);
    cancelled_ = shut_down_;
  }
  if (!todo.self) todo.self = std::move(keep_alive_);
  keep_alive_.reset();
}

void group_core::run(after_unlock& todo) noexcept {
  if (todo.drain) {
    try {
      net::post(todo.self->ex_, drain_op(todo.self));
    } catch (...) {
      std::terminate();  // posting allocates
    }
  }
  for (auto& f : todo.dropped) {
    report_failure(todo.self->owner_kind(), todo.self->owner_name(),
                   "dropped a failure past its keep_failures bound", f);
    todo.self->handler_done(f, nullptr, /*drained=*/false);
  }
  for (auto& n : todo.to_cancel) n->request_cancel(todo.cancel_type);
  todo.to_cancel.clear();
  for (auto& [w, ec] : todo.spawns) w->admitted(ec);
  for (task_node* n : todo.to_start) n->start();
  for (task_node* n : todo.to_discard) n->discard();
  for (auto& [op, aborted] : todo.to_complete) op->complete(todo.result, aborted);
  todo.result.reset();
  todo.self.reset();
}

void group_core::drop_queue_locked(after_unlock& todo, boost::system::error_code refusal) {
  while (task_node* n = queue_.pop_front()) {
    --queued_;
    ++counts_.dropped;
    ++counts_.cancelled;
    todo.to_discard.push_back(n);
  }
  while (task_node* n = pending_.pop_front()) {
    --pending_count_;
    todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), refusal);
    todo.to_discard.push_back(n);
  }
}

void group_core::cancel(boost::asio::cancellation_type type) noexcept {
  after_unlock todo;
  todo.cancel_type = type;
  try {
    std::lock_guard lock(mutex_);
    if (pool_) {
      // One-shot: the running tasks and the queue as they are now.
      todo.to_cancel.reserve(running_);
      for (task_node* n = running_list_.front(); n; n = n->next_) {
        n->add_ref();
        todo.to_cancel.emplace_back(n);
      }
      drop_queue_locked(todo, net::error::operation_aborted);
      finish_waits_locked(todo);
      if (!todo.self) todo.self = keep_alive_;
    } else {
      cancel_locked(todo);
    }
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::set_limit(std::size_t limit) {
  if (limit == 0)
    throw std::invalid_argument(
        pool_
            ? "crew::worker_pool::set_workers: workers must be at least 1 or crew::unlimited, got 0"
            : "crew::task_group::set_limit: limit must be at least 1 or crew::unlimited, got 0");
  after_unlock todo;
  {
    std::lock_guard lock(mutex_);
    limit_ = limit;
    fill_slots_locked(todo);
  }
  run(todo);
}

std::size_t group_core::limit() const noexcept {
  std::lock_guard lock(mutex_);
  return limit_;
}

std::size_t group_core::size() const noexcept {
  std::lock_guard lock(mutex_);
  return running_ + queued_;
}

std::vector<task_failure> group_core::failures() const {
  std::lock_guard lock(mutex_);
  return failures_.kept();
}

void group_core::forget_failures() noexcept {
  std::lock_guard lock(mutex_);
  try {
    (void)failures_.take_errors();
  } catch (...) {
    // Without memory to take them, they are reported at the end after all.
  }
}

void group_core::async_wait(wait_handler handler,
                            std::optional<std::chrono::steady_clock::duration> timeout,
                            bool barrier) {
  auto slot = net::get_associated_cancellation_slot(handler);
  auto* op = new wait_op(std::move(handler), ex_);
  op->key_ = next_key();
  op->barrier_ = barrier && pool_;
  if (timeout) {
    try {
      op->start_timer(shared_from_this(), *timeout);
    } catch (...) {
      op->drop();
      throw;
    }
  }
  if (slot.is_connected())
    slot.template emplace<keyed_cancellation<group_core>>(
        keyed_cancellation<group_core>{weak_from_this(), op->key_});
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    waiters_.push_front(op);
    op->linked_ = true;
    op->target_ = next_index_;
    if (!keep_alive_) keep_alive_ = shared_from_this();
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::wait_timed_out(wait_op* op) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!op->linked_) return;
    waiters_.erase(op);
    op->linked_ = false;
  }
  op->finish_timed_out();
}

void group_core::cancel_key(std::uint64_t key, boost::asio::cancellation_type) noexcept {
  after_unlock todo;
  spawn_waiter* withdrawn = nullptr;
  try {
    std::lock_guard lock(mutex_);
    for (wait_op* op = waiters_.front(); op; op = op->next_) {
      if (op->key_ == key) {
        op->aborted_ = true;
        if (pool_) {
          for (task_node* t = running_list_.front(); t; t = t->next_) {
            t->add_ref();
            todo.to_cancel.emplace_back(t);
          }
          drop_queue_locked(todo, net::error::operation_aborted);
          finish_waits_locked(todo);
          if (!todo.self) todo.self = keep_alive_;
        } else {
          cancel_locked(todo);
        }
        break;
      }
    }
    for (task_node* n = pending_.front(); n; n = n->next_) {
      if (n->waiter_ && n->waiter_->key_ == key) {
        pending_.erase(n);
        --pending_count_;
        withdrawn = std::exchange(n->waiter_, nullptr);
        todo.to_discard.push_back(n);
        break;
      }
    }
    for (task_node* n = queue_.front(); n && !withdrawn; n = n->next_) {
      if (n->waiter_ && n->waiter_->key_ == key) {
        queue_.erase(n);
        withdrawn = std::exchange(n->waiter_, nullptr);
        todo.to_discard.push_back(n);
        break;
      }
    }
  } catch (...) {
    std::terminate();
  }
  if (withdrawn) withdrawn->admitted(net::error::operation_aborted);
  run(todo);
}

void group_core::shutdown() noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    shut_down_ = true;
    closed_ = true;
    cancel_locked(todo);
    if (pool_) drop_queue_locked(todo, make_error_code(error::shut_down));
    // Tasks already spawned still run (cancelled); async_spawn calls still waiting
    // for a slot are refused.
    for (task_node* n = queue_.front(); n;) {
      task_node* next = n->next_;
      if (n->waiter_) {
        queue_.erase(n);
        todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr),
                                 make_error_code(error::shut_down));
        todo.to_discard.push_back(n);
      }
      n = next;
    }
    if (idle_locked()) finish_waits_locked(todo);  // a pool whose queue was all it had
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

}  // namespace crew::detail
