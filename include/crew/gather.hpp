//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_GATHER_HPP
#define CREW_GATHER_HPP

#include <crew/config.hpp>
#include <crew/detail/group_core.hpp>
#include <crew/detail/task.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/is_executor.hpp>

#include <concepts>
#include <cstddef>
#include <exception>
#include <memory>
#include <ranges>
#include <string>
#include <type_traits>
#include <vector>

namespace crew {

/** Options of `async_gather`. Designated initializers keep call sites readable. */
struct gather_options {
  /// The most items that run at once, at least 1, or `crew::unlimited`. The range is
  /// pulled lazily: an element is made only when its item gets a slot.
  std::size_t limit = unlimited;
  /// `collect_all` (default): every item runs to its end. `cancel_on_first`: the first
  /// failure cancels the running items and stops pulling the range.
  failure_policy policy = failure_policy::collect_all;
  /// The items' task name: shown in their failures and in the runtime's task dump.
  std::string name{};
  /// The most failures kept, at least 1, or `crew::unlimited`; past it a failure is
  /// counted (`task_errors::dropped()`) and printed at once, as a task group's.
  std::size_t keep_failures = unlimited;
};

namespace detail {

/// The value type of a range element a gather cannot run: keeps the completion
/// signature well-formed so that `check_gather_element` can say what is wrong.
struct bad_gather_element {};

/** What a gather's range element may be: an `awaitable<T>`, or a callable taking no
    arguments that returns one. */
template <class E>
struct gather_element_traits {
  static constexpr bool is_awaitable = awaitable_traits<E>::value;

  static auto awaitable_type_of() {
    if constexpr (is_awaitable)
      return std::type_identity<E>{};
    else if constexpr (std::is_invocable_v<E&>)
      return std::type_identity<std::remove_cvref_t<std::invoke_result_t<E&>>>{};
    else
      return std::type_identity<void>{};
  }
  using awaitable_type = typename decltype(awaitable_type_of())::type;
  static constexpr bool shape_ok = awaitable_traits<awaitable_type>::value;

  static auto value_type_of() {
    if constexpr (shape_ok)
      return std::type_identity<typename awaitable_traits<awaitable_type>::result_type>{};
    else
      return std::type_identity<bad_gather_element>{};
  }
  /// The awaitable's result, or bad_gather_element.
  using value_type = typename decltype(value_type_of())::type;
};

/// What a gather holds of its range: an lvalue is referenced, an rvalue moved in. (Not
/// std::views::all: clang 14 cannot compile libstdc++ 12's views.)
template <class Range>
using gather_held_t =
    std::conditional_t<std::is_lvalue_reference_v<Range>, std::remove_reference_t<Range>,
                       std::remove_cvref_t<Range>>;

/// What a gather iterates: an lvalue of the range it holds.
template <class Range>
using gather_view_t = gather_held_t<Range>&;

/// Whether `Range` can be held: an lvalue, or an rvalue that can be moved in.
template <class Range>
concept gather_holdable = std::is_lvalue_reference_v<Range> ||
    std::is_constructible_v<std::remove_cvref_t<Range>, Range &&>;

template <class View>
using gather_element_t = std::remove_cvref_t<std::ranges::range_reference_t<View>>;

template <class Range>
using gather_value_t =
    typename gather_element_traits<gather_element_t<gather_view_t<Range>>>::value_type;

/// Ill-formed for an element type that is not void: keeps `std::vector<void>` out of
/// the signature; the static_asserts then say what is wrong.
template <class T>
struct gather_result_vector {
  using type = std::vector<T>;
};
template <>
struct gather_result_vector<void> {
  using type = std::vector<bad_gather_element>;
};

/// `void(std::exception_ptr, std::vector<T>)`.
template <class Range>
using gather_signature_t = void(std::exception_ptr,
                                typename gather_result_vector<gather_value_t<Range>>::type);

/// Checks, with clear messages, what the range holds.
template <class View>
constexpr void check_gather_range() {
  using element_type = gather_element_t<View>;
  using traits = gather_element_traits<element_type>;
  static_assert(traits::shape_ok,
                "crew::async_gather: a range element is a boost::asio::awaitable<T>, or a callable "
                "taking no arguments that returns one");
  if constexpr (traits::shape_ok) {
    using awaitable_type = typename traits::awaitable_type;
    using value_type = typename traits::value_type;
    static_assert(std::is_same_v<typename awaitable_traits<awaitable_type>::executor_type,
                                 net::any_io_executor>,
                  "crew::async_gather: an item's awaitable runs on net::any_io_executor (the "
                  "default of net::awaitable)");
    static_assert(!std::is_void_v<value_type>,
                  "crew::async_gather: items of awaitable<void> produce no values; run them in a "
                  "crew::task_group with a limit (task_group_options::limit) instead");
    if constexpr (!std::is_void_v<value_type>) {
      static_assert(std::is_default_constructible_v<value_type>,
                    "crew::async_gather: the value type T of awaitable<T> must be "
                    "default-constructible: a failed item's slot holds T{}");
      static_assert(std::is_move_constructible_v<value_type>,
                    "crew::async_gather: the value type T of awaitable<T> must be "
                    "move-constructible");
    }
    static_assert(
        std::is_constructible_v<element_type, std::ranges::range_rvalue_reference_t<View>>,
        "crew::async_gather: elements are moved out of the range; pass a non-const range "
        "of awaitables (or of copyable callables)");
  }
}

/// Whether check_gather_range passes: async_gather compiles nothing more when it fails,
/// so that its static_assert is the only error.
template <class View>
constexpr bool gather_range_ok() {
  using element_type = gather_element_t<View>;
  using traits = gather_element_traits<element_type>;
  if constexpr (!traits::shape_ok) {
    return false;
  } else {
    using value_type = typename traits::value_type;
    if constexpr (std::is_void_v<value_type>)
      return false;
    else
      return std::is_same_v<
                 typename awaitable_traits<typename traits::awaitable_type>::executor_type,
                 net::any_io_executor> &&
             std::is_default_constructible_v<value_type> &&
             std::is_move_constructible_v<value_type> &&
             std::is_constructible_v<element_type, std::ranges::range_rvalue_reference_t<View>>;
  }
}

/// An executor (Asio's or a standard-executor), or an execution context.
template <class T>
concept gather_target = std::is_convertible_v < std::remove_reference_t<T>
&, net::execution_context& > || net::execution::is_executor<std::decay_t<T>>::value ||
       net::is_executor<std::decay_t<T>>::value;

template <class T,
          bool = std::is_convertible_v<std::remove_reference_t<T>&, net::execution_context&>>
struct gather_executor {
  using type = std::decay_t<T>;
};
template <class T>
struct gather_executor<T, true> {
  using type = typename std::remove_cvref_t<T>::executor_type;
};

/// The executor of `async_gather(ex, ...)`'s first argument.
template <class T>
using gather_executor_t = typename gather_executor<T>::type;

template <class T>
gather_executor_t<T> gather_executor_of(T&& t) {
  if constexpr (std::is_convertible_v<std::remove_reference_t<T>&, net::execution_context&>)
    return t.get_executor();
  else
    return std::forward<T>(t);
}

template <class T>
concept not_gather_options = !std::is_same_v<std::remove_cvref_t<T>, gather_options>;

/** Who a gather's items are: their name, the call site, and the initiator (its id and
    context), so that an item spawned by the item before it is not its child. */
struct gather_identity {
  std::string name;
  source_location site;
  std::uint64_t parent_id = 0;
  task_context context;

