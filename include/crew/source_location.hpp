//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_SOURCE_LOCATION_HPP
#define CREW_SOURCE_LOCATION_HPP

#include <cstdint>
#include <iosfwd>
#include <version>

#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace crew {

/** The place in the source that called a crew function, such as a task's spawn site.

    Built on `std::source_location` where the standard library offers it (g++ 12),
    else on `__builtin_FILE()`, `__builtin_LINE()` and `__builtin_FUNCTION()`, because
    clang 14 with libstdc++ 12 has no `std::source_location`. Either way, used as a
    defaulted trailing parameter, `current()` names the caller, not the header that
    declares the function.
*/
class source_location {
 public:
  /// An empty location: no file, line 0.
  constexpr source_location() noexcept = default;

  /// The location of the call site that evaluates this default argument.
#if defined(__cpp_lib_source_location)
  static constexpr source_location current(
      std::source_location loc = std::source_location::current()) noexcept {
    return source_location(loc.file_name(), loc.function_name(), loc.line(), loc.column());
  }
#else
  static constexpr source_location current(char const* file = __builtin_FILE(),
                                           char const* function = __builtin_FUNCTION(),
                                           std::uint_least32_t line = __builtin_LINE(),
#if defined(__has_builtin) && __has_builtin(__builtin_COLUMN)
                                           std::uint_least32_t column = __builtin_COLUMN()
#else
                                           std::uint_least32_t column = 0
#endif
                                               ) noexcept {
    return source_location(file, function, line, column);
  }
#endif

  /// A location given explicitly.
  constexpr source_location(char const* file, char const* function, std::uint_least32_t line,
                            std::uint_least32_t column = 0) noexcept
      : file_(file ? file : ""),
        function_(function ? function : ""),
        line_(line),
        column_(column) {}

  constexpr char const* file_name() const noexcept {
    return file_;
  }
  constexpr char const* function_name() const noexcept {
    return function_;
  }
  constexpr std::uint_least32_t line() const noexcept {
    return line_;
  }
  constexpr std::uint_least32_t column() const noexcept {
    return column_;
  }

 private:
  char const* file_ = "";
  char const* function_ = "";
  std::uint_least32_t line_ = 0;
  std::uint_least32_t column_ = 0;
};

/// Writes `file:line (function)`, or `unknown location` when empty.
std::ostream& operator<<(std::ostream& os, source_location const& loc);

}  // namespace crew

#endif
