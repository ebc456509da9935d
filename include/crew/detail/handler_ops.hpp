//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_HANDLER_OPS_HPP
#define CREW_DETAIL_HANDLER_OPS_HPP

#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <exception>
#include <memory>
#include <utility>

namespace crew::detail {

/// The handler's associated allocator (recycling by default), rebound to `T`.
template <class T, class Handler>
auto rebound_allocator(Handler const& h) {
  auto a = boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>());
  return typename std::allocator_traits<decltype(a)>::template rebind_alloc<T>(a);
}

/** A completion handler waiting to be called: it keeps its executor busy meanwhile,
    and is always invoked through that executor, never inside the call that completes it.
*/
template <class Handler, class DefaultExecutor>
class completion_holder {
 public:
  using handler_executor = boost::asio::associated_executor_t<Handler, DefaultExecutor>;
  using work_executor = std::decay_t<decltype(boost::asio::prefer(
      std::declval<handler_executor const&>(), boost::asio::execution::outstanding_work.tracked))>;

  completion_holder(Handler&& h, DefaultExecutor const& io_ex)
      : io_ex_(io_ex),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(h, io_ex),
                                  boost::asio::execution::outstanding_work.tracked)),
        handler_(std::move(h)) {}

  completion_holder(completion_holder&&) = default;

  Handler& handler() noexcept { return handler_; }
  DefaultExecutor const& io_executor() const noexcept { return io_ex_; }

  template <class... Args>
  void post(Args&&... args) noexcept {
    try {
      auto ex = std::move(work_);
      boost::asio::post(ex, boost::asio::append(std::move(handler_), std::forward<Args>(args)...));
    } catch (...) {
      // Posting allocates; a completion that cannot be delivered would hang its waiter.
      std::terminate();
    }
  }

 private:
  DefaultExecutor io_ex_;
  work_executor work_;
  Handler handler_;
};

}  // namespace crew::detail

#endif
