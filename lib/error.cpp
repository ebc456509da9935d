//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/enum_name.hpp>
#include <crew/error.hpp>

#include <boost/core/demangle.hpp>

#include <iterator>
#include <mutex>
#include <ostream>
#include <sstream>

namespace crew {
namespace {

class category final : public boost::system::error_category {
 public:
  // A fixed id makes crew's category compare equal across shared-library copies.
  category() noexcept : boost::system::error_category(0xC0DE'C4E3'0000'0001ull) {}

  char const* name() const noexcept override { return "crew"; }

  std::string message(int ev) const override {
    static constexpr char const* messages[] = {"timed out",
                                               "signal received",
                                               "circuit breaker is open",
                                               "too many requests to a half-open circuit breaker",
                                               "retries exhausted",
                                               "already running",
                                               "shut down",
                                               "limit reached",
                                               "task stopped unexpectedly"};
    static_assert(std::size(messages) == static_cast<int>(error::task_stopped_unexpectedly));
    if (auto const* m =
            detail::enum_name(ev, messages, static_cast<int>(error::timed_out), nullptr))
      return m;
    return "crew error " + std::to_string(ev);
  }

  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<error>(ev)) {
      case error::timed_out:
        return boost::system::errc::timed_out;
      default:
        return {ev, *this};
    }
  }
};

std::string type_name(std::exception_ptr const& e) {
#if defined(__GLIBCXX__)
  if (auto const* t = e.__cxa_exception_type()) return boost::core::demangle(t->name());
#endif
  (void)e;
  return "unknown type";
}

}  // namespace

boost::system::error_category const& error_category() noexcept {
  static category const instance;
  return instance;
}

std::ostream& operator<<(std::ostream& os, source_location const& loc) {
  if (loc.line() == 0) return os << "unknown location";
  os << loc.file_name() << ':' << loc.line();
  if (*loc.function_name()) os << " (" << loc.function_name() << ')';
  return os;
}

signal_received::signal_received(int signo)
    : std::runtime_error("signal " + std::to_string(signo) + " received"), signo_(signo) {}

char const* to_string(task_stage s) noexcept {
  return detail::enum_name(s, {"execute", "initialize", "cleanup", "handler"});
}

char const* task_failure::what() const noexcept {
  if (auto const* e = as<std::exception>()) return e->what();
  return "exception not derived from std::exception";
}

std::string to_string(task_failure const& f) {
  std::ostringstream os;
  os << "task";
  if (!f.name.empty()) os << " '" << f.name << '\'';
  os << " #" << f.id;
  if (f.index) os << " item " << *f.index;
  if (f.stage != task_stage::execute) os << " (" << to_string(f.stage) << ')';
  if (f.spawn_site.line() != 0)
    os << " spawned at " << f.spawn_site.file_name() << ':' << f.spawn_site.line();
  os << ": ";
  if (f.as<std::exception>() == nullptr) os << '[' << type_name(f.exception) << "] ";
  os << f.what();
  return os.str();
}

std::ostream& operator<<(std::ostream& os, task_failure const& f) {
  os << to_string(f) << '\n';
  if (!f.trace.empty()) os << "thrown at:\n" << f.trace;
  return os;
}

struct task_errors::impl {
  std::vector<task_failure> failures;
  std::size_t dropped = 0;
  mutable std::once_flag once;
  mutable std::string what;
};

task_errors::task_errors(std::vector<task_failure> failures, std::size_t dropped) {
  if (failures.empty())
    throw std::invalid_argument("crew::task_errors: failures is empty; it needs at least one");
  auto p = std::make_shared<impl>();
  p->failures = std::move(failures);
  p->dropped = dropped;
  impl_ = std::move(p);
}

std::vector<task_failure> const& task_errors::failures() const noexcept {
  return impl_->failures;
}

std::size_t task_errors::dropped() const noexcept {
  return impl_->dropped;
}

char const* task_errors::what() const noexcept {
  try {
    std::call_once(impl_->once, [this] {
      auto const n = impl_->failures.size() + impl_->dropped;
      std::string s = std::to_string(n) + (n == 1 ? " task failed" : " tasks failed");
      for (auto const& f : impl_->failures) s += "\n  " + to_string(f);
      if (impl_->dropped > 0) s += "\n  ... and " + std::to_string(impl_->dropped) + " more";
      impl_->what = std::move(s);
    });
    return impl_->what.c_str();
  } catch (...) {
    return "crew::task_errors";
  }
}

}  // namespace crew
