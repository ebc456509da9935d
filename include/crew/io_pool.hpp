//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IO_POOL_HPP
#define CREW_IO_POOL_HPP

#include <crew/config.hpp>

#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace crew {

namespace detail {
class io_pool_impl;
}

/** N `io_context`s, each run by one thread, that crew tasks spread over: the
    multi-core option.

    A 2-thread `io_context` shares one locked queue between its threads; here every
    context is made with a concurrency hint of 1, so a thread posting to its own
    context takes no lock, and each task, socket and timer lives on one context.

    A crew task spawned on the pool's executor (a task group, worker pool, run group...
    made with `pool.get_executor()`) is placed on one context and stays there: its
    `co_await this_coro::executor` is that context's executor, and so is every socket or
    timer it makes from it.

    - From one of the pool's threads, tasks go round-robin over the contexts, so that
      a server's sessions spread; after the first few tasks a handler spawns (a burst),
      the rest go to the *other* contexts, which are free to run them while the spawner
      still spawns. Tasks for another context are handed over in batches, one
      cross-thread post per batch, sent when full or once the spawning handler returns.
    - From any other thread, tasks go round-robin, one post each.

    Other work executed on the pool's executor (`post`, `co_spawn`, completion
    handlers) runs on the calling thread's context when it is one of the pool's, else
    on the next context round-robin.

    @par Thread safety
    Distinct objects: safe. Shared objects: `get_executor`, `stop` and `stopped` are
    safe from any thread.
*/
class io_pool {
 public:
  class executor_type;

  /** Makes `threads` io_contexts; no thread runs yet (see run()).
      @throws std::invalid_argument naming `threads` if it is 0 or above 1024.
  */
  explicit io_pool(std::size_t threads);

  /// Stops the contexts, waits for run() to return if it runs, then destroys
  /// every context's handlers (tasks still suspended end as abandoned) before
  /// destroying any context.
  ~io_pool();

  io_pool(io_pool const&) = delete;
  io_pool& operator=(io_pool const&) = delete;

  /// The executor that places work on the contexts.
  executor_type get_executor() noexcept;

  /// How many contexts (and threads) the pool has.
  std::size_t size() const noexcept;

  /** The `i`th context.
      @throws std::out_of_range naming `i` and the size.
  */
  net::io_context& context(std::size_t i);

  /** Runs every context, the first on the calling thread and each other on a thread
      of its own, until stop(). Like a server's io_context::run() with a work guard,
      it does not return when the work runs out: an idle context may receive more from
      another.
      @throws std::logic_error if run() is already running.
  */
  void run();

  /// Stops every context; run() returns once its threads ended. Thread-safe.
  void stop() noexcept;

  /// Whether stop() was called since the last restart().
  bool stopped() const noexcept;

  /// Makes a stopped pool runnable again (io_context::restart on every context).
  void restart();

 private:
  std::unique_ptr<detail::io_pool_impl> impl_;
};

/** The pool's executor: a standard executor whose `execute` runs the function on the
    calling thread's context when that is one of the pool's (inline if blocking is
    `possibly` and the caller already runs it), else on the next context. crew places
    the tasks made on it (see io_pool). Its `context` query answers the calling
    thread's context, or the first.
*/
class io_pool::executor_type {
 public:
  net::io_context& query(net::execution::context_t) const noexcept;

  constexpr net::execution::blocking_t query(net::execution::blocking_t) const noexcept {
    return never_ ? net::execution::blocking_t(net::execution::blocking.never)
                  : net::execution::blocking_t(net::execution::blocking.possibly);
  }

  executor_type require(net::execution::blocking_t::never_t) const noexcept {
    return executor_type(impl_, true);
  }
  executor_type require(net::execution::blocking_t::possibly_t) const noexcept {
    return executor_type(impl_, false);
  }

  template <class Function>
  void execute(Function&& f) const {
    net::io_context::executor_type const ex = target();
    if (never_)
      net::execution::execute(net::require(ex, net::execution::blocking.never),
                              std::forward<Function>(f));
    else
      net::execution::execute(ex, std::forward<Function>(f));
  }

  /// The io_context executor that `execute` would use now, on this thread.
  net::io_context::executor_type target() const noexcept;

  detail::io_pool_impl& impl() const noexcept { return *impl_; }

  friend bool operator==(executor_type const& a, executor_type const& b) noexcept {
    return a.impl_ == b.impl_ && a.never_ == b.never_;
  }
  friend bool operator!=(executor_type const& a, executor_type const& b) noexcept {
    return !(a == b);
  }

 private:
  friend class io_pool;
  executor_type(detail::io_pool_impl* impl, bool never) noexcept : impl_(impl), never_(never) {}

  detail::io_pool_impl* impl_;
  bool never_;
};

}  // namespace crew

#endif
