//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_CIRCUIT_BREAKER_HPP
#define CREW_IMPL_CIRCUIT_BREAKER_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <optional>
#include <utility>
#include <variant>

namespace crew {
namespace detail {

/// What compiled code completes a call with: what the call threw, or the exception a
/// refusal, a cancellation or a returned code stands for; and that code, if any.
using breaker_handler =
    net::any_completion_handler<void(std::exception_ptr, boost::system::error_code)>;

struct breaker_access {
  static std::shared_ptr<breaker_state> const& state(circuit_breaker const& b) noexcept {
    return b.state_;
  }

  static std::shared_ptr<breaker_state> const& state(circuit_permit const& p) noexcept {
    return p.state_;
  }

  static circuit_permit make_permit(std::shared_ptr<breaker_state> s, breaker_ticket t) noexcept {
    circuit_permit p;
    p.state_ = std::move(s);
    p.ticket_ = t;
    return p;
  }

  /// Gives the permit back without an outcome: counted as excluded.
  static void release(circuit_permit& p) noexcept { p.release(); }
};

/// Lets a call through: a permit; or an empty one, and why not in `ec`.
circuit_permit breaker_admit(std::shared_ptr<breaker_state> const& s,
                             boost::system::error_code& ec);

/// The exception a refusal (`circuit_open`, `too_many_requests`) is delivered as: made
/// once per breaker, naming it.
std::exception_ptr breaker_refusal(breaker_state const& s,
                                   boost::system::error_code const& ec) noexcept;

/// Runs `body` as the call's task, counts its outcome on `permit`, then posts `handler`.
void start_breaker_call(circuit_permit&& permit, net::any_io_executor const& ex, task_body&& body,
                        source_location site, breaker_handler&& handler);

/// go_with_circuit_breaker's body, compiled.
void start_breaker_go(std::shared_ptr<breaker_state> const& s, net::any_io_executor const& ex,
                      task_body&& body, source_location site);

/// Throws `std::invalid_argument`: "<who>: factory <what>".
[[noreturn]] void throw_bad_factory(char const* who, char const* what);

/// Refuses a factory that cannot be called: a null function pointer, an empty
/// std::function.
template <class T>
void check_factory(T const& f, char const* who) {
  if constexpr (std::is_pointer_v<T>) {
    if (f == nullptr) throw_bad_factory(who, "is a null function pointer");
  } else if constexpr (is_std_function<T>::value) {
    if (!f) throw_bad_factory(who, "is an empty std::function");
  }
}

/// Whether a call of `Traits` can run; check_breaker_call says why not.
template <class Traits>
constexpr bool breaker_call_ok() {
  if constexpr (!Traits::is_awaitable) {
    return false;
  } else {
    using R = typename Traits::result_type;
    return std::is_same_v<typename awaitable_traits<typename Traits::awaitable_type>::executor_type,
                          net::any_io_executor> &&
           (std::is_void_v<R> || (std::is_default_constructible_v<R> &&
                                  std::is_move_constructible_v<R> && !std::is_reference_v<R>));
  }
}

template <class Traits>
constexpr void check_breaker_call() {
  static_assert(Traits::is_awaitable,
                "crew::circuit_breaker::async_call: the factory is a callable taking no arguments "
                "that returns a net::awaitable<T> (T may be void or an error code)");
  if constexpr (Traits::is_awaitable) {
    using R = typename Traits::result_type;
    static_assert(
        std::is_same_v<typename awaitable_traits<typename Traits::awaitable_type>::executor_type,
                       net::any_io_executor>,
        "crew::circuit_breaker::async_call: the call's awaitable runs on net::any_io_executor (the "
        "default of net::awaitable)");
    if constexpr (!std::is_void_v<R>) {
      static_assert(std::is_default_constructible_v<R>,
                    "crew::circuit_breaker::async_call: the value type T of awaitable<T> must be "
                    "default-constructible: a call that fails completes with T{}");
      static_assert(std::is_move_constructible_v<R>,
                    "crew::circuit_breaker::async_call: the value type T of awaitable<T> must be "
                    "move-constructible");
    }
  }
}

/// Where a call of awaitable<T> leaves its value for the completion.
template <class T>
using breaker_value = std::shared_ptr<std::optional<T>>;

struct no_breaker_value {};

template <class Traits, class R = typename Traits::result_type>
struct breaker_slot {
  using type = breaker_value<R>;
  static type make() { return std::make_shared<std::optional<R>>(); }
};

template <class Traits, class R>
requires(std::is_void_v<R> || Traits::returns_code) struct breaker_slot<Traits, R> {
  using type = no_breaker_value;
  static type make() noexcept { return {}; }
};

template <class Traits>
using breaker_slot_t = typename breaker_slot<Traits>::type;

/// The body of a call of awaitable<T>: stores the value for the completion.
template <class T>
net::awaitable<void> store_breaker_value(net::awaitable<T> a, breaker_value<T> out) {
  out->emplace(co_await std::move(a));
}

/// The call's task body: the factory, called inside the task.
template <class Traits, class F>
task_body make_breaker_body(F&& f, breaker_slot_t<Traits> const& slot) {
  using fn_type = typename Traits::fn_type;
  using R = typename Traits::result_type;
  if constexpr (std::is_void_v<R> || Traits::returns_code) {
    (void)slot;
    return std::visit([](auto&& g) -> task_body { return std::move(g); },
                      erase_callable(std::forward<F>(f)));
  } else {
    return void_function([g = fn_type(std::forward<F>(f)), slot]() mutable {
      return store_breaker_value<R>(g(), slot);
    });
  }
}

/** The user's handler, completed as the call's shape says (see `async_call`). */
template <class Handler, class Traits>
struct breaker_completion {
  Handler handler;
  [[no_unique_address]] breaker_slot_t<Traits> slot;

