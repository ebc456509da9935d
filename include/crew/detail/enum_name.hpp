//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_ENUM_NAME_HPP
#define CREW_DETAIL_ENUM_NAME_HPP

#include <cstddef>

namespace crew::detail {

/// The name of `e` in `names`, which lists the enumerators in order from `first`;
/// `fallback` for a value out of range (a cast from an integer).
template <class Enum, std::size_t N>
constexpr char const* enum_name(Enum e, char const* const (&names)[N], long long first = 0,
                                char const* fallback = "unknown") noexcept {
  auto const i = static_cast<long long>(e) - first;
  return i >= 0 && i < static_cast<long long>(N) ? names[i] : fallback;
}

}  // namespace crew::detail

#endif
