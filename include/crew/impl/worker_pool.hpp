//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_WORKER_POOL_HPP
#define CREW_IMPL_WORKER_POOL_HPP

#include <crew/detail/group_core.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/impl/task_group.hpp>

#include <boost/system/system_error.hpp>

#include <stdexcept>

namespace crew {

// ---------------------------------------------------------------- basic_worker_pool

template <class Executor>
std::shared_ptr<detail::group_core> basic_worker_pool<Executor>::make_state(
    Executor const& ex, detail::pool_config config) {
  return detail::make_pool_core(net::any_io_executor(ex), std::move(config));
}

template <class Executor>
basic_worker_pool<Executor>& basic_worker_pool<Executor>::operator=(
    basic_worker_pool&& other) noexcept {
  if (this != &other) {
    if (this->state_) this->state_->shutdown();
    this->ex_ = std::move(other.ex_);
    this->state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_worker_pool<Executor>::~basic_worker_pool() {
  if (this->state_) this->state_->shutdown();
}

template <class Executor>
detail::group_core& basic_worker_pool<Executor>::state() const {
  if (!this->state_) throw std::logic_error("crew::worker_pool: the pool was moved from");
  return *this->state_;
}

template <class Executor>
worker_pool_stats basic_worker_pool<Executor>::stats() const noexcept {
  return this->state_ ? detail::pool_stats(*this->state_) : worker_pool_stats{};
}

template <class Executor>
template <class Task,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) CompletionToken>
auto basic_worker_pool<Executor>::async_submit(Task&& task, CompletionToken&& token,
                                               source_location site) {
  return async_submit(std::forward<Task>(task), spawn_options{},
                      std::forward<CompletionToken>(token), site);
}

template <class Executor>
template <class Task,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) CompletionToken>
auto basic_worker_pool<Executor>::async_submit(Task&& task, spawn_options options,
                                               CompletionToken&& token, source_location site) {
  return detail::async_group_spawn(
      initiate_submit(this->ex_, state(), site, detail::group_core::admit_mode::submit),
      std::forward<CompletionToken>(token),
      detail::make_task_body(std::forward<Task>(task), "crew::worker_pool::async_submit"),
      std::move(options));
}

template <class Executor>
template <class Task>
bool basic_worker_pool<Executor>::try_submit(Task&& task, source_location site) {
  return try_submit(std::forward<Task>(task), spawn_options{}, site);
}

template <class Executor>
template <class Task>
bool basic_worker_pool<Executor>::try_submit(Task&& task, spawn_options options,
                                             source_location site) {
  using core_type = detail::group_core;
  char const* const who = "crew::worker_pool::try_submit";
  auto& core = state();
  detail::check_task(task, who);
  // The place first, so that a refused task is never moved from.
  auto const r = core.try_reserve_submit();
  if (r == core_type::reservation::none) return false;
  core_type::admitted result;
  try {
    result =
        core.spawn(detail::make_task_body(std::forward<Task>(task), who), std::move(options), site,
                   r == core_type::reservation::slot ? core_type::admit_mode::reserved
                                                     : core_type::admit_mode::reserved_queue);
  } catch (...) {
    core.release_reservation(r);
    throw;
  }
  if (result == core_type::admitted::refused)
    throw boost::system::system_error(make_error_code(error::shut_down),
                                      "crew::worker_pool::try_submit");
  return true;
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_worker_pool<Executor>::async_wait(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      initiate_wait(this->ex_, state(), initiate_wait::kind::barrier), token, std::nullopt);
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_worker_pool<Executor>::async_shutdown(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      initiate_wait(this->ex_, state(), initiate_wait::kind::close_then_idle), token, std::nullopt);
}

}  // namespace crew

#endif
