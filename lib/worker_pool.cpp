//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A worker pool is a group core in pool mode (lib/task_group.cpp): the bounded queue,
// the barrier wait, the one-shot cancel and close live there, next to the group's
// admission and retirement, which they change.
//
#include <crew/worker_pool.hpp>

namespace crew::detail {

std::shared_ptr<group_core> make_pool_core(net::any_io_executor ex, pool_config config) {
  task_group_options o;
  o.limit = config.workers;
  o.on_failure = std::move(config.options.on_failure);
  o.name = std::move(config.options.name);
  o.keep_failures = config.options.keep_failures;
  return std::make_shared<group_core>(std::move(ex), o, "worker pool", config.queue_capacity);
}

worker_pool_stats pool_stats(group_core const& core) noexcept {
  auto const c = core.get_counts();
  worker_pool_stats s;
  s.submitted = c.submitted;
  s.succeeded = c.succeeded;
  s.failed = c.failed;
  s.cancelled = c.cancelled;
  s.dropped = c.dropped;
  s.running = c.running;
  s.queued = c.queued;
  s.waiting = c.waiting;
  return s;
}

}  // namespace crew::detail
