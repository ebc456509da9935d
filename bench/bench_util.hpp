//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// What the benchmark suites share.
//
#ifndef CREW_BENCH_BENCH_UTIL_HPP
#define CREW_BENCH_BENCH_UTIL_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace crew_bench {

namespace net = boost::asio;

/// A completion handler waiting to be posted through its associated executor, as
/// crew's wait does. Type-erased once per wait, never per task.
class pending_handler {
 public:
  template <class Handler>
  pending_handler(Handler&& h, net::any_io_executor const& io_ex)
      : ex_(net::get_associated_executor(h, io_ex)), handler_(std::forward<Handler>(h)) {}

  // Move-construct only: move-assigning an any_completion_handler recurses in Asio 1.26.
  pending_handler(pending_handler&&) = default;
  pending_handler& operator=(pending_handler&&) = delete;

  explicit operator bool() const noexcept { return static_cast<bool>(handler_); }

  void post() && { net::post(ex_, std::move(handler_)); }

 private:
  net::any_io_executor ex_;
  net::any_completion_handler<void()> handler_;
};

}  // namespace crew_bench

#endif
