//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_SCHEDULER_HPP
#define CREW_IMPL_SCHEDULER_HPP

#include <stdexcept>

namespace crew {

template <class Executor>
basic_scheduler<Executor>& basic_scheduler<Executor>::operator=(basic_scheduler&& other) noexcept {
  if (this != &other) {
    if (this->state_) detail::scheduler_shutdown(*this->state_);
    this->ex_ = std::move(other.ex_);
    this->state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_scheduler<Executor>::~basic_scheduler() {
  if (this->state_) detail::scheduler_shutdown(*this->state_);
}

template <class Executor>
detail::scheduler_core& basic_scheduler<Executor>::state() const {
  if (!this->state_) throw std::logic_error("crew::scheduler: the scheduler was moved from");
  return *this->state_;
}

}  // namespace crew

#endif