  void operator()(std::exception_ptr e, boost::system::error_code ec) {
    using R = typename Traits::result_type;
    if constexpr (std::is_void_v<R>) {
      (void)ec;
      std::move(handler)(std::move(e));
    } else if constexpr (std::is_same_v<R, boost::system::error_code>) {
      if (ec)
        std::move(handler)(std::exception_ptr(), ec);
      else
        std::move(handler)(std::move(e), ec);
    } else if constexpr (std::is_same_v<R, std::error_code>) {
      if (ec)
        std::move(handler)(std::exception_ptr(), static_cast<std::error_code>(ec));
      else
        std::move(handler)(std::move(e), std::error_code());
    } else {
      (void)ec;
      if (!e && slot && slot->has_value()) {
        R value(std::move(**slot));
        std::move(handler)(std::move(e), std::move(value));
      } else {
        std::move(handler)(std::move(e), R{});
      }
    }
  }
};

/// Admits the call and starts it, or posts its refusal.
template <class Traits, class Handler>
void launch_breaker_call(net::any_io_executor const& ex, std::shared_ptr<breaker_state> const& s,
                         Handler&& handler, task_body&& body, breaker_slot_t<Traits>&& slot,
                         source_location site) {
  using completion = breaker_completion<std::decay_t<Handler>, Traits>;
  boost::system::error_code ec;
  circuit_permit permit = breaker_admit(s, ec);
  completion c{std::forward<Handler>(handler), std::move(slot)};
  if (!permit) {
    // Refused: completes at once, through the handler's executor, never inline.
    net::post(ex, net::append(std::move(c), breaker_refusal(*s, ec), ec));
    return;
  }
  start_breaker_call(std::move(permit), ex, std::move(body), site, breaker_handler(std::move(c)));
}

/// The initiation of async_call on an executor, as Asio's own initiations are.
template <class Executor, class Traits>
class initiate_breaker_call {
 public:
  using executor_type = Executor;

  initiate_breaker_call(Executor const& ex, std::shared_ptr<breaker_state> s)
      : ex_(ex), state_(std::move(s)) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler, task_body&& body, breaker_slot_t<Traits>&& slot,
                  source_location site) const {
    launch_breaker_call<Traits>(net::any_io_executor(ex_), state_, std::forward<Handler>(handler),
                                std::move(body), std::move(slot), site);
  }

 private:
  Executor ex_;
  std::shared_ptr<breaker_state> state_;
};

/// The initiation of async_call on the handler's associated executor.
template <class Traits>
class initiate_breaker_call_on_handler_executor {
 public:
  explicit initiate_breaker_call_on_handler_executor(std::shared_ptr<breaker_state> s)
      : state_(std::move(s)) {}

