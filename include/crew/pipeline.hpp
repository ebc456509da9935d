//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_PIPELINE_HPP
#define CREW_PIPELINE_HPP

#endif
