//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#include <crew/detail/failure.hpp>
#include <crew/gather.hpp>

#include <stdexcept>
#include <string>

namespace crew::detail {

gather_identity gather_identity::capture(std::string name, source_location site) {
  gather_identity id;
  id.name = std::move(name);
  id.site = site;
  if (task_node* const parent = current_task()) {
    id.parent_id = parent->id_;
    id.context = parent->context();
  }
  return id;
}

task_spec gather_identity::spec(std::size_t index) const {
  task_spec s;
  s.name = name;
  s.site = site;
  // Explicit, so that the item is the initiator's child, not the child of the item
  // before it that spawned it; without an initiator, an empty context makes a root.
  s.parent_id = parent_id;
  s.context = &context;
  s.index = index;
  return s;
}

std::shared_ptr<group_core> make_gather_core(net::any_io_executor ex,
                                             gather_options const& options) {
  if (options.limit == 0)
    throw std::invalid_argument(
        "crew::async_gather: options.limit must be at least 1 or crew::unlimited, got 0");
  if (options.keep_failures == 0)
    throw std::invalid_argument(
        "crew::async_gather: options.keep_failures must be at least 1 or crew::unlimited, got 0");
  task_group_options o;
  o.policy = options.policy;
  o.limit = options.limit;
  o.name = options.name;
  o.keep_failures = options.keep_failures;
  return std::make_shared<group_core>(std::move(ex), o, "gather");
}

void record_range_failure(group_core& core, gather_identity const& id, std::size_t index,
                          std::exception_ptr e) noexcept {
  try {
    // The failure names the task that was advancing the range when it threw.
    task_node const* const n = current_task();
    auto f = make_failure(n ? n->id_ : 0, id.name, id.site, std::move(e));
    f.index = index;
    core.record(std::move(f));
  } catch (...) {
    std::terminate();  // only allocation can fail; a lost failure breaks the contract
  }
}

}  // namespace crew::detail