  template <class Handler>
  void operator()(Handler&& handler, task_body&& body, breaker_slot_t<Traits>&& slot,
                  source_location site) const {
    net::any_io_executor ex = net::get_associated_executor(handler);
    launch_breaker_call<Traits>(ex, state_, std::forward<Handler>(handler), std::move(body),
                                std::move(slot), site);
  }

 private:
  std::shared_ptr<breaker_state> state_;
};

}  // namespace detail

template <detail::breaker_executor Executor, circuit_call F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::breaker_signature_t<F>) CompletionToken>
auto circuit_breaker::async_call(Executor const& ex, F&& factory, CompletionToken&& token,
                                 source_location site) {
  using traits = detail::breaker_call_traits<F>;
  detail::check_breaker_call<traits>();
  if constexpr (detail::breaker_call_ok<traits>()) {
    // Checked before the initiation: with use_awaitable, Asio 1.26 runs it outside the
    // awaiting coroutine, where an exception would escape io_context::run().
    detail::check_factory(factory, "crew::circuit_breaker::async_call");
    auto slot = detail::breaker_slot<traits>::make();
    auto body = detail::make_breaker_body<traits>(std::forward<F>(factory), slot);
    return net::async_initiate<CompletionToken, detail::breaker_signature_t<F>>(
        detail::initiate_breaker_call<Executor, traits>(ex, state_), token, std::move(body),
        std::move(slot), site);
  }
}

template <circuit_call F,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::breaker_signature_t<F>) CompletionToken>
auto circuit_breaker::async_call(F&& factory, CompletionToken&& token, source_location site) {
  using traits = detail::breaker_call_traits<F>;
  detail::check_breaker_call<traits>();
  if constexpr (detail::breaker_call_ok<traits>()) {
    detail::check_factory(factory, "crew::circuit_breaker::async_call");
    auto slot = detail::breaker_slot<traits>::make();
    auto body = detail::make_breaker_body<traits>(std::forward<F>(factory), slot);
    return net::async_initiate<CompletionToken, detail::breaker_signature_t<F>>(
        detail::initiate_breaker_call_on_handler_executor<traits>(state_), token, std::move(body),
        std::move(slot), site);
  }
}

template <detail::breaker_executor Executor, class F>
void go_with_circuit_breaker(Executor const& ex, F&& factory, circuit_breaker& breaker,
                             source_location site) {
  static_assert(std::is_invocable_v<std::decay_t<F>&>,
                "crew::go_with_circuit_breaker: the factory is a callable taking no arguments "
                "that returns net::awaitable<void> or net::awaitable<error_code>");
  detail::check_factory(factory, "crew::go_with_circuit_breaker");
  auto body = std::visit([](auto&& g) -> detail::task_body { return std::move(g); },
                         detail::erase_callable(std::forward<F>(factory)));
  detail::start_breaker_go(detail::breaker_access::state(breaker), net::any_io_executor(ex),
                           std::move(body), site);
}

}  // namespace crew

template <template <class, class> class Associator, class Handler, class Traits,
          class DefaultCandidate>
struct boost::asio::associator<Associator, crew::detail::breaker_completion<Handler, Traits>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      crew::detail::breaker_completion<Handler, Traits> const& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }

  static auto get(crew::detail::breaker_completion<Handler, Traits> const& h,
                  DefaultCandidate const& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

/// A call's erased handler and its completion are allocated as the user's handler says,
/// else by Asio's per-thread recycling allocator (as crew's stored handlers are).
template <class Handler, class Traits, class Allocator>
struct boost::asio::associated_allocator<crew::detail::breaker_completion<Handler, Traits>,
                                         Allocator> {
  using type = boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;

  static type get(crew::detail::breaker_completion<Handler, Traits> const& h) noexcept {
    return boost::asio::get_associated_allocator(h.handler,
                                                 boost::asio::recycling_allocator<void>());
  }

  static type get(crew::detail::breaker_completion<Handler, Traits> const& h,
                  Allocator const&) noexcept {
    return get(h);
  }
};

#endif
