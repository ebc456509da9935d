//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/task_group.hpp>

#include <boost/asio/error.hpp>
#include <boost/container/small_vector.hpp>

#include <iostream>
#include <thread>

namespace crew::detail {

// ---------------------------------------------------------------- task_node

std::uint64_t next_task_id() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void task_node::pause(unsigned& spins) noexcept {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

void task_node::request_cancel(boost::asio::cancellation_type type) noexcept {
  if (type == boost::asio::cancellation_type::none) return;
  pending_type_.fetch_or(static_cast<std::uint32_t>(type), std::memory_order_acq_rel);
  std::uint32_t const s = state_.fetch_or(pending | requested, std::memory_order_acq_rel);
  if ((s & (active_mask | emitting)) == 0) emit_pending();
}

void task_node::emit_taken_type() noexcept {
  auto const type = static_cast<boost::asio::cancellation_type>(
      pending_type_.exchange(0, std::memory_order_acq_rel));
  // An emission of `none` would clear the coroutine's cancelled state.
  if (type == boost::asio::cancellation_type::none) return;
  task_node* const outer = std::exchange(emitting_node, this);
  signal_.emit(type);
  emitting_node = outer;
}

void task_node::emit_pending_before_start() noexcept {
  std::uint32_t s = state_.load(std::memory_order_acquire);
  while ((s & pending) != 0) {
    if (state_.compare_exchange_weak(s, s & ~pending, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      emit_taken_type();
      return;
    }
  }
}

void task_node::emit_pending() noexcept {
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((s & (active_mask | emitting)) != 0 || (s & pending) == 0 || (s & started) == 0) return;
    if ((s & finished_bit) != 0) {
      if (state_.compare_exchange_weak(s, s & ~pending, std::memory_order_acq_rel,
                                       std::memory_order_acquire))
        return;
      continue;
    }
    if (!state_.compare_exchange_weak(s, (s & ~pending) | emitting, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    emit_taken_type();
    s = state_.fetch_and(~emitting, std::memory_order_acq_rel) & ~emitting;
  }
}

// ---------------------------------------------------------------- helpers

bool is_operation_aborted(std::exception_ptr const& e) noexcept {
  auto const* se = exception_cast<boost::system::system_error>(e);
  return se && se->code() == boost::asio::error::operation_aborted;
}

namespace {

task_failure make_failure(task_node const& n, std::exception_ptr e, task_stage stage) {
  task_failure f;
  f.id = n.id_;
  f.name = n.name_;
  f.spawn_site = n.site_;
  f.trace = throw_site_trace(e);
  f.exception = std::move(e);
  f.stage = stage;
  return f;
}

void link(task_node*& first, task_node* n) noexcept {
  n->in_running_list_ = true;
  n->prev_ = nullptr;
  n->next_ = first;
  if (first) first->prev_ = n;
  first = n;
}

void unlink(task_node*& first, task_node* n) noexcept {
  if (n->prev_)
    n->prev_->next_ = n->next_;
  else
    first = n->next_;
  if (n->next_) n->next_->prev_ = n->prev_;
  n->prev_ = n->next_ = nullptr;
  n->in_running_list_ = false;
}

}  // namespace

void report_unobserved(std::string const& group_name, task_errors const& errors,
                       char const* owner) noexcept {
  try {
    std::cerr << "crew: " << owner;
    if (!group_name.empty()) std::cerr << " '" << group_name << '\'';
    std::cerr << " ended with failures nobody waited for: " << errors.size() << '\n';
    for (auto const& f : errors.failures()) std::cerr << "  " << f;
    std::cerr.flush();
  } catch (...) {
  }
}

// ---------------------------------------------------------------- group_core

struct group_core::after_unlock {
  std::vector<node_ref> to_cancel;
  boost::asio::cancellation_type cancel_type = boost::asio::cancellation_type::terminal;
  boost::container::small_vector<task_node*, 2> to_start;
  boost::container::small_vector<std::pair<wait_op_base*, std::exception_ptr>, 2> to_complete;
  boost::container::small_vector<std::pair<spawn_waiter*, boost::system::error_code>, 1> spawns;
  std::vector<task_node*> to_discard;
  std::vector<std::function<void()>> handlers;
  // Once the lock is released another thread may end the group's last task and drop
  // the group: whatever runs after the unlock and needs the group holds this.
  std::shared_ptr<group_core> self;
};

group_core::group_core(task_group_options const& o)
    : limit_(o.limit), on_failure_(o.on_failure), name_(o.name), policy_(o.policy) {
  if (o.limit == 0)
    throw std::invalid_argument(
        "crew::task_group: options.limit must be at least 1 or crew::unlimited, got 0");
}

group_core::~group_core() {
  if (!failures_.empty()) report_unobserved(name_, task_errors(std::move(failures_)));
}

std::uint64_t group_core::next_key() noexcept {
  return keys_.fetch_add(1, std::memory_order_relaxed) + 1;
}

void group_core::unqueue_locked(task_node* n) noexcept {
  if (n->prev_)
    n->prev_->next_ = n->next_;
  else
    queue_first_ = n->next_;
  if (n->next_)
    n->next_->prev_ = n->prev_;
  else
    queue_last_ = n->prev_;
  n->prev_ = n->next_ = nullptr;
}

bool group_core::idle_locked() const noexcept {
  return running_ == 0 && queued_ == 0 && pending_handlers_ == 0;
}

group_core::admitted group_core::admit(task_node* n, admit_mode mode) {
  after_unlock todo;
  admitted result;
  {
    std::lock_guard lock(mutex_);
    bool const was_idle = !keep_alive_;
    if (running_ < limit_ && queue_first_ == nullptr) {
      link(running_first_, n);
      ++running_;
      if (n->waiter_)
        todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), boost::system::error_code{});
      if (cancelled_) {
        n->add_ref();
        todo.to_cancel.emplace_back(n);
      }
      result = admitted::started;
    } else if (mode == admit_mode::try_spawn) {
      return admitted::refused;
    } else {
      n->next_ = nullptr;
      n->prev_ = queue_last_;
      if (queue_last_)
        queue_last_->next_ = n;
      else
        queue_first_ = n;
      queue_last_ = n;
      if (mode == admit_mode::spawn) ++queued_;
      result = admitted::queued;
    }
    if (was_idle) keep_alive_ = shared_from_this();
  }
  run(todo);
  if (result == admitted::started) n->start();
  return result;
}

void group_core::task_done(task_node* n, std::exception_ptr e) noexcept {
  n->mark_finished();
  after_unlock todo;
  try {
    std::optional<task_failure> failure;
    failure_handler handler;
    if (e && !(n->cancel_requested() && is_operation_aborted(e))) {
      failure = make_failure(*n, std::move(e), task_stage::execute);
      handler = n->on_failure_ ? n->on_failure_ : on_failure_;
    }
    std::lock_guard lock(mutex_);
    unlink(running_first_, n);
    --running_;
    if (failure) {
      if (handler) {
        ++pending_handlers_;
        if (!todo.self) todo.self = keep_alive_;
        todo.handlers.push_back([this, handler = std::move(handler), f = *failure]() mutable {
          std::exception_ptr handler_error;
          try {
            handler(f);
          } catch (...) {
            handler_error = std::current_exception();
          }
          handler_done(std::move(f), std::move(handler_error));
        });
      }
      record_failure_locked(std::move(*failure), todo);
    }
    fill_slots_locked(todo);
    finish_waits_locked(todo);
  } catch (...) {
    // Only allocation can fail here; a group that cannot record a failure cannot
    // honour its contract either.
    std::terminate();
  }
  run(todo);
}

void group_core::task_abandoned(task_node* n) noexcept {
  n->mark_finished();
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    if (!n->in_running_list_) return;  // never admitted, or withdrawn from the queue
    unlink(running_first_, n);
    --running_;
    fill_slots_locked(todo);
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::handler_done(task_failure failure, std::exception_ptr handler_error) noexcept {
  after_unlock todo;
  try {
    std::optional<task_failure> f;
    if (handler_error) {
      f.emplace();
      f->id = failure.id;
      f->name = std::move(failure.name);
      f->spawn_site = failure.spawn_site;
      f->trace = throw_site_trace(handler_error);
      f->exception = std::move(handler_error);
      f->stage = task_stage::handler;
    }
    std::lock_guard lock(mutex_);
    --pending_handlers_;
    if (f) record_failure_locked(std::move(*f), todo);
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::record_failure_locked(task_failure&& f, after_unlock& todo) {
  failures_.push_back(std::move(f));
  if (policy_ == failure_policy::cancel_on_first && !cancelled_) cancel_locked(todo);
}

void group_core::cancel_locked(after_unlock& todo) {
  cancelled_ = true;
  todo.to_cancel.reserve(todo.to_cancel.size() + running_);
  for (task_node* n = running_first_; n; n = n->next_) {
    n->add_ref();
    todo.to_cancel.emplace_back(n);
  }
}

void group_core::fill_slots_locked(after_unlock& todo) {
  while (queue_first_ && running_ < limit_) {
    task_node* n = queue_first_;
    unqueue_locked(n);
    if (n->waiter_)
      todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr), boost::system::error_code{});
    else
      --queued_;
    link(running_first_, n);
    ++running_;
    if (cancelled_) {
      n->add_ref();
      todo.to_cancel.emplace_back(n);
    }
    todo.to_start.push_back(n);
  }
}

void group_core::finish_waits_locked(after_unlock& todo) {
  if (!idle_locked()) return;
  if (waiters_) {
    std::exception_ptr result;
    if (!failures_.empty()) {
      result = std::make_exception_ptr(task_errors(std::move(failures_)));
      failures_.clear();
    }
    std::exception_ptr aborted;
    while (wait_op_base* op = waiters_) {
      waiters_ = op->next_;
      op->linked_ = false;
      if (op->aborted_ && !result && !aborted)
        aborted = std::make_exception_ptr(
            boost::system::system_error(boost::asio::error::operation_aborted));
      todo.to_complete.emplace_back(op, op->aborted_ && !result ? aborted : result);
    }
    cancelled_ = shut_down_;
  }
  todo.self = std::move(keep_alive_);
}

void group_core::run(after_unlock& todo) noexcept {
  for (auto& h : todo.handlers) {
    try {
      todo.self->post_to_strand(std::move(h));
    } catch (...) {
      std::terminate();
    }
  }
  for (auto& n : todo.to_cancel) n->request_cancel(todo.cancel_type);
  todo.to_cancel.clear();
  for (auto& [w, ec] : todo.spawns) w->admitted(ec);
  for (task_node* n : todo.to_start) n->start();
  for (task_node* n : todo.to_discard) n->discard();
  for (auto& [op, result] : todo.to_complete) op->complete(std::move(result));
  todo.self.reset();
}

void group_core::cancel(boost::asio::cancellation_type type) noexcept {
  after_unlock todo;
  todo.cancel_type = type;
  try {
    std::lock_guard lock(mutex_);
    cancel_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

void group_core::set_limit(std::size_t limit) {
  if (limit == 0)
    throw std::invalid_argument(
        "crew::task_group::set_limit: limit must be at least 1 or crew::unlimited, got 0");
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
  return failures_;
}

void group_core::add_waiter(wait_op_base* op) noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    op->prev_ = nullptr;
    op->next_ = waiters_;
    if (waiters_) waiters_->prev_ = op;
    waiters_ = op;
    op->linked_ = true;
    if (!keep_alive_) keep_alive_ = shared_from_this();
    finish_waits_locked(todo);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

bool group_core::detach_waiter(wait_op_base* op) noexcept {
  std::lock_guard lock(mutex_);
  if (!op->linked_) return false;
  if (op->prev_)
    op->prev_->next_ = op->next_;
  else
    waiters_ = op->next_;
  if (op->next_) op->next_->prev_ = op->prev_;
  op->linked_ = false;
  return true;
}

void group_core::abort_waiter(std::uint64_t key) noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    for (wait_op_base* op = waiters_; op; op = op->next_) {
      if (op->key_ == key) {
        op->aborted_ = true;
        cancel_locked(todo);
        break;
      }
    }
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

task_node* group_core::withdraw_spawn(std::uint64_t key) noexcept {
  std::lock_guard lock(mutex_);
  for (task_node* n = queue_first_; n; n = n->next_) {
    if (n->waiter_ && n->spawn_key_ == key) {
      unqueue_locked(n);
      return n;
    }
  }
  return nullptr;
}

void group_core::shutdown() noexcept {
  after_unlock todo;
  try {
    std::lock_guard lock(mutex_);
    shut_down_ = true;
    cancel_locked(todo);
    // Tasks already spawned still run (cancelled); async_spawn calls still waiting
    // for a slot are refused.
    for (task_node* n = queue_first_; n;) {
      task_node* next = n->next_;
      if (n->waiter_) {
        unqueue_locked(n);
        todo.spawns.emplace_back(std::exchange(n->waiter_, nullptr),
                                 make_error_code(error::shut_down));
        todo.to_discard.push_back(n);
      }
      n = next;
    }
    if (idle_locked() && !waiters_) todo.self = std::move(keep_alive_);
  } catch (...) {
    std::terminate();
  }
  run(todo);
}

}  // namespace crew::detail
