//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Throw-site traces: crew interposes __cxa_throw, records the frames of the throwing
// thread in a side table keyed by the exception object, and swaps in a destructor that
// drops the record when the exception object dies. Symbolisation happens only when a
// trace is printed. This file must not include <cxxabi.h>: g++ declares __cxa_throw
// with a `void*` type_info parameter, which is what the definition below uses.
//
#include <crew/error.hpp>

#include <boost/stacktrace/safe_dump_to.hpp>

#include <dlfcn.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace crew {
namespace {

using native_frame = boost::stacktrace::frame::native_frame_ptr_t;
using destructor = void (*)(void*);

constexpr std::size_t max_frames = 48;

struct record {
  void* object;
  record* next;
  destructor dest;
  std::size_t size;
  native_frame frames[max_frames];
};

constexpr std::size_t shard_count = 64;
constexpr std::size_t buckets_per_shard = 64;

struct alignas(64) shard {
  std::mutex mutex;
  std::array<record*, buckets_per_shard> buckets{};
};

shard* shards() noexcept {
  static shard table[shard_count];
  return table;
}

std::size_t hash(void const* p) noexcept {
  auto v = reinterpret_cast<std::uintptr_t>(p) >> 4;
  v ^= v >> 17;
  v *= 0x9E3779B97F4A7C15ull;
  return static_cast<std::size_t>(v >> 32);
}

struct slot_ref {
  shard& s;
  record*& head;
};

slot_ref slot_of(void const* object) noexcept {
  auto const h = hash(object);
  auto& s = shards()[h % shard_count];
  return {s, s.buckets[(h / shard_count) % buckets_per_shard]};
}

void insert(record* r) noexcept {
  auto [s, head] = slot_of(r->object);
  std::lock_guard lock(s.mutex);
  r->next = head;
  head = r;
}

record* take(void* object) noexcept {
  auto [s, head] = slot_of(object);
  std::lock_guard lock(s.mutex);
  for (record** p = &head; *p; p = &(*p)->next) {
    if ((*p)->object == object) {
      record* r = *p;
      *p = r->next;
      return r;
    }
  }
  return nullptr;
}

// -1: not yet read from the environment.
std::atomic<int> traces_enabled{-1};

bool enabled() noexcept {
  int v = traces_enabled.load(std::memory_order_relaxed);
  if (v < 0) {
    char const* env = std::getenv("CREW_THROW_SITE_TRACES");
    int const fresh = (env && (std::strcmp(env, "0") == 0 || std::strcmp(env, "off") == 0)) ? 0 : 1;
    traces_enabled.compare_exchange_strong(v, fresh, std::memory_order_relaxed);
    v = traces_enabled.load(std::memory_order_relaxed);
  }
  return v != 0;
}

thread_local bool inside_hook = false;

void destroy_traced(void* object) {
  record* r = take(object);
  destructor const dest = r ? r->dest : nullptr;
  delete r;
  if (dest) dest(object);
}

using cxa_throw_fn = void (*)(void*, void*, destructor);

cxa_throw_fn real_cxa_throw() noexcept {
  static cxa_throw_fn const fn = reinterpret_cast<cxa_throw_fn>(dlsym(RTLD_NEXT, "__cxa_throw"));
  return fn;
}

}  // namespace

void set_throw_site_traces(bool on) noexcept {
  traces_enabled.store(on ? 1 : 0, std::memory_order_relaxed);
}

bool throw_site_traces() noexcept {
  return enabled();
}

boost::stacktrace::stacktrace throw_site_trace(std::exception_ptr const& e) {
  if (!e) return boost::stacktrace::stacktrace(0, 0);  // (0, 0): empty, no stack walk
  // libstdc++'s exception_ptr is one pointer to the thrown object.
  void* const object = *reinterpret_cast<void* const*>(&e);
  auto [s, head] = slot_of(object);
  native_frame frames[max_frames];
  std::size_t size = 0;
  {
    std::lock_guard lock(s.mutex);
    for (record* r = head; r; r = r->next) {
      if (r->object == object) {
        size = r->size;
        std::memcpy(frames, r->frames, size * sizeof(native_frame));
        break;
      }
    }
  }
  return boost::stacktrace::stacktrace::from_dump(frames, size * sizeof(native_frame));
}

}  // namespace crew

extern "C" [[noreturn]] void __cxa_throw(void* object, void* type, void (*dest)(void*)) {
  using namespace crew;
  if (!inside_hook && enabled()) {
    inside_hook = true;
    if (auto* r = new (std::nothrow) record) {
      r->object = object;
      r->dest = dest;
      // Skip this hook's own frame: the first frame is the function that threw.
      std::size_t const n = boost::stacktrace::safe_dump_to(1, r->frames, sizeof r->frames);
      // The count includes the null frame that ends the dump.
      std::size_t size = n < max_frames ? n : max_frames;
      while (size > 0 && r->frames[size - 1] == nullptr) --size;
      r->size = size;
      // Frames hold return addresses; a call to a noreturn function such as this
      // one may be the last instruction of its function, so the return address can
      // lie past its end. Point into the call instruction instead.
      for (std::size_t i = 0; i < r->size; ++i)
        r->frames[i] = static_cast<char const*>(r->frames[i]) - 1;
      insert(r);
      dest = &destroy_traced;
    }
    inside_hook = false;
  }
  real_cxa_throw()(object, type, dest);
  std::abort();  // the real __cxa_throw never returns
}
