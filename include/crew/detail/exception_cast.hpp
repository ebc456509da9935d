//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_EXCEPTION_CAST_HPP
#define CREW_DETAIL_EXCEPTION_CAST_HPP

#include <exception>
#include <type_traits>
#include <typeinfo>

namespace crew::detail {

/// The exception held by `p` as an `E`, or null; never rethrows on libstdc++.
template <class E>
E const* exception_cast(std::exception_ptr const& p) noexcept {
  using target = std::remove_cv_t<E>;
  if (!p) return nullptr;
#if defined(__GLIBCXX__) && defined(__cpp_rtti)
  // libstdc++'s exception_ptr is a single pointer to the thrown object. Asking the
  // target's type_info whether it would catch the thrown type also adjusts the
  // pointer to the base subobject, exactly as a catch clause does.
  std::type_info const* thrown = p.__cxa_exception_type();
  if (!thrown) return nullptr;
  void* object = *reinterpret_cast<void* const*>(&p);
  if (typeid(target).__do_catch(thrown, &object, 1)) return static_cast<target const*>(object);
  return nullptr;
#else
  try {
    std::rethrow_exception(p);
  } catch (target const& e) {
    return &e;
  } catch (...) {
    return nullptr;
  }
#endif
}

/// Whether `e` holds a `boost::system::system_error` with `operation_aborted`.
bool is_operation_aborted(std::exception_ptr const& e) noexcept;

}  // namespace crew::detail

#endif
