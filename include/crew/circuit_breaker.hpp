//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_CIRCUIT_BREAKER_HPP
#define CREW_CIRCUIT_BREAKER_HPP

#include <crew/clock.hpp>
#include <crew/config.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>

namespace crew {

/** Where a circuit breaker is. */
enum class circuit_state {
  /// Calls run; their outcomes are counted, and `trip` may open the circuit.
  closed,
  /// On trial: up to `max_half_open` calls run; one failure opens the circuit again,
  /// `max_half_open` successes in a row close it.
  half_open,
  /// Calls fail fast with `crew::error::circuit_open` until `open_timeout` has passed.
  open,
};

/// "closed", "half-open" or "open" ("unknown" for a value out of range).
char const* to_string(circuit_state s) noexcept;

/// Prints `to_string(s)`.
std::ostream& operator<<(std::ostream& os, circuit_state s);

/** What a circuit breaker counted since its current generation began: the last change
    of state, or in the closed state the last `interval` (or, with `bucket_period`, the
    buckets of the rolling window). As gobreaker's `Counts`.
*/
struct circuit_counts {
  /// Calls let through (those still running included).
  std::uint64_t requests = 0;
  std::uint64_t total_successes = 0;
  std::uint64_t total_failures = 0;
  /// Calls that ended as `is_excluded` says, or were cancelled.
  std::uint64_t total_exclusions = 0;
  std::uint64_t consecutive_successes = 0;
  std::uint64_t consecutive_failures = 0;

  friend bool operator==(circuit_counts const&, circuit_counts const&) = default;
};

/// Prints the counts as `{requests 3, successes 1, failures 2, exclusions 0, consecutive
/// successes 0, consecutive failures 2}`.
std::ostream& operator<<(std::ostream& os, circuit_counts const& c);

/** Settings of a `crew::circuit_breaker`, as gobreaker v2's `Settings`. An aggregate:
    designated initializers keep call sites readable. Checked by the breaker's
    constructor, which throws `std::invalid_argument` naming the bad field.
*/
struct circuit_breaker_settings {
  /// The breaker's name: passed to `on_state_change`, shown in reports and task dumps.
  std::string name{};
  /// How many calls the half-open state lets through, and how many successes in a row
  /// close it again; 0 means 1.
  std::size_t max_half_open = 1;
  /// The cyclic period of the closed state after which the counts are cleared (a new
  /// generation). Zero (the default) or `duration::max()`: never cleared. Not negative.
  crew::clock::duration interval = crew::clock::duration::zero();
  /// With a positive value, the closed state counts in a rolling window of `interval`
  /// (rounded up to a multiple of `bucket_period`) made of buckets this long: the
  /// oldest bucket's counts drop out as time moves on, instead of all being cleared
  /// at once. Zero (the default): the fixed window of `interval`. Needs a finite,
  /// positive `interval`, and at most 65,536 buckets. Not negative.
  crew::clock::duration bucket_period = crew::clock::duration::zero();
  /// How long the open state lasts before the breaker lets trial calls through
  /// (half-open); zero means 60 s, `duration::max()` means never. Not negative.
  crew::clock::duration open_timeout = std::chrono::seconds(60);
  /// Called with the counts after each failure in the closed state: true opens the
  /// circuit. Empty (the default): `consecutive_failures > 5`. Called under the
  /// breaker's lock: it must not call the breaker.
  std::function<bool(circuit_counts const&)> trip{};
  /// Whether an outcome counts as a success: called with what the call threw (a
  /// returned non-zero code as a `boost::system::system_error`), or null when it
  /// returned normally. Empty (the default): success when null.
  std::function<bool(std::exception_ptr const&)> is_successful{};
  /// Whether an outcome counts neither as a success nor as a failure (asked before
  /// `is_successful`); an excluded call frees its half-open slot. Empty: none.
  std::function<bool(std::exception_ptr const&)> is_excluded{};
  /// Called after each change of state, with the breaker's name, in the order of the
  /// changes, one call at a time, outside the breaker's lock.
  std::function<void(std::string const& name, circuit_state from, circuit_state to)>
      on_state_change{};
  /// The clock that times `interval`, `bucket_period` and `open_timeout`; null (the
  /// default) is `crew::clock::steady()`. Tests pass a `crew::manual_clock`. It must
  /// outlive the breaker.
  crew::clock* clock = nullptr;
};

class circuit_breaker;

namespace detail {

class breaker_state;  // lib/circuit_breaker.cpp
struct breaker_access;

/// What a call was let through under: outcomes of an older generation, or of a bucket
/// that left the rolling window, are not counted.
struct breaker_ticket {
  std::uint64_t generation = 0;
  std::uint64_t age = 0;
};

}  // namespace detail

/** A call let through by `circuit_breaker::allow`, whose outcome the caller reports:
    gobreaker's two-step breaker. Move-only.

    Report the outcome once with `done`; a permit dropped without it counts as excluded
    (it frees its half-open slot and counts neither way). An empty permit (default
    constructed, moved from, already done, or refused by `allow(ec)`) ignores `done`.
*/
class circuit_permit {
 public:
  circuit_permit() noexcept = default;
  circuit_permit(circuit_permit&& o) noexcept = default;
  circuit_permit& operator=(circuit_permit&& o) noexcept;
  circuit_permit(circuit_permit const&) = delete;
  circuit_permit& operator=(circuit_permit const&) = delete;
  /// Counts the call as excluded, if it was not reported.
  ~circuit_permit();

