//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/io_pool.hpp>
#include <crew/detail/task.hpp>
#include <crew/io_pool.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace crew {
namespace detail {

namespace {

/// Tasks a handler spawns before the rest of its burst skips its own context.
constexpr std::size_t burst_quota = 16;
/// Task starts handed to another context in one post.
constexpr std::size_t batch_size = 64;

}  // namespace

/// An io_context whose services can be shut down before any context is destroyed.
class io_pool_impl::context_type : public net::io_context {
 public:
  context_type() : net::io_context(1) {}
  void shut_down() { shutdown(); }
};

struct io_pool_impl::thread_state {
  io_pool_impl* pool;
  std::size_t index;
  std::size_t placed = 0;  // tasks placed since the end of the last spawning handler
  std::size_t cursor = 0;
  bool end_posted = false;
  std::vector<std::vector<task_node*>> outgoing;  // per context; each holds a reference

  void note_handler();
  void send(std::size_t k);
  void send_all() {
    for (std::size_t k = 0; k < outgoing.size(); ++k)
      if (!outgoing[k].empty()) send(k);
  }
};

namespace {

thread_local io_pool_impl::thread_state* this_thread_state = nullptr;

/// Starts a batch of tasks on their context, or abandons them if it is destroyed first.
class batch_op {
 public:
  explicit batch_op(std::vector<task_node*>&& nodes) noexcept : nodes_(std::move(nodes)) {}
  batch_op(batch_op&& o) noexcept : nodes_(std::move(o.nodes_)), next_(o.next_) {
    o.nodes_.clear();
  }
  batch_op& operator=(batch_op&&) = delete;
  ~batch_op() {
    for (; next_ < nodes_.size(); ++next_) {
      nodes_[next_]->abandon();
      nodes_[next_]->release();
    }
  }

  void operator()() {
    for (; next_ < nodes_.size(); ++next_) {
      task_node* const n = nodes_[next_];
      n->launch();
      n->release();
    }
  }

 private:
  std::vector<task_node*> nodes_;
  std::size_t next_ = 0;
};

}  // namespace

void io_pool_impl::thread_state::note_handler() {
  if (end_posted) return;
  // Runs once the spawning handler returned: the burst is over. It finds the state
  // through the thread, never through `this`: a pool stopped with this note queued and
  // run again has a new state.
  net::post(pool->context(index), [p = pool] {
    thread_state* const t = this_thread_state;
    if (!t || t->pool != p) return;
    t->end_posted = false;
    t->placed = 0;
    t->send_all();
  });
  end_posted = true;  // only once posted: a note that failed to post is tried again
}

void io_pool_impl::thread_state::send(std::size_t k) {
  net::post(pool->context(k), batch_op(std::exchange(outgoing[k], {})));
}

io_pool_impl::io_pool_impl(std::size_t threads) {
  if (threads == 0 || threads > 1024)
    throw std::invalid_argument("crew::io_pool: threads is " + std::to_string(threads) +
                                "; it must be 1 to 1024");
  contexts_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<context_type>());
}

io_pool_impl::~io_pool_impl() {
  stop();
  {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return !running_; });
  }
  // Destroying one context's handlers (suspended tasks, batches) may post to another:
  // every context drops its handlers, three times over, before any is destroyed.
  for (int pass = 0; pass < 3; ++pass)
    for (auto& c : contexts_) static_cast<context_type&>(*c).shut_down();
  contexts_.clear();
}

std::size_t io_pool_impl::place() noexcept {
  std::size_t const n = contexts_.size();
  thread_state* const t = this_thread_state;
  if (!t || t->pool != this) return cursor_.fetch_add(1, std::memory_order_relaxed) % n;
  if (n == 1) return 0;
  try {
    t->note_handler();
  } catch (...) {
    // Without memory for the end-of-handler note, the task still has a place.
  }
  std::size_t const c = t->cursor++;
  if (++t->placed <= burst_quota) return (t->index + 1 + c) % n;
  std::size_t const k = c % (n - 1);
  return k >= t->index ? k + 1 : k;
}

