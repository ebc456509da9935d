//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// crew::restart, shared by the supervisor's children and the runtime's background
// workers.
//
#ifndef CREW_DETAIL_RESTART_KIND_HPP
#define CREW_DETAIL_RESTART_KIND_HPP

namespace crew {

/** When a supervisor child or a background worker starts again after it ended (Erlang/OTP's restart
 * types). */
enum class restart {
  /// Always restarted, even after a normal return.
  permanent,
  /// Restarted only after a failure; a normal return ends it for good.
  transient,
  /// Never restarted; a supervisor puts a failure into its result.
  temporary,
};

/// "permanent", "transient" or "temporary".
char const* to_string(restart r) noexcept;

}  // namespace crew

#endif
