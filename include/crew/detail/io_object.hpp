//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_IO_OBJECT_HPP
#define CREW_DETAIL_IO_OBJECT_HPP

#include <crew/config.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace crew::detail {

/// What crew's objects are constructed on: an `Executor` (or what converts to one), or
/// an execution context such as an io_context, whose executor they take.
template <class T, class Executor>
concept executor_or_context =
    std::is_convertible_v<T, Executor> || std::is_convertible_v < std::remove_reference_t<T>
&, net::execution_context& > ;

template <class Executor, class T>
Executor executor_from(T&& t) {
  if constexpr (std::is_convertible_v<T, Executor>)
    return Executor(std::forward<T>(t));
  else
    return Executor(t.get_executor());
}

class runnable;

/// How io_object and run_object reach the private parts of the object they are a base of:
/// `static State make_state(Executor const&, Options)`, and the `runnable` that a
/// run_object runs: its state, or what its `runnable_state()` returns.
struct io_access {
  template <class Object, class Executor, class Options>
  static auto make_state(Executor const& ex, Options&& options) {
    return Object::make_state(ex, std::forward<Options>(options));
  }

  template <class Object>
  static runnable& runnable_state(Object& object) {
    if constexpr (std::is_base_of_v<runnable, std::remove_cvref_t<decltype(object.state_)>>)
      return object.state_;
    else
      return object.runnable_state();
  }
};

/** What crew's executor-generic objects have in common with Asio's I/O objects: the
    executor type, its rebind, `get_executor()`, and the constructor from an executor or
    an execution context plus the object's options. The object's state, which the
    options configure, is `state_`, made by the object's `make_state`.
*/
template <template <class> class Object, class Executor, class Options, class State>
class io_object {
 public:
  using executor_type = Executor;

  /// Rebinds the object to another executor type.
  template <class OtherExecutor>
  struct rebind_executor {
    using other = Object<OtherExecutor>;
  };

  executor_type get_executor() const noexcept { return ex_; }

  /// On `ex`: an executor, or an execution context such as an io_context, whose
  /// executor it takes; with the object's default options.
  template <executor_or_context<Executor> E>
  explicit io_object(E&& ex) : io_object(std::forward<E>(ex), Options{}) {}

  /// The same, with `options`. Two constructors, not a defaulted parameter: g++ 12
  /// destroys a defaulted argument twice when the call also holds a co_await
  /// (DESIGN §2), as in `crew::task_group g{co_await this_coro::executor};`.
  template <executor_or_context<Executor> E>
  io_object(E&& ex, Options options)
      : ex_(executor_from<Executor>(std::forward<E>(ex))),
        state_(io_access::make_state<Object<Executor>>(ex_, std::move(options))) {}

 protected:
  executor_type ex_;
  State state_;
};

using run_handler = net::any_completion_handler<void(std::exception_ptr)>;

/// What runs behind a run_object: a run group's state, a supervisor's; compiled in lib/.
class runnable {
 public:
  /// Starts a run on `ex` that completes `handler` once, with its result.
  virtual void start_run(net::any_io_executor const& ex, run_handler handler) = 0;

 protected:
  ~runnable() = default;
};

/// The initiation of async_run, as Asio's own initiations are.
template <class Executor>
class initiate_run {
 public:
  using executor_type = Executor;

  initiate_run(Executor const& ex, runnable& target) : ex_(ex), target_(&target) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler) const {
    target_->start_run(net::any_io_executor(ex_), run_handler(std::forward<Handler>(handler)));
  }

 private:
  Executor ex_;
  runnable* target_;
};

/** An io_object whose operation is a run (a run group, a loop, a supervisor): `Object`
    gives its `runnable` through `runnable_state()`; its own documentation says what a
    run does and what it completes with.
*/
template <template <class> class Object, class Executor, class Options, class State>
class run_object : public io_object<Object, Executor, Options, State> {
 public:
  /** Runs until the object's run is over (see the class).

      @par Completion signature
      `void(std::exception_ptr)`: null, or the run's failure, as the class describes.

      @par Per-operation cancellation
      All types: the run is interrupted (cancelled), and completes once everything it
      started has ended.
  */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(Executor)>
  auto async_run(CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(Executor)) {
    auto& self = static_cast<Object<Executor>&>(*this);
    return net::async_initiate<CompletionToken, void(std::exception_ptr)>(
        initiate_run<Executor>(this->ex_, io_access::runnable_state(self)), token);
  }

  /// `co_await x.run()`: the awaitable form of async_run; throws what it reports.
  template <class AwaitableExecutor = net::any_io_executor>
  net::awaitable<void, AwaitableExecutor> run() {
    return async_run(net::use_awaitable_t<AwaitableExecutor>{});
  }

  using io_object<Object, Executor, Options, State>::io_object;
};

}  // namespace crew::detail

#endif