  /// Whether it holds a call not reported yet.
  explicit operator bool() const noexcept { return state_ != nullptr; }

  /// The call returned normally: asks `is_excluded` and `is_successful` with null.
  void done();
  /// The call ended with `e` (null: normally), classified by `is_excluded` and
  /// `is_successful` as a call's outcome is.
  void done(std::exception_ptr const& e);
  /// The call ended with `ec`: a non-zero code is classified as a call returning it is.
  void done(boost::system::error_code const& ec);

 private:
  friend struct detail::breaker_access;
  void release() noexcept;

  std::shared_ptr<detail::breaker_state> state_;
  detail::breaker_ticket ticket_;
};

namespace detail {

template <class E>
concept breaker_executor = net::execution::executor<E> || net::is_executor<E>::value;

/** What a call's factory returns, and the completion signature that follows. */
template <class F>
struct breaker_call_traits {
  using fn_type = std::decay_t<F>;

  static auto awaitable_type_of() {
    if constexpr (std::is_invocable_v<fn_type&>)
      return std::type_identity<std::remove_cvref_t<std::invoke_result_t<fn_type&>>>{};
    else
      return std::type_identity<void>{};
  }
  using awaitable_type = typename decltype(awaitable_type_of())::type;

  static constexpr bool is_awaitable = awaitable_traits<awaitable_type>::value;

  static auto result_type_of() {
    if constexpr (is_awaitable)
      return std::type_identity<typename awaitable_traits<awaitable_type>::result_type>{};
    else
      return std::type_identity<void>{};
  }
  /// The awaitable's result; void for a factory crew cannot run (a static_assert says why).
  using result_type = typename decltype(result_type_of())::type;

  /// A non-zero code returned is a failure, and crew's conditions come as codes.
  static constexpr bool returns_code = std::is_same_v<result_type, boost::system::error_code> ||
                                       std::is_same_v<result_type, std::error_code>;

  static auto signature_of() {
    if constexpr (std::is_void_v<result_type>)
      return std::type_identity<void(std::exception_ptr)>{};
    else
      return std::type_identity<void(std::exception_ptr, result_type)>{};
  }
  using signature = typename decltype(signature_of())::type;
};

/// `void(std::exception_ptr)` or `void(std::exception_ptr, T)`.
template <class F>
using breaker_signature_t = typename breaker_call_traits<F>::signature;

}  // namespace detail

/** A call's factory: a callable taking no arguments that returns the call's awaitable,
    `net::awaitable<void>`, `net::awaitable<T>`, or `net::awaitable<boost::system::
    error_code>` (or `std::error_code`), where a non-zero code is a failure. */
template <class F>
concept circuit_call = std::is_invocable_v < std::decay_t<F>
& > ;

/** A circuit breaker, as gobreaker v2's: it lets calls through while they succeed,
    fails them fast once `trip` says the failures are too many (open), lets a few trial
    calls through after `open_timeout` (half-open), and closes again when they succeed.

    All member functions may be called from any thread; the state sits behind a mutex.
    Calls in flight share that state: destroying the breaker is safe at any time. The
    calls run on and complete as they would, but their outcomes are no longer counted
    and none of the settings' callbacks is called any more; the destructor waits only
    for a callback running on another thread to return. Neither copyable nor movable:
    hold it in a `std::unique_ptr` or `std::shared_ptr` to pass it around.
*/
class circuit_breaker {
 public:
  /// A breaker with the default settings: no name, one trial call, counts never
  /// cleared while closed, open for 60 s, trips after 6 failures in a row.
  circuit_breaker();

  /// @throws std::invalid_argument naming the field if `interval`, `bucket_period` or
  /// `open_timeout` is negative, or `bucket_period` does not fit `interval`.
  explicit circuit_breaker(circuit_breaker_settings const& settings);

  circuit_breaker(circuit_breaker const&) = delete;
  circuit_breaker& operator=(circuit_breaker const&) = delete;
  ~circuit_breaker();

  /// The settings' name.
  std::string const& name() const noexcept;

