#define BOOST_TEST_MODULE task_group_stress
#include <boost/test/unit_test.hpp>
BOOST_AUTO_TEST_CASE(placeholder) {}
