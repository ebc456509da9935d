//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/failure.hpp>
#include <crew/detail/task.hpp>

#include <algorithm>
#include <iostream>
#include <memory>
#include <mutex>
#include <ostream>

namespace crew::detail {

task_failure make_failure(std::uint64_t id, std::string name, source_location site,
                          std::exception_ptr e, task_stage stage) {
  task_failure f;
  f.id = id;
  f.name = std::move(name);
  f.spawn_site = site;
  f.trace = throw_site_trace(e);
  f.exception = std::move(e);
  f.stage = stage;
  return f;
}

task_failure make_failure(task_node const& n, std::exception_ptr e, task_stage stage) {
  auto f = make_failure(n.id_, n.name_, n.site_, std::move(e), stage);
  if (n.index_ != task_node::no_index) f.index = static_cast<std::size_t>(n.index_);
  return f;
}

task_failure make_failure(task_failure const& f, std::exception_ptr e, task_stage stage) {
  auto g = make_failure(f.id, f.name, f.spawn_site, std::move(e), stage);
  g.index = f.index;
  return g;
}

// ---------------------------------------------------------------- reports

void write_report(std::ostream& os, failure_report const& r) {
  os << "crew: " << r.owner_kind;
  if (!r.owner_name.empty()) os << " '" << r.owner_name << '\'';
  os << ' ' << r.event << ": " << r.failures.size() + r.dropped << '\n';
  for (auto const& f : r.failures) os << "  " << f;
  if (r.dropped > 0) os << "  ... and " << r.dropped << " more\n";
}

namespace {

struct sink_slot {
  std::mutex mutex;
  std::shared_ptr<failure_sink const> sink;
};

sink_slot& slot() {
  static sink_slot s;
  return s;
}

void write_to_stderr(failure_report const& r) {
  write_report(std::cerr, r);
  std::cerr.flush();
}

}  // namespace

failure_sink set_failure_sink(failure_sink sink) {
  auto next = sink ? std::make_shared<failure_sink const>(std::move(sink)) : nullptr;
  auto& s = slot();
  std::lock_guard lock(s.mutex);
  auto previous = std::exchange(s.sink, std::move(next));
  return previous ? *previous : failure_sink();
}

void report_failures(failure_report report) noexcept {
  if (report.failures.empty() && report.dropped == 0) return;
  try {
    std::shared_ptr<failure_sink const> sink;
    {
      auto& s = slot();
      std::lock_guard lock(s.mutex);
      sink = s.sink;
    }
    if (sink)
      (*sink)(report);
    else
      write_to_stderr(report);
  } catch (...) {
    // Nowhere left to report to.
  }
}

void report_failure(char const* owner_kind, std::string const& owner_name, char const* event,
                    task_failure failure) noexcept {
  try {
    failure_report r;
    r.owner_kind = owner_kind;
    r.owner_name = owner_name;
    r.event = event;
    r.failures.push_back(std::move(failure));
    report_failures(std::move(r));
  } catch (...) {
  }
}

// ---------------------------------------------------------------- failure_list

bool failure_list::add(task_failure&& f) {
  if (kept_.size() < std::max<std::size_t>(bound_, 1)) {
    kept_.push_back(std::move(f));
    return true;
  }
  ++dropped_;
  return false;
}

std::exception_ptr failure_list::take_errors() {
  if (kept_.empty()) return nullptr;
  auto e = std::make_exception_ptr(task_errors(std::move(kept_), dropped_));
  kept_.clear();
  dropped_ = 0;
  return e;
}

failure_report failure_list::take_report(char const* owner_kind, std::string owner_name,
                                         char const* event) {
  failure_report r;
  r.owner_kind = owner_kind;
  r.owner_name = std::move(owner_name);
  r.event = event;
  r.failures = std::move(kept_);
  r.dropped = std::exchange(dropped_, 0);
  kept_.clear();
  return r;
}

}  // namespace crew::detail
