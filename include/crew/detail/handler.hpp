//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Small pieces every component shares: the stored completion handler, keyed
// cancellation, and the intrusive list.
//
#ifndef CREW_DETAIL_HANDLER_HPP
#define CREW_DETAIL_HANDLER_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <cstdint>
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

/// `f(handler)` as a completion handler with `handler`'s associated executor,
/// allocator and cancellation slot.
template <class Handler, class F>
struct call_with {
  Handler handler;
  F f;
  void operator()() { std::move(f)(std::move(handler)); }
};

/** A completion handler waiting to be called: it keeps its executor busy meanwhile,
    and is always invoked through that executor, never inside the call that completes it.

    The one way crew stores a handler. `completion_holder<Handler, Executor>` where the
    handler's type is known (a hot path), `stored_handler<Signature>` (an
    `any_completion_handler`) behind compiled code. Move-constructed only: Asio 1.26's
    `any_completion_handler` must never be move-assigned (DESIGN §2).
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
  completion_holder& operator=(completion_holder&&) = delete;

  Handler& handler() noexcept { return handler_; }
  DefaultExecutor const& io_executor() const noexcept { return io_ex_; }

  /// Posts the handler with `args` through its executor. Called once.
  template <class... Args>
  void post(Args&&... args) noexcept {
    post_call([... args = std::forward<Args>(args)](Handler h) mutable {
      std::move(h)(std::move(args)...);
    });
  }

  /// Posts `f(handler)` through the handler's executor: for what must happen when, and
  /// only when, the handler is invoked. Called once, instead of post.
  template <class F>
  void post_call(F&& f) noexcept {
    try {
      // post() dispatches to the handler's associated executor, holding work on it
      // until then; the holder's own work guard can go once the post is made.
      auto work = std::move(work_);
      boost::asio::post(
          io_ex_, call_with<Handler, std::decay_t<F>>{std::move(handler_), std::forward<F>(f)});
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

template <class Signature>
using stored_handler =
    completion_holder<boost::asio::any_completion_handler<Signature>, boost::asio::any_io_executor>;

/** Installed in an operation's cancellation slot: `Target::cancel_key(key, type)` on
    the target, if it still exists. It holds no pointer to the operation, so an emission
    after the operation completed finds no key and does nothing.
*/
template <class Target>
struct keyed_cancellation {
  std::weak_ptr<Target> target;
  std::uint64_t key;

  void operator()(boost::asio::cancellation_type type) const {
    if (type == boost::asio::cancellation_type::none) return;
    if (auto t = target.lock()) t->cancel_key(key, type);
  }
};

/** A doubly linked list threaded through `T::prev_` and `T::next_`; it owns nothing. */
template <class T>
class intrusive_list {
 public:
  bool empty() const noexcept { return first_ == nullptr; }
  T* front() const noexcept { return first_; }

  void push_front(T* n) noexcept { link(n, nullptr, first_); }
  void push_back(T* n) noexcept { link(n, last_, nullptr); }

  void erase(T* n) noexcept {
    (n->prev_ ? n->prev_->next_ : first_) = n->next_;
    (n->next_ ? n->next_->prev_ : last_) = n->prev_;
    n->prev_ = n->next_ = nullptr;
  }

  T* pop_front() noexcept {
    T* n = first_;
    if (n) erase(n);
    return n;
  }

 private:
  /// Links `n` between `prev` and `next` (null: the ends).
  void link(T* n, T* prev, T* next) noexcept {
    n->prev_ = prev;
    n->next_ = next;
    (prev ? prev->next_ : first_) = n;
    (next ? next->prev_ : last_) = n;
  }

  T* first_ = nullptr;
  T* last_ = nullptr;
};

}  // namespace crew::detail

template <template <class, class> class Associator, class Handler, class F, class DefaultCandidate>
struct boost::asio::associator<Associator, crew::detail::call_with<Handler, F>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      crew::detail::call_with<Handler, F> const& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }

  static auto get(crew::detail::call_with<Handler, F> const& h, DefaultCandidate const& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

#endif
