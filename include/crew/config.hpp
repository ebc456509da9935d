//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_CONFIG_HPP
#define CREW_CONFIG_HPP

#include <boost/version.hpp>

#if BOOST_VERSION < 108100
#error "crew needs Boost 1.81 or later"
#endif

#if !defined(__cpp_impl_coroutine) || __cpp_impl_coroutine < 201902L
#error "crew needs C++20 coroutines"
#endif

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <cstddef>

namespace crew {

/// The namespace alias crew's documentation uses for Boost.Asio.
namespace net = boost::asio;

/// A limit that is no limit: a task group's `limit` or `keep_failures`, a retry's
/// `max_attempts`.
inline constexpr std::size_t unlimited = static_cast<std::size_t>(-1);

}  // namespace crew

#endif