  /// The state now: an open breaker whose `open_timeout` has passed turns half-open
  /// here (and `on_state_change` is called), as gobreaker's `State()`.
  circuit_state state() const;

  /// The counts now; like `state()`, first applies what the time says (a cleared
  /// interval, a rolled bucket, the end of `open_timeout`).
  circuit_counts counts() const;

  /** Lets a call through, or throws why not: gobreaker's `TwoStepCircuitBreaker::Allow`.
      Report the call's outcome on the permit.
      @throws boost::system::system_error with `crew::error::circuit_open` while open,
      or `crew::error::too_many_requests` while half-open with `max_half_open` calls
      let through and not excluded.
  */
  circuit_permit allow();

  /// As above, but sets `ec` instead of throwing and returns an empty permit.
  circuit_permit allow(boost::system::error_code& ec);

  /** Runs a call through the breaker.

      If the breaker is open, or half-open with `max_half_open` calls let through, the
      call completes at once (always posted, never inside this call) with
      `crew::error::circuit_open` or `crew::error::too_many_requests`, and `factory` is
      destroyed without being called. Otherwise the call runs as a crew task on `ex`,
      spawned at `site`, a child of the task that called `async_call`: the task calls
      `factory()` and awaits what it returns. Its outcome is counted (see
      `circuit_breaker_settings`) and then delivered, as it ended: an exception is never
      swallowed.

      @param factory The call's factory (see `crew::circuit_call`), moved or copied into
      the operation.

      @throws std::invalid_argument naming `factory` if it is a null function pointer
      or an empty std::function, before anything starts.

      @par Completion signature
      As `co_spawn`'s for the awaitable `factory` returns:
      - `awaitable<void>`: `void(std::exception_ptr)`: null on success, else what the
        call threw, or a `boost::system::system_error` holding `circuit_open`,
        `too_many_requests` or `operation_aborted`.
      - `awaitable<T>`: `void(std::exception_ptr, T)`: the same, and the value (`T{}`
        when there is none; `T` must be default-constructible).
      - `awaitable<boost::system::error_code>` (or `std::error_code`):
        `void(std::exception_ptr, boost::system::error_code)` (or `std::error_code`):
        the code the call returned, or `circuit_open`, `too_many_requests` or
        `operation_aborted` as the code; the pointer holds only what the call threw.
      An operation launched after its breaker was destroyed (a `deferred` one) completes
      with `crew::error::shut_down`, delivered as the refusals are.

      @par Per-operation cancellation
      All types, through the handler's cancellation slot: each cancels the call's task
      (terminal). A call that then ends with `operation_aborted` completes with it and
      is counted as excluded: neither a success nor a failure, and its half-open slot
      is freed. A call that ends otherwise despite the cancellation is counted as it
      ended. Cancelled before its task started, the call never calls `factory`.
  */
  template <detail::breaker_executor Executor, circuit_call F,
            BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::breaker_signature_t<F>)
                CompletionToken = net::default_completion_token_t<Executor>>
  auto async_call(Executor const& ex, F&& factory,
                  CompletionToken&& token = net::default_completion_token_t<Executor>(),
                  source_location site = source_location::current());

  /** As above, on the completion handler's associated executor: for `use_awaitable`,
      the awaiting coroutine's. A plain callback or `use_future` has none, so Asio's
      system executor would run the call on threads of its own: pass an executor for
      those.
  */
  template <circuit_call F,
            BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::breaker_signature_t<F>) CompletionToken>
  auto async_call(F&& factory, CompletionToken&& token,
                  source_location site = source_location::current());

 private:
  friend struct detail::breaker_access;

  std::shared_ptr<detail::breaker_state> state_;
};

/** Runs a call through `breaker` as a crew task that nobody waits for, as `crew::go`
    does: routine's `GoWithCircuitBreaker`. The breaker decides at once; the task then
    either runs the call (calls `factory()` and awaits it; its outcome is counted as
    `async_call`'s) or, when the breaker refused it, returns `circuit_open` or
    `too_many_requests`. A failure, the refusal included, reaches the runtime's failure
    path as a `go` task's does (a returned code the error handler, a thrown exception the
    exception handler, stderr by default), reported by the owner "circuit breaker" with
    the breaker's name. The call shares the breaker's state: the breaker may be
    destroyed before the call ends.

    @param factory A callable taking no arguments that returns `net::awaitable<void>` or
    `net::awaitable<error_code>`, as `crew::go` takes.

    @throws std::invalid_argument naming `factory` if it is a null function pointer or
    an empty std::function.
*/
template <detail::breaker_executor Executor, class F>
void go_with_circuit_breaker(Executor const& ex, F&& factory, circuit_breaker& breaker,
                             source_location site = source_location::current());

}  // namespace crew

#include <crew/impl/circuit_breaker.hpp>

#endif