  /// The identity of the gather called now, from `current_task()` (or none).
  static gather_identity capture(std::string name, source_location site);

  /// The spec of item `index`. The identity must outlive the task's making.
  task_spec spec(std::size_t index) const;
};

/// Checks the options and makes the core that owns the items (kind "gather").
/// @throws std::invalid_argument naming the field if an option is out of range.
std::shared_ptr<group_core> make_gather_core(net::any_io_executor ex,
                                             gather_options const& options);

template <class T, class Range>
class gather_state;

template <class Executor>
class initiate_gather;

}  // namespace detail

/** Runs every awaitable of `range` as a crew task, at most `options.limit` at once, and
    completes with their values in input order.

    Each element is an `awaitable<T>` or a callable returning one (called inside its
    item's task and kept alive until that ends). The range is pulled lazily, one element
    when its item gets a slot: a lazy view such as `std::views::iota(0, n) |
    std::views::transform(make_job)` never makes more than about `limit` coroutine frames
    at once. An lvalue range is referenced and must outlive the operation; an rvalue range
    is moved into it. Elements are moved out of the range.

    Every item is a crew task (kind "gather", named `options.name`): the runtime's hooks,
    statistics and task dump see it; its parent is the task that called async_gather.

    @param ex An executor, or an execution context such as an io_context: the items run
    on it.
    @param site Defaults to the caller's location; each item's failure names it.

    @par Completion signature
    `void(std::exception_ptr, std::vector<T>)`: the values in input order, for every
    element pulled; an item that failed (or was cancelled) leaves `T{}` in its slot, and
    the values of the others are kept. The exception is null if no item failed, else a
    `crew::task_errors` whose failures carry their item's `index`. An exception thrown by
    the range itself (`begin`, `++it`, `*it`) is the failure of the item it was making and
    ends the iteration. An empty range completes at once (through the executor, never
    inside the call) with an empty vector.

    @par Per-operation cancellation
    All types. Cancelling cancels the running items and stops pulling the range; the
    operation completes once they ended, with `operation_aborted` (a
    `boost::system::system_error`) unless some item really failed, in which case it
    completes with the `task_errors`; the values gathered so far come with either.

    @throws std::invalid_argument if `options.limit` or `options.keep_failures` is 0.
*/
template <class ExecutorOrContext, std::ranges::input_range Range,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::gather_signature_t<Range>)
              CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(
                  detail::gather_executor_t<ExecutorOrContext>)>
requires detail::gather_target<ExecutorOrContext> && detail::gather_holdable<Range>
auto async_gather(ExecutorOrContext&& ex, Range&& range, gather_options options,
                  CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(
                      detail::gather_executor_t<ExecutorOrContext>),
                  source_location site = source_location::current());

/// `async_gather(ex, range, token)`: with the default options (no limit, collect all).
template <class ExecutorOrContext, std::ranges::input_range Range,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::gather_signature_t<Range>)
              CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(
                  detail::gather_executor_t<ExecutorOrContext>)>
requires detail::gather_target<ExecutorOrContext> && detail::gather_holdable<Range> &&
    detail::not_gather_options<CompletionToken>
auto async_gather(ExecutorOrContext&& ex, Range&& range,
                  CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(
                      detail::gather_executor_t<ExecutorOrContext>),
                  source_location site = source_location::current());

}  // namespace crew

#include <crew/impl/gather.hpp>

#endif
