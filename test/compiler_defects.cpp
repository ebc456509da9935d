#define BOOST_TEST_MODULE compiler_defects
#include <boost/test/unit_test.hpp>
BOOST_AUTO_TEST_CASE(placeholder) {}
