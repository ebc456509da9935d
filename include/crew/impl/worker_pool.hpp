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

// ---------------------------------------------------------------- initiations

/// The initiation of async_submit: a named class with the I/O executor, as Asio's.
template <class Executor>
class basic_worker_pool<Executor>::initiate_submit {
 public:
  using executor_type = Executor;

  initiate_submit(basic_worker_pool const& p, source_location site)
      : ex_(p.get_executor()), core_(&p.state()), site_(site) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler, detail::task_body body, spawn_options options) const {
    using handler_type = std::decay_t<Handler>;
    using op_type = detail::spawn_op<handler_type, Executor>;
    auto* op = op_type::create(handler_type(std::forward<Handler>(handler)), ex_);
    try {
      core_->spawn(std::move(body), std::move(options), site_,
                   detail::group_core::admit_mode::submit, op);
    } catch (...) {
      op->destroy();
      throw;
    }
  }

 private:
  executor_type ex_;
  detail::group_core* core_;
  source_location site_;
};

/// The initiation of async_wait (a barrier) and async_shutdown (close, then idle).
template <class Executor>
class basic_worker_pool<Executor>::initiate_wait {
 public:
  using executor_type = Executor;

  initiate_wait(basic_worker_pool const& p, bool shutdown)
      : ex_(p.get_executor()), core_(&p.state()), shutdown_(shutdown) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler) const {
    if (shutdown_) core_->close();
    core_->async_wait(detail::wait_handler(std::forward<Handler>(handler)), std::nullopt,
                      /*barrier=*/!shutdown_);
  }

 private:
  executor_type ex_;
  detail::group_core* core_;
  bool shutdown_;
};

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
  return net::async_initiate<CompletionToken, void(boost::system::error_code)>(
      initiate_submit(*this, site), token,
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
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(initiate_wait(*this, false),
                                                                        token);
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_worker_pool<Executor>::async_shutdown(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(initiate_wait(*this, true),
                                                                        token);
}

}  // namespace crew

#endif
