//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_RUN_GROUP_HPP
#define CREW_IMPL_RUN_GROUP_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/system/system_error.hpp>

#include <stdexcept>
#include <system_error>

namespace crew {
namespace detail {

template <class F>
std::function<net::awaitable<void>()> make_execute(F&& f) {
  using fn_type = std::decay_t<F>;
  static_assert(std::is_invocable_v<fn_type&>,
                "crew::execute: the actor is a callable taking no argument");
  using result_type = std::invoke_result_t<fn_type&>;
  if constexpr (std::is_same_v<result_type, net::awaitable<void>>) {
    return std::function<net::awaitable<void>()>(std::forward<F>(f));
  } else {
    static_assert(std::is_same_v<result_type, net::awaitable<boost::system::error_code>> ||
                      std::is_same_v<result_type, net::awaitable<std::error_code>>,
                  "crew::execute: the actor returns awaitable<void> or awaitable<error_code>");
    // The callable lives in the std::function, which the run keeps until it ends.
    return [fn = fn_type(std::forward<F>(f))]() mutable -> net::awaitable<void> {
      auto ec = co_await fn();
      if (ec) throw boost::system::system_error(boost::system::error_code(ec));
    };
  }
}

inline void add_part(actor& a, name_part&& p) {
  a.name = std::move(p.name);
}

template <class F>
void add_part(actor& a, execute_part<F>&& p) {
  if (a.execute) throw std::invalid_argument("crew::run_group::add: two crew::execute parts");
  a.execute = make_execute(std::move(p.f));
}

template <class F>
void add_part(actor& a, interrupt_part<F>&& p) {
  a.interrupt = std::move(p.f);
}

template <class F>
void add_part(actor& a, on_failure_part<F>&& p) {
  a.on_failure = std::move(p.f);
}

}  // namespace detail

template <class Executor>
basic_run_group<Executor>::basic_run_group(executor_type const& ex) : ex_(ex) {}

template <class Executor>
basic_run_group<Executor>::basic_run_group(executor_type const& ex, run_group_options options)
    : ex_(ex), options_(std::move(options)) {
  detail::check_options(options_, "crew::run_group");
}

template <class Executor>
basic_run_group<Executor>::~basic_run_group() {
  std::shared_ptr<detail::run_core> core;
  {
    std::lock_guard lock(mutex_);
    core = running_.lock();
  }
  if (core)
    detail::interrupt_run(
        *core, std::make_exception_ptr(boost::system::system_error(
                   make_error_code(error::shut_down), "crew::run_group destroyed while running")));
}

template <class Executor>
void basic_run_group<Executor>::add(actor a) {
  if (!a.execute)
    throw std::invalid_argument("crew::run_group::add: the actor '" + a.name +
                                "' has no execute function");
  std::lock_guard lock(mutex_);
  if (detail::run_in_progress(running_))
    throw boost::system::system_error(make_error_code(error::already_running),
                                      "crew::run_group::add: the group is running");
  if (a.name.empty()) a.name = "actor " + std::to_string(actors_.size() + 1);
  actors_.push_back(std::move(a));
}

template <class Executor>
template <class... Parts>
requires(sizeof...(Parts) >= 1) void basic_run_group<Executor>::add(Parts&&... parts) {
  actor a;
  (detail::add_part(a, std::decay_t<Parts>(std::forward<Parts>(parts))), ...);
  add(std::move(a));
}

template <class Executor>
std::size_t basic_run_group<Executor>::size() const {
  std::lock_guard lock(mutex_);
  return actors_.size();
}

template <class Executor>
void basic_run_group<Executor>::interrupt() {
  std::shared_ptr<detail::run_core> core;
  {
    std::lock_guard lock(mutex_);
    if (!detail::run_in_progress(running_)) {
      interrupt_pending_ = true;
      return;
    }
    core = running_.lock();
  }
  detail::interrupt_run(*core, nullptr);
}

template <class Executor>
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto basic_run_group<Executor>::async_run(CompletionToken&& token) {
  return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [this](auto handler) {
        // Once the run started it may complete, and its awaiter resume and destroy this
        // group, on another thread: nothing below touches `this` after start_run.
        std::shared_ptr<detail::run_core> core;
        bool interrupt_now = false;
        {
          std::lock_guard lock(mutex_);
          if (!detail::run_in_progress(running_)) {
            core = detail::make_run(ex_, options_, actors_, detail::run_handler(std::move(handler)),
                                    "run group");
            running_ = core;
            interrupt_now = std::exchange(interrupt_pending_, false);
          }
        }
        if (!core) {
          auto const ex = ex_;
          detail::complete_at_once(
              ex, detail::run_handler(std::move(handler)),
              std::make_exception_ptr(boost::system::system_error(
                  make_error_code(error::already_running), "crew::run_group::async_run")));
          return;
        }
        detail::start_run(*core);
        if (interrupt_now) detail::interrupt_run(*core, nullptr);
      },
      token);
}

}  // namespace crew

#endif
