//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// The runtime's attachment to the task layer (detail/seam.hpp): statistics, the task
// registry behind snapshot() and dump(), the start and end hooks; this_task and
// task_local; the handlers, which plug into the failure path's sink.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/seam.hpp>
#include <crew/detail/task.hpp>
#include <crew/detail/task_memory.hpp>
#include <crew/runtime.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <ostream>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace crew {

// ---------------------------------------------------------------- trace ids

namespace {

struct splitmix {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

std::uint64_t seed() noexcept {
  std::uint64_t s = static_cast<std::uint64_t>(
      std::chrono::high_resolution_clock::now().time_since_epoch().count());
  s ^= std::hash<std::thread::id>{}(std::this_thread::get_id()) * 0x9E3779B97F4A7C15ull;
  try {
    std::random_device rd;
    s ^= (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy device: the time and the thread still differ between threads and runs.
  }
  return s;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// `hex` (exactly 16 hex digits) as a number.
std::optional<std::uint64_t> parse_u64(std::string_view hex) noexcept {
  if (hex.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : hex) {
    int const d = hex_value(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

void append_hex(std::string& out, std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xF];
}

}  // namespace

namespace detail {

std::uint64_t random_u64() noexcept {
  thread_local splitmix gen{seed()};
  return gen.next();
}

}  // namespace detail

trace_id trace_id::generate() noexcept {
  std::uint64_t high = detail::random_u64();
  std::uint64_t const low = detail::random_u64();
  if ((high | low) == 0) high = 1;
  return {high, low};
}

std::optional<trace_id> trace_id::parse(std::string_view hex) noexcept {
  if (hex.size() != 32) return std::nullopt;
  auto const high = parse_u64(hex.substr(0, 16));
  auto const low = parse_u64(hex.substr(16));
  if (!high || !low || (*high | *low) == 0) return std::nullopt;
  return trace_id(*high, *low);
}

std::optional<trace_id> trace_id::from_traceparent(std::string_view h) noexcept {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  // Version 00 is exactly that; later versions may append "-..." fields.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  int const v1 = hex_value(h[0]), v2 = hex_value(h[1]);
  if (v1 < 0 || v2 < 0 || (v1 == 15 && v2 == 15)) return std::nullopt;  // ff is invalid
  if (h[0] == '0' && h[1] == '0' && h.size() != 55) return std::nullopt;
  if (h.size() > 55 && h[55] != '-') return std::nullopt;
  if (hex_value(h[53]) < 0 || hex_value(h[54]) < 0) return std::nullopt;
  auto const parent = parse_u64(h.substr(36, 16));
  if (!parent || *parent == 0) return std::nullopt;
  for (char c : h.substr(0, 55))
    if (c >= 'A' && c <= 'F') return std::nullopt;  // the header is lowercase
  return parse(h.substr(3, 32));
}

std::string trace_id::to_string() const {
  std::string out;
  out.reserve(32);
  append_hex(out, high_);
  append_hex(out, low_);
  return out;
}

std::ostream& operator<<(std::ostream& os, trace_id const& id) {
  return os << id.to_string();
}

// ---------------------------------------------------------------- this_task

namespace {

task_info info_of(detail::task_node& n, bool fresh_trace) {
  task_info i;
  i.id = n.id_;
  i.parent_id = n.parent_id_;
  i.name = n.name_;
  i.owner_kind = n.owner()->owner_kind();
  i.owner_name = n.owner()->owner_name();
  i.spawn_site = n.site_;
  i.trace = fresh_trace ? n.trace() : n.peek_trace();
  return i;
}

}  // namespace

namespace this_task {

std::uint64_t id() noexcept {
  auto const* n = detail::current_task();
  return n ? n->id_ : 0;
}

std::uint64_t parent_id() noexcept {
  auto const* n = detail::current_task();
  return n ? n->parent_id_ : 0;
}

std::string_view name() noexcept {
  auto const* n = detail::current_task();
  return n ? std::string_view(n->name_) : std::string_view();
}

task_info info() {
  auto* n = detail::current_task();
  return n ? info_of(*n, true) : task_info{};
}

crew::trace_id trace_id() noexcept {
  auto* n = detail::current_task();
  return n ? n->trace() : crew::trace_id();
}

bool set_trace_id(crew::trace_id id) noexcept {
  auto* n = detail::current_task();
  if (!n || !id) return false;
  n->set_trace(id);
  return true;
}

bool set_traceparent(std::string_view header) noexcept {
  auto const id = crew::trace_id::from_traceparent(header);
  return id && set_trace_id(*id);
}

std::string traceparent() {
  auto* n = detail::current_task();
  if (!n) return {};
  std::string out = "00-";
  out += n->trace().to_string();
  out += '-';
  append_hex(out, n->id_);
  out += "-01";
  return out;
}

}  // namespace this_task

namespace detail {

std::uint64_t next_local_key() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void const* local_get(std::uint64_t key) noexcept {
  auto const* n = current_task();
  if (!n || !n->locals_) return nullptr;
  for (auto const& [k, v] : n->locals_->values)
    if (k == key) return v.get();
  return nullptr;
}

bool local_set(std::uint64_t key, std::shared_ptr<void const> value) {
  auto* n = current_task();
  if (!n) return false;
  // Published maps are shared with children: a change is a new map.
  auto next = n->locals_ ? std::make_shared<local_map>(*n->locals_) : std::make_shared<local_map>();
  auto it = std::find_if(next->values.begin(), next->values.end(),
                         [&](auto const& kv) { return kv.first == key; });
  if (it != next->values.end())
    it->second = std::move(value);
  else
    next->values.emplace_back(key, std::move(value));
  n->locals_ = std::move(next);
  return true;
}

bool local_erase(std::uint64_t key) noexcept {
  auto* n = current_task();
  if (!n) return false;
  if (!n->locals_) return true;
  auto const& values = n->locals_->values;
  auto it =
      std::find_if(values.begin(), values.end(), [&](auto const& kv) { return kv.first == key; });
  if (it == values.end()) return true;
  try {
    auto next = std::make_shared<local_map>(*n->locals_);
    next->values.erase(next->values.begin() + (it - values.begin()));
    n->locals_ = next->values.empty() ? nullptr : std::move(next);
  } catch (...) {
    // Without memory for the copy, the value stays: erase promises no failure but
    // must not lie either.
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- statistics

namespace {

struct alignas(64) counter {
  std::atomic<std::uint64_t> value{0};
  void add() noexcept { value.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

struct stats_counters {
  counter launched, succeeded, failed, exceptions, cancelled, peak;
  alignas(64) std::atomic<std::int64_t> active{0};
};

stats_counters& counters() {
  static stats_counters c;
  return c;
}

void count_made() noexcept {
  auto& c = counters();
  c.launched.add();
  auto const now = static_cast<std::uint64_t>(c.active.fetch_add(1, std::memory_order_relaxed) + 1);
  auto peak = c.peak.value.load(std::memory_order_relaxed);
  while (now > peak && !c.peak.value.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void count_ended(task_node const* n, std::exception_ptr const& e, task_end how) noexcept {
  auto& c = counters();
  if (how != task_end::done)
    c.cancelled.add();
  else if (!e)
    c.succeeded.add();
  else if ((n->cancel_requested() && is_operation_aborted(e)) ||
           exception_cast<crew::signal_received>(e))
    // A crew::signals actor ends on its signal by design: a stop, not a failure.
    c.cancelled.add();
  else {
    c.failed.add();
    if (!exception_cast<returned_code>(e)) c.exceptions.add();
  }
  c.active.fetch_sub(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------- the task registry

struct alignas(64) registry_shard {
  std::mutex mutex;
  task_node* first = nullptr;
};

constexpr std::size_t shard_count = 16;

registry_shard* shards() {
  static registry_shard s[shard_count];
  return s;
}

registry_shard& shard_of(task_node const* n) {
  return shards()[n->id_ % shard_count];
}

std::int64_t steady_ticks() noexcept {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

void track(task_node* n) noexcept {
  n->made_at_ = steady_ticks();
  auto& s = shard_of(n);
  std::lock_guard lock(s.mutex);
  n->track_next_ = s.first;
  if (s.first) s.first->track_prev_ = n;
  s.first = n;
}

void untrack(task_node* n) noexcept {
  auto& s = shard_of(n);
  std::lock_guard lock(s.mutex);
  if (n->track_prev_)
    n->track_prev_->track_next_ = n->track_next_;
  else
    s.first = n->track_next_;
  if (n->track_next_) n->track_next_->track_prev_ = n->track_prev_;
  n->track_prev_ = n->track_next_ = nullptr;
}

// ---------------------------------------------------------------- hooks

/// A registered hook. Calls count themselves, so that removing it can wait for the
/// calls running on other threads.
struct hook_entry {
  std::uint64_t id = 0;
  start_hook start;
  end_hook end;
  std::atomic<std::uint32_t> calls{0};
  std::atomic<bool> removed{false};
};

struct hook_set {
  std::vector<std::shared_ptr<hook_entry>> start, end;
};

/// The published hook set. Each thread keeps its own reference to the set it last saw
/// and swaps it when the version moved: calling hooks takes no lock.
struct hook_registry {
  std::mutex mutex;
  std::shared_ptr<hook_set const> set = std::make_shared<hook_set const>();
  std::atomic<std::uint64_t> version{1};
  std::uint64_t next_id = 1;
};

hook_registry& hooks() {
  static hook_registry* const r = new hook_registry;  // hooks may run during exit
  return *r;
}

struct hook_cache {
  std::uint64_t version = 0;
  std::shared_ptr<hook_set const> set;
};

/// How deep this thread is in calls of hooks: a task retired by a hook (a group the
/// hook destroys) must not swap the set the outer call iterates over.
thread_local int hook_depth = 0;

hook_set const& current_hooks() {
  thread_local hook_cache cache;
  auto& r = hooks();
  auto const v = r.version.load(std::memory_order_acquire);
  if (cache.version != v && (hook_depth == 0 || !cache.set)) {
    std::lock_guard lock(r.mutex);
    cache.set = r.set;
    cache.version = r.version.load(std::memory_order_relaxed);
  }
  return *cache.set;
}

/// The hooks being called on this thread, innermost last: a hook removing itself must
/// not wait for its own call.
thread_local std::vector<hook_entry const*> calling;

void update_seam_bits() {
  // Under the registry's mutex; enable_stats and enable_tracking change the other bits
  // concurrently, so each bit is set or cleared on its own.
  auto const& set = *hooks().set;
  auto apply = [](std::uint32_t bit, bool on) {
    if (on)
      seam_features.fetch_or(bit, std::memory_order_relaxed);
    else
      seam_features.fetch_and(~bit, std::memory_order_relaxed);
  };
  apply(seam_start_hooks, !set.start.empty());
  apply(seam_end_hooks, !set.end.empty());
}

void report_hook_failure(task_info const& self, char const* which) noexcept {
  try {
    report_failure("runtime", std::string(), which,
                   make_failure(self.id, self.name, self.spawn_site, std::current_exception(),
                                task_stage::handler));
  } catch (...) {
    // make_failure allocates; report_failure itself never throws.
  }
}

template <class Call>
void call_hook(hook_entry& h, Call&& call) {
  struct in_call {
    hook_entry& h;
    ~in_call() { h.calls.fetch_sub(1, std::memory_order_release); }
  } counted{h};
  h.calls.fetch_add(1, std::memory_order_seq_cst);
  if (h.removed.load(std::memory_order_seq_cst)) return;
  calling.push_back(&h);
  ++hook_depth;
  struct pop {
    ~pop() {
      --hook_depth;
      calling.pop_back();
    }
  } p;
  call();
}

}  // namespace

void seam_made(task_node* n, task_node* parent, std::uint32_t f) noexcept {
  n->seam_ = f;
  if (f & seam_stats) count_made();
  if (f & seam_tracking) track(n);
  if (f & seam_start_hooks) {
    try {
      n->parent_info_ = parent ? new task_info(info_of(*parent, false)) : new task_info();
      n->parent_info_->id = n->parent_id_;
    } catch (...) {
      // Without memory for the parent's record, this task's start hooks are skipped.
      n->seam_ &= ~std::uint32_t(seam_start_hooks);
    }
  }
}

void seam_started(task_node* n) noexcept {
  try {
    auto const& set = current_hooks();
    if (set.start.empty()) return;
    task_info const self = info_of(*n, false);
    for (auto const& h : set.start) {
      try {
        call_hook(*h, [&] { h->start(*n->parent_info_, self); });
      } catch (...) {
        report_hook_failure(self, "start hook threw");
      }
    }
  } catch (...) {
    // Without memory for the task's record, its start hooks are skipped.
  }
}

void seam_ended(task_node* n, std::exception_ptr const& e, task_end how) noexcept {
  if (n->seam_ & seam_end_hooks) {
    try {
      auto const& set = current_hooks();
      if (!set.end.empty()) {
        task_info const self = info_of(*n, false);
        std::exception_ptr outcome = e;
        if (how != task_end::done)
          outcome = std::make_exception_ptr(boost::system::system_error(
              net::error::operation_aborted, how == task_end::abandoned
                                                 ? "the task's execution context was destroyed"
                                                 : "the task was withdrawn before it started"));
        for (auto const& h : set.end) {
          try {
            call_hook(*h, [&] { h->end(self, outcome); });
          } catch (...) {
            report_hook_failure(self, "end hook threw");
          }
        }
      }
    } catch (...) {
      // Without memory for the task's record, its end hooks are skipped.
    }
  }
  if (n->seam_ & seam_tracking) untrack(n);
  if (n->seam_ & seam_stats) count_ended(n, e, how);
  delete std::exchange(n->parent_info_, nullptr);
}

}  // namespace detail

// ---------------------------------------------------------------- runtime

void runtime::set_task_memory_limit(std::size_t bytes) noexcept {
  detail::set_task_memory_limit(bytes);
}

std::size_t runtime::task_memory_limit() const noexcept {
  return detail::get_task_memory_stats().limit_bytes;
}

std::size_t runtime::task_memory_cached() const noexcept {
  return detail::get_task_memory_stats().cached_bytes;
}

char const* to_string(task_state s) noexcept {
  switch (s) {
    case task_state::queued:
      return "queued";
    case task_state::running:
      return "running";
    case task_state::suspended:
      return "suspended";
  }
  return "unknown";
}

runtime& runtime::global() noexcept {
  // Never destroyed: tasks that end during static destruction still find it.
  static runtime* const r = new runtime;
  return *r;
}

namespace {

std::uint64_t add_hook(std::shared_ptr<detail::hook_entry> e) {
  auto& r = detail::hooks();
  std::lock_guard lock(r.mutex);
  e->id = r.next_id++;
  auto next = std::make_shared<detail::hook_set>(*r.set);
  (e->start ? next->start : next->end).push_back(e);
  r.set = std::move(next);
  r.version.fetch_add(1, std::memory_order_release);
  detail::update_seam_bits();
  return e->id;
}

}  // namespace

hook_handle runtime::on_task_start(start_hook hook) {
  if (!hook) throw std::invalid_argument("crew::runtime::on_task_start: the hook is empty");
  auto e = std::make_shared<detail::hook_entry>();
  e->start = std::move(hook);
  return hook_handle(add_hook(std::move(e)));
}

hook_handle runtime::on_task_end(end_hook hook) {
  if (!hook) throw std::invalid_argument("crew::runtime::on_task_end: the hook is empty");
  auto e = std::make_shared<detail::hook_entry>();
  e->end = std::move(hook);
  return hook_handle(add_hook(std::move(e)));
}

bool runtime::remove_hook(hook_handle h) noexcept {
  auto& r = detail::hooks();
  std::shared_ptr<detail::hook_entry> e;
  {
    std::lock_guard lock(r.mutex);
    auto const& set = *r.set;
    auto find = [&](auto const& v) {
      return std::find_if(v.begin(), v.end(), [&](auto const& x) { return x->id == h.id(); });
    };
    auto s = find(set.start);
    auto en = find(set.end);
    if (s != set.start.end())
      e = *s;
    else if (en != set.end.end())
      e = *en;
    else
      return false;
    e->removed.store(true, std::memory_order_seq_cst);
    try {
      auto next = std::make_shared<detail::hook_set>(set);
      std::erase(next->start, e);
      std::erase(next->end, e);
      r.set = std::move(next);
      r.version.fetch_add(1, std::memory_order_release);
      detail::update_seam_bits();
    } catch (...) {
      // Without memory for the new set the entry stays listed, marked removed: it is
      // never called again.
    }
  }
  auto const own = static_cast<std::uint32_t>(
      std::count(detail::calling.begin(), detail::calling.end(), e.get()));
  while (e->calls.load(std::memory_order_acquire) > own) std::this_thread::yield();
  return true;
}

// ---------------------------------------------------------------- handlers

namespace {

struct handler_slot {
  std::mutex mutex;
  std::shared_ptr<error_handler const> error;
  std::shared_ptr<exception_handler const> exception;
};

handler_slot& handlers() {
  static handler_slot* const s = new handler_slot;  // failures may be reported during exit
  return *s;
}

void write_one(detail::failure_report const& r, task_failure const& f) {
  detail::failure_report one;
  one.owner_kind = r.owner_kind;
  one.owner_name = r.owner_name;
  one.event = r.event;
  one.failures.push_back(f);
  detail::write_report(std::cerr, one);
}

void dispatch(detail::failure_report const& r) {
  std::shared_ptr<error_handler const> on_error;
  std::shared_ptr<exception_handler const> on_exception;
  {
    auto& s = handlers();
    std::lock_guard lock(s.mutex);
    on_error = s.error;
    on_exception = s.exception;
  }
  for (auto const& f : r.failures) {
    task_info info;
    info.id = f.id;
    info.name = f.name;
    info.owner_kind = r.owner_kind;
    info.owner_name = r.owner_name;
    info.spawn_site = f.spawn_site;
    bool const returned = detail::exception_cast<detail::returned_code>(f.exception) != nullptr;
    try {
      if (returned && on_error)
        (*on_error)(info, f.exception);
      else if (!returned && on_exception)
        (*on_exception)(info, f.exception, f.trace);
      else
        write_one(r, f);
    } catch (...) {
      std::cerr << "crew: the runtime's " << (returned ? "error" : "exception")
                << " handler threw while handling task " << f.id << '\n';
    }
  }
  if (r.dropped > 0)
    std::cerr << "crew: " << r.owner_kind << ' ' << r.event << ": " << r.dropped
              << " more failures were counted, not kept\n";
  std::cerr.flush();
}

/// The failure path's sink is the runtime's dispatcher while a handler is set.
void install_sink(handler_slot& s) {
  // Under s.mutex.
  detail::set_failure_sink(s.error || s.exception ? detail::failure_sink(&dispatch)
                                                  : detail::failure_sink());
}

}  // namespace

error_handler runtime::set_error_handler(error_handler h) {
  auto& s = handlers();
  std::lock_guard lock(s.mutex);
  auto previous =
      std::exchange(s.error, h ? std::make_shared<error_handler const>(std::move(h)) : nullptr);
  install_sink(s);
  return previous ? *previous : error_handler();
}

exception_handler runtime::set_exception_handler(exception_handler h) {
  auto& s = handlers();
  std::lock_guard lock(s.mutex);
  auto previous = std::exchange(
      s.exception, h ? std::make_shared<exception_handler const>(std::move(h)) : nullptr);
  install_sink(s);
  return previous ? *previous : exception_handler();
}

// ---------------------------------------------------------------- introspection

runtime_stats runtime::stats() const noexcept {
  auto& c = detail::counters();
  runtime_stats out;
  out.launched = c.launched.get();
  out.succeeded = c.succeeded.get();
  out.failed = c.failed.get();
  out.exceptions = c.exceptions.get();
  out.cancelled = c.cancelled.get();
  out.peak_active = c.peak.get();
  out.active = static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, c.active.load(std::memory_order_relaxed)));
  return out;
}

void runtime::enable_stats(bool on) noexcept {
  if (on)
    detail::seam_features.fetch_or(detail::seam_stats, std::memory_order_relaxed);
  else
    detail::seam_features.fetch_and(~std::uint32_t(detail::seam_stats), std::memory_order_relaxed);
}

bool runtime::stats_enabled() const noexcept {
  return (detail::seam_features.load(std::memory_order_relaxed) & detail::seam_stats) != 0;
}

void runtime::enable_tracking(bool on) noexcept {
  if (on)
    detail::seam_features.fetch_or(detail::seam_tracking, std::memory_order_relaxed);
  else
    detail::seam_features.fetch_and(~std::uint32_t(detail::seam_tracking),
                                    std::memory_order_relaxed);
}

bool runtime::tracking_enabled() const noexcept {
  return (detail::seam_features.load(std::memory_order_relaxed) & detail::seam_tracking) != 0;
}

std::vector<task_record> runtime::snapshot() const {
  std::vector<task_record> out;
  auto const now = detail::steady_ticks();
  for (std::size_t i = 0; i < detail::shard_count; ++i) {
    auto& s = detail::shards()[i];
    std::lock_guard lock(s.mutex);
    for (auto* n = s.first; n; n = n->track_next_) {
      task_record r;
      r.info = info_of(*n, false);
      r.state = !n->has_started() ? task_state::queued
                : n->in_section() ? task_state::running
                                  : task_state::suspended;
      r.age = std::chrono::steady_clock::duration(now - n->made_at_);
      out.push_back(std::move(r));
    }
  }
  std::sort(out.begin(), out.end(),
            [](task_record const& a, task_record const& b) { return a.info.id < b.info.id; });
  return out;
}

void runtime::dump(std::ostream& os) const {
  auto const tasks = snapshot();
  os << "crew: " << tasks.size() << " live task" << (tasks.size() == 1 ? "" : "s") << '\n';
  // Ids grow: a parent is listed before its children.
  std::unordered_map<std::uint64_t, std::size_t> index;
  for (std::size_t i = 0; i < tasks.size(); ++i) index.emplace(tasks[i].info.id, i);
  std::vector<std::vector<std::size_t>> children(tasks.size());
  std::vector<std::size_t> roots;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    auto it = index.find(tasks[i].info.parent_id);
    if (tasks[i].info.parent_id != 0 && it != index.end())
      children[it->second].push_back(i);
    else
      roots.push_back(i);
  }
  std::vector<std::pair<std::size_t, std::size_t>> stack;  // (task, depth)
  for (auto r = roots.rbegin(); r != roots.rend(); ++r) stack.emplace_back(*r, 1);
  while (!stack.empty()) {
    auto const [i, depth] = stack.back();
    stack.pop_back();
    auto const& t = tasks[i];
    os << std::string(2 * depth, ' ') << "task " << t.info.id;
    if (!t.info.name.empty()) os << " '" << t.info.name << '\'';
    os << ' ' << to_string(t.state) << ", age "
       << detail::format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(t.age));
    if (t.info.parent_id != 0) os << ", parent " << t.info.parent_id;
    os << ", " << t.info.owner_kind;
    if (!t.info.owner_name.empty()) os << " '" << t.info.owner_name << '\'';
    if (t.info.trace) os << ", trace " << t.info.trace.to_string();
    // file:line only: a coroutine's function name under g++ is its frame function's.
    std::string_view file = t.info.spawn_site.file_name();
    if (auto slash = file.rfind('/'); slash != std::string_view::npos)
      file.remove_prefix(slash + 1);
    if (t.info.spawn_site.line() == 0)
      os << ", spawned at an unknown location\n";
    else
      os << ", spawned at " << file << ':' << t.info.spawn_site.line() << '\n';
    for (auto c = children[i].rbegin(); c != children[i].rend(); ++c)
      stack.emplace_back(*c, depth + 1);
  }
}

// ---------------------------------------------------------------- free functions

hook_handle on_task_start(start_hook hook) {
  return runtime::global().on_task_start(std::move(hook));
}

hook_handle on_task_end(end_hook hook) {
  return runtime::global().on_task_end(std::move(hook));
}

bool remove_hook(hook_handle h) noexcept {
  return runtime::global().remove_hook(h);
}

error_handler set_error_handler(error_handler h) {
  return runtime::global().set_error_handler(std::move(h));
}

exception_handler set_exception_handler(exception_handler h) {
  return runtime::global().set_exception_handler(std::move(h));
}

runtime_stats stats() noexcept {
  return runtime::global().stats();
}

std::vector<task_record> snapshot() {
  return runtime::global().snapshot();
}

void dump(std::ostream& os) {
  runtime::global().dump(os);
}

}  // namespace crew
