//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE pipeline
#include <boost/test/unit_test.hpp>

BOOST_AUTO_TEST_CASE(placeholder) { BOOST_TEST(true); }