bool io_pool_impl::take_start(task_node* n, std::size_t k) noexcept {
  thread_state* const t = this_thread_state;
  if (!t || t->pool != this || t->index == k) return false;
  try {
    auto& out = t->outgoing[k];
    if (out.capacity() == 0) out.reserve(batch_size);
    n->add_ref();
    out.push_back(n);
    t->note_handler();
    if (out.size() == batch_size) t->send(k);
  } catch (...) {
    // Posting allocates; without memory the task can neither run nor report.
    std::terminate();
  }
  return true;
}

net::io_context& io_pool_impl::caller_context() noexcept {
  thread_state* const t = this_thread_state;
  return t && t->pool == this ? context(t->index) : context(0);
}

net::io_context& io_pool_impl::target() noexcept {
  thread_state* const t = this_thread_state;
  if (t && t->pool == this) return context(t->index);
  return context(cursor_.fetch_add(1, std::memory_order_relaxed) % contexts_.size());
}

void io_pool_impl::run_context(std::size_t i) {
  thread_state state{this, i, 0, 0, false, {}};
  state.outgoing.resize(contexts_.size());
  this_thread_state = &state;
  struct restore {
    thread_state& s;
    ~restore() {
      // Batches still waiting go to their (stopped) contexts, which abandon them.
      try {
        s.send_all();
      } catch (...) {
      }
      this_thread_state = nullptr;
    }
  } r{state};
  auto guard = net::make_work_guard(context(i));
  context(i).run();
}

void io_pool_impl::run() {
  {
    std::lock_guard lock(mutex_);
    if (running_) throw std::logic_error("crew::io_pool::run: the pool is running already");
    running_ = true;
  }
  struct done {
    io_pool_impl& p;
    ~done() {
      {
        std::lock_guard lock(p.mutex_);
        p.running_ = false;
      }
      p.idle_.notify_all();
    }
  } d{*this};
  std::vector<std::thread> threads;
  std::exception_ptr failure;
  try {
    for (std::size_t i = 1; i < contexts_.size(); ++i)
      threads.emplace_back([this, i] { run_context(i); });
    run_context(0);
  } catch (...) {
    failure = std::current_exception();
    stop();
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

void io_pool_impl::stop() noexcept {
  stopped_.store(true, std::memory_order_release);
  for (auto& c : contexts_) c->stop();
}

void io_pool_impl::restart() {
  for (auto& c : contexts_) c->restart();
  stopped_.store(false, std::memory_order_release);
}

}  // namespace detail

// ---------------------------------------------------------------- io_pool

io_pool::io_pool(std::size_t threads) : impl_(std::make_unique<detail::io_pool_impl>(threads)) {}

io_pool::~io_pool() = default;

io_pool::executor_type io_pool::get_executor() noexcept {
  return executor_type(impl_.get(), false);
}

std::size_t io_pool::size() const noexcept {
  return impl_->size();
}

net::io_context& io_pool::context(std::size_t i) {
  if (i >= impl_->size())
    throw std::out_of_range("crew::io_pool::context: i is " + std::to_string(i) +
                            "; the pool has " + std::to_string(impl_->size()) + " contexts");
  return impl_->context(i);
}

void io_pool::run() {
  impl_->run();
}

void io_pool::stop() noexcept {
  impl_->stop();
}

bool io_pool::stopped() const noexcept {
  return impl_->stopped();
}

void io_pool::restart() {
  impl_->restart();
}

net::io_context& io_pool::executor_type::query(net::execution::context_t) const noexcept {
  return impl_->caller_context();
}

net::io_context::executor_type io_pool::executor_type::target() const noexcept {
  return impl_->target().get_executor();
}

}  // namespace crew
