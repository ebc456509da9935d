//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_CREW_HPP
#define CREW_CREW_HPP

#include <crew/backoff.hpp>
#include <crew/circuit_breaker.hpp>
#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/cron.hpp>
#include <crew/error.hpp>
#include <crew/gather.hpp>
#include <crew/io_pool.hpp>
#include <crew/loop.hpp>
#include <crew/pipeline.hpp>
#include <crew/retry.hpp>
#include <crew/run_group.hpp>
#include <crew/runtime.hpp>
#include <crew/scheduler.hpp>
#include <crew/source_location.hpp>
#include <crew/supervisor.hpp>
#include <crew/task_group.hpp>
#include <crew/task_manager.hpp>
#include <crew/tasks.hpp>
#include <crew/this_task.hpp>
#include <crew/worker_pool.hpp>

#endif
