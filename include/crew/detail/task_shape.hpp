//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The task-shape adaptor: the one place that knows what a crew task may look like
// (an awaitable<void> or awaitable<error_code>, or a callable returning one), checks
// it, and erases it into a task_body (run once) or a task_factory (run again and
// again), so that everything behind it is compiled once, in lib/.
//
#ifndef CREW_DETAIL_TASK_SHAPE_HPP
#define CREW_DETAIL_TASK_SHAPE_HPP

#include <crew/config.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <cstddef>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace crew::detail {

// ---------------------------------------------------------------- unique_function

template <class Signature>
class unique_function;

/// A move-only `std::function`: holds callables that cannot be copied, such as a lambda
/// owning a unique_ptr. Small callables live inside it.
template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  unique_function() noexcept = default;

  template <class F>
  requires(!std::is_same_v<std::decay_t<F>, unique_function> &&
           std::is_invocable_r_v<R, std::decay_t<F>&, Args...>) unique_function(F&& f) {
    using stored = std::decay_t<F>;
    if constexpr (fits<stored>) {
      ::new (static_cast<void*>(&buffer_)) stored(std::forward<F>(f));
      table_ = &inline_table<stored>;
    } else {
      *reinterpret_cast<stored**>(&buffer_) = new stored(std::forward<F>(f));
      table_ = &heap_table<stored>;
    }
  }

  unique_function(unique_function&& o) noexcept : table_(std::exchange(o.table_, nullptr)) {
    if (table_) table_->move(&o.buffer_, &buffer_);
  }

  unique_function& operator=(unique_function&& o) noexcept {
    if (this != &o) {
      reset();
      table_ = std::exchange(o.table_, nullptr);
      if (table_) table_->move(&o.buffer_, &buffer_);
    }
    return *this;
  }

  ~unique_function() { reset(); }

  explicit operator bool() const noexcept { return table_ != nullptr; }

  R operator()(Args... args) { return table_->call(&buffer_, std::forward<Args>(args)...); }

 private:
  struct table {
    R (*call)(void*, Args&&...);
    void (*move)(void* from, void* to) noexcept;
    void (*destroy)(void*) noexcept;
  };

  using storage = std::aligned_storage_t<4 * sizeof(void*), alignof(std::max_align_t)>;

  template <class F>
  static constexpr bool fits =
      sizeof(F) <= sizeof(storage) &&
      alignof(std::max_align_t) % alignof(F) == 0 && std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static constexpr table inline_table{[](void* p, Args&&... args) -> R {
                                        return (*static_cast<F*>(p))(std::forward<Args>(args)...);
                                      },
                                      [](void* from, void* to) noexcept {
                                        ::new (to) F(std::move(*static_cast<F*>(from)));
                                        static_cast<F*>(from)->~F();
                                      },
                                      [](void* p) noexcept { static_cast<F*>(p)->~F(); }};

  template <class F>
  static constexpr table heap_table{
      [](void* p, Args&&... args) -> R {
        return (**static_cast<F**>(p))(std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept { *static_cast<F**>(to) = *static_cast<F**>(from); },
      [](void* p) noexcept { delete *static_cast<F**>(p); }};

  void reset() noexcept {
    if (table_) std::exchange(table_, nullptr)->destroy(&buffer_);
  }

  storage buffer_;
  table const* table_ = nullptr;
};

// ---------------------------------------------------------------- shapes

template <class T>
struct awaitable_traits : std::false_type {};

template <class T, class E>
struct awaitable_traits<net::awaitable<T, E>> : std::true_type {
  using result_type = T;
  using executor_type = E;
};

/// The awaitables crew runs: void, or an error code where non-zero is a failure.
using void_awaitable = net::awaitable<void>;
using code_awaitable = net::awaitable<boost::system::error_code>;
using std_code_awaitable = net::awaitable<std::error_code>;

template <class A>
inline constexpr bool is_task_awaitable_v =
    std::is_same_v<A, void_awaitable> || std::is_same_v<A, code_awaitable> ||
    std::is_same_v<A, std_code_awaitable>;

/// What a task may be: checked with a clear message, where the user's type is known.
template <class Task>
struct task_traits {
  using task_type = std::decay_t<Task>;
  static constexpr bool is_awaitable = awaitable_traits<task_type>::value;

  static auto awaitable_type_of() {
    if constexpr (is_awaitable)
      return std::type_identity<task_type>{};
    else if constexpr (std::is_invocable_v<task_type&>)
      return std::type_identity<std::invoke_result_t<task_type&>>{};
    else
      return std::type_identity<void>{};
  }
  using awaitable_type = typename decltype(awaitable_type_of())::type;

  static_assert(awaitable_traits<awaitable_type>::value,
                "crew: a task is an awaitable<void>, an awaitable<error_code>, or a callable "
                "taking no arguments that returns one");
  static_assert(!is_awaitable || !std::is_lvalue_reference_v<Task>,
                "crew: an awaitable can run only once; pass it as an rvalue (std::move)");
  static_assert(std::is_same_v<typename awaitable_traits<awaitable_type>::executor_type,
                               net::any_io_executor>,
                "crew: a task's awaitable runs on net::any_io_executor (the default of "
                "net::awaitable)");
  static_assert(is_task_awaitable_v<awaitable_type>,
                "crew: a task's awaitable returns void, boost::system::error_code or "
                "std::error_code");

  using result_type = typename awaitable_traits<awaitable_type>::result_type;
  static constexpr bool returns_code = !std::is_void_v<result_type>;
};

/// The mark of a failure a task returned as an error code rather than threw: the
/// runtime's error handler gets these, its exception handler the thrown ones.
struct returned_code {};

/// A returned `boost::system::error_code`, as the `system_error` it is reported as.
class returned_system_error final : public boost::system::system_error, public returned_code {
 public:
  using boost::system::system_error::system_error;
};

/// A returned `std::error_code`, as the `std::system_error` it is reported as.
class returned_std_system_error final : public std::system_error, public returned_code {
 public:
  using std::system_error::system_error;
};

/// The failure a returned code stands for; null for success.
inline std::exception_ptr failure_of(boost::system::error_code const& ec) {
  if (!ec) return nullptr;
  return std::make_exception_ptr(returned_system_error(ec));
}

inline std::exception_ptr failure_of(std::error_code const& ec) {
  if (!ec) return nullptr;
  return std::make_exception_ptr(returned_std_system_error(ec));
}

/// Throws `std::invalid_argument` naming `who` and `what`; out of line, so that the
/// checks below stay small.
[[noreturn]] void throw_bad_task(char const* who, char const* what);

template <class T>
struct is_std_function : std::false_type {};
template <class Signature>
struct is_std_function<std::function<Signature>> : std::true_type {};

/// Refuses a task that cannot run: a moved-from awaitable, a null function pointer, an
/// empty std::function.
template <class T>
void check_task(T const& t, char const* who) {
  if constexpr (awaitable_traits<T>::value) {
    if (!t.valid()) throw_bad_task(who, "is an awaitable that was moved from or already ran");
  } else if constexpr (std::is_pointer_v<T>) {
    if (t == nullptr) throw_bad_task(who, "is a null function pointer");
  } else if constexpr (is_std_function<T>::value) {
    if (!t) throw_bad_task(who, "is an empty std::function");
  }
}

// ---------------------------------------------------------------- bodies and factories

using void_function = unique_function<void_awaitable()>;
using code_function = unique_function<code_awaitable()>;
using std_code_function = unique_function<std_code_awaitable()>;
using task_function = std::variant<void_function, code_function, std_code_function>;

/** One task's body, erased: an awaitable that runs once, or a callable that the task
    calls first thing and keeps alive until its coroutine ended. */
using task_body = std::variant<void_awaitable, code_awaitable, std_code_awaitable, void_function,
                               code_function, std_code_function>;

/// A callable returning a task awaitable, erased (`task_traits` has checked its shape).
template <class F>
task_function erase_callable(F&& f) {
  using fn_type = std::decay_t<F>;
  using awaitable_type = typename task_traits<fn_type>::awaitable_type;
  return unique_function<awaitable_type()>(fn_type(std::forward<F>(f)));
}

/// Checks `task` and erases it. `who` names the caller in the error.
template <class Task>
task_body make_task_body(Task&& task, char const* who) {
  using traits = task_traits<Task>;
  using task_type = typename traits::task_type;
  check_task(task, who);
  if constexpr (traits::is_awaitable)
    return task_type(std::move(task));
  else
    return std::visit([](auto&& f) -> task_body { return std::move(f); },
                      erase_callable(std::forward<Task>(task)));
}

/** A task factory, erased: called once per run (a loop's iteration, a supervisor
    child's start, a retry's attempt), each call making that run's awaitable. */
class task_factory {
 public:
  task_factory() = default;

  /// Checks `f` (a callable returning a task awaitable) and erases it.
  template <class F>
  static task_factory make(F&& f, char const* who) {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "crew: a task factory is a callable taking no arguments");
    (void)task_traits<std::decay_t<F>>{};
    check_task(f, who);
    task_factory out;
    out.f_ = erase_callable(std::forward<F>(f));
    return out;
  }

  explicit operator bool() const noexcept {
    return std::visit([](auto const& f) { return static_cast<bool>(f); }, f_);
  }

  /// A body that calls this factory inside its task, so that what the factory throws is
  /// the run's failure. The factory must outlive the task.
  task_body bind() noexcept;

 private:
  task_function f_;
};

/// A code the awaitable returns, thrown as the system_error of its kind.
template <class Code>
void_awaitable throw_code(net::awaitable<Code> a) {
  if (auto const e = failure_of(co_await std::move(a))) std::rethrow_exception(e);
}

/// A factory as `crew::actor::execute` holds it, which runs `awaitable<void>`: a code the
/// task returns is thrown as a `boost::system::system_error`.
template <class F>
std::function<void_awaitable()> make_void_factory(F&& f, char const* who) {
  using fn_type = std::decay_t<F>;
  static_assert(std::is_invocable_v<fn_type&>,
                "crew: an actor's body is a callable taking no arguments");
  check_task(f, who);
  if constexpr (task_traits<fn_type>::returns_code)
    return [g = fn_type(std::forward<F>(f))]() mutable { return throw_code(g()); };
  else
    return std::function<void_awaitable()>(std::forward<F>(f));
}

}  // namespace crew::detail

#endif
