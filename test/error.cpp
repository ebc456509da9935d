//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#define BOOST_TEST_MODULE error
#include <crew/error.hpp>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace {

std::atomic<int> live_objects{0};

struct counted_error : std::runtime_error {
  counted_error() : std::runtime_error("counted") { ++live_objects; }
  counted_error(counted_error const& o) : std::runtime_error(o) { ++live_objects; }
  ~counted_error() override { --live_objects; }
};

[[gnu::noinline]] void throwing_function_for_the_trace() {
  throw std::runtime_error("traced");
}

std::exception_ptr capture(void (*f)()) {
  try {
    f();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

crew::task_failure failure_of(std::exception_ptr e, std::string name, std::uint64_t id) {
  crew::task_failure f;
  f.id = id;
  f.name = std::move(name);
  f.spawn_site = crew::source_location::current();
  f.trace = crew::throw_site_trace(e);
  f.exception = std::move(e);
  return f;
}

struct not_a_std_exception {};

crew::source_location where_am_i(crew::source_location loc = crew::source_location::current()) {
  return loc;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(codes)

BOOST_AUTO_TEST_CASE(category_names_and_messages) {
  BOOST_TEST(std::string(crew::error_category().name()) == "crew");
  boost::system::error_code ec = crew::error::timed_out;
  BOOST_TEST(&ec.category() == &crew::error_category());
  BOOST_TEST(ec.message() == "timed out");
  BOOST_TEST((ec == crew::error::timed_out));
  BOOST_TEST((ec == boost::system::errc::timed_out));  // the generic condition
  BOOST_TEST(boost::system::error_code(crew::error::circuit_open).message() ==
             "circuit breaker is open");
  BOOST_TEST(boost::system::error_code(crew::error::task_stopped_unexpectedly).message() ==
             "task stopped unexpectedly");
  BOOST_TEST(crew::error_category().message(999) == "crew error 999");
}

BOOST_AUTO_TEST_CASE(signal_received_carries_the_signal) {
  try {
    throw crew::signal_received(15);
  } catch (crew::signal_received const& e) {
    BOOST_TEST(e.signo() == 15);
    BOOST_TEST((e.code() == crew::error::signal_received));
    BOOST_TEST(std::string(e.what()) == "signal 15 received");
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(aggregate)

BOOST_AUTO_TEST_CASE(task_errors_lists_every_failure_on_its_own_line) {
  std::vector<crew::task_failure> failures;
  failures.push_back(failure_of(std::make_exception_ptr(std::runtime_error("first")), "a", 1));
  failures.push_back(failure_of(std::make_exception_ptr(std::logic_error("second")), "", 2));
  crew::task_errors errors(std::move(failures));
  BOOST_TEST(errors.size() == 2u);
  BOOST_TEST(errors.first().id == 1u);
  std::string const what = errors.what();
  BOOST_TEST(what.find("2 tasks failed") == 0u, what);
  BOOST_TEST(what.find("\n  task 'a' #1 spawned at ") != std::string::npos, what);
  BOOST_TEST(what.find(": first") != std::string::npos, what);
  BOOST_TEST(what.find("\n  task #2 spawned at ") != std::string::npos, what);
  BOOST_TEST(what.find(": second") != std::string::npos, what);
  BOOST_TEST(errors.contains<std::logic_error>());
  BOOST_TEST(errors.find<std::logic_error>()->what() == std::string("second"));
  BOOST_TEST(!errors.contains<std::bad_alloc>());
  BOOST_CHECK_THROW(errors.rethrow_first(), std::runtime_error);
  crew::task_errors copy = errors;  // copies share the failures
  BOOST_TEST(&copy.failures() == &errors.failures());
}

BOOST_AUTO_TEST_CASE(a_default_failure_has_an_empty_trace) {
  // A default-constructed boost::stacktrace captures the current stack; a failure
  // record must not pay for that, nor show the wrong stack.
  crew::task_failure f;
  BOOST_TEST(f.trace.empty());
}

BOOST_AUTO_TEST_CASE(an_empty_aggregate_is_rejected_naming_the_parameter) {
  try {
    crew::task_errors errors({});
    BOOST_FAIL("no exception");
  } catch (std::invalid_argument const& e) {
    BOOST_TEST(std::string(e.what()).find("failures") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(find_searches_nested_aggregates) {
  std::vector<crew::task_failure> inner;
  inner.push_back(failure_of(std::make_exception_ptr(std::out_of_range("deep")), "inner", 7));
  std::vector<crew::task_failure> outer;
  outer.push_back(
      failure_of(std::make_exception_ptr(crew::task_errors(std::move(inner))), "outer", 8));
  crew::task_errors errors(std::move(outer));
  BOOST_TEST(errors.contains<std::out_of_range>());
  BOOST_TEST(errors.find<std::out_of_range>()->what() == std::string("deep"));
  BOOST_TEST(errors.contains<crew::task_errors>());
}

BOOST_AUTO_TEST_CASE(a_failure_that_is_not_a_std_exception_says_so) {
  auto f = failure_of(std::make_exception_ptr(not_a_std_exception{}), "odd", 3);
  BOOST_TEST(f.what() == std::string("exception not derived from std::exception"));
  auto const line = crew::to_string(f);
  BOOST_TEST(line.find("not_a_std_exception") != std::string::npos, line);
  BOOST_TEST(crew::to_string(crew::task_stage::cleanup) == std::string("cleanup"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(throw_site)

BOOST_AUTO_TEST_CASE(the_trace_names_the_function_that_threw) {
  auto e = capture(&throwing_function_for_the_trace);
  auto trace = crew::throw_site_trace(e);
  BOOST_REQUIRE(!trace.empty());
  BOOST_TEST(trace[0].name().find("throwing_function_for_the_trace") != std::string::npos,
             trace[0].name());
  BOOST_TEST(trace[0].source_file().find("error.cpp") != std::string::npos);
  BOOST_TEST(trace[0].source_line() > 0u);

  auto f = failure_of(e, "t", 1);
  std::ostringstream os;
  os << f;
  BOOST_TEST(os.str().find("thrown at:") != std::string::npos);
  BOOST_TEST(os.str().find("throwing_function_for_the_trace") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_shallow_trace_holds_only_real_frames) {
  // The dump that backs a trace ends with a null frame, which is not part of it.
  auto e = capture(&throwing_function_for_the_trace);
  for (auto const& frame : crew::throw_site_trace(e)) {
    auto const address = reinterpret_cast<std::uintptr_t>(frame.address());
    BOOST_TEST(address != 0u);
    BOOST_TEST(address != ~std::uintptr_t{0});
  }
}

BOOST_AUTO_TEST_CASE(copies_and_rethrows_keep_the_original_trace) {
  auto e = capture(&throwing_function_for_the_trace);
  std::exception_ptr rethrown;
  try {
    std::rethrow_exception(e);
  } catch (...) {
    try {
      throw;
    } catch (...) {
      rethrown = std::current_exception();
    }
  }
  auto trace = crew::throw_site_trace(rethrown);
  BOOST_REQUIRE(!trace.empty());
  BOOST_TEST(trace[0].name().find("throwing_function_for_the_trace") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(standard_library_throws_are_traced_too) {
  auto e = capture([] {
    std::vector<int> v;
    (void)v.at(3);
  });
  BOOST_TEST(!crew::throw_site_trace(e).empty());
}

BOOST_AUTO_TEST_CASE(no_trace_when_switched_off_or_never_thrown) {
  BOOST_TEST(crew::throw_site_traces());
  crew::set_throw_site_traces(false);
  BOOST_TEST(!crew::throw_site_traces());
  auto off = capture(&throwing_function_for_the_trace);
  crew::set_throw_site_traces(true);
  BOOST_TEST(crew::throw_site_trace(off).empty());
  BOOST_TEST(crew::throw_site_trace(std::make_exception_ptr(std::runtime_error("x"))).empty());
  BOOST_TEST(crew::throw_site_trace(nullptr).empty());
}

BOOST_AUTO_TEST_CASE(the_exception_object_is_destroyed_exactly_once) {
  {
    std::exception_ptr e;
    try {
      throw counted_error();
    } catch (...) {
      e = std::current_exception();
    }
    BOOST_TEST(live_objects == 1);
    BOOST_TEST(!crew::throw_site_trace(e).empty());
  }
  BOOST_TEST(live_objects == 0);
  try {
    throw 42;  // a thrown object without a destructor
  } catch (int v) {
    BOOST_TEST(v == 42);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(location)

BOOST_AUTO_TEST_CASE(current_names_the_caller) {
  int const line = __LINE__ + 1;
  auto loc = where_am_i();
  BOOST_TEST(loc.line() == static_cast<unsigned>(line));
  BOOST_TEST(std::string(loc.file_name()).find("error.cpp") != std::string::npos);
  BOOST_TEST(std::string(loc.function_name()).find("test_method") != std::string::npos,
             loc.function_name());
  std::ostringstream os;
  os << loc;
  BOOST_TEST(os.str().find("error.cpp:" + std::to_string(line)) != std::string::npos);
  std::ostringstream empty;
  empty << crew::source_location{};
  BOOST_TEST(empty.str() == "unknown location");
}

BOOST_AUTO_TEST_CASE(exception_cast_adjusts_to_the_base_without_rethrowing) {
  auto e = std::make_exception_ptr(std::out_of_range("oops"));
  auto const* base = crew::detail::exception_cast<std::exception>(e);
  BOOST_REQUIRE(base);
  BOOST_TEST(base->what() == std::string("oops"));
  BOOST_TEST(crew::detail::exception_cast<std::logic_error>(e) != nullptr);
  BOOST_TEST(crew::detail::exception_cast<std::runtime_error>(e) == nullptr);
  BOOST_TEST(crew::detail::exception_cast<std::exception>(nullptr) == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()
