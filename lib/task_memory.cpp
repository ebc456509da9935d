//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// Free lists as magazines (Bonwick's): each thread keeps, per size class, a loaded
// magazine and a spare of up to `batch` blocks; full and empty magazines move between
// a thread and a process-wide depot under one lock per `batch` blocks. A task that ends
// on another thread than the one that made it (an io_pool's spreading) gives its
// blocks to that thread, whose full magazines flow back through the depot. The depot
// keeps at most its limit (runtime::set_task_memory_limit); beyond it, blocks go back
// to the heap.
//
#include <crew/detail/task_memory.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

// Under AddressSanitizer every block goes to the heap and back, so that a use after
// the end of a task is still caught.
#if defined(__SANITIZE_ADDRESS__)
#define CREW_TASK_MEMORY_DIRECT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CREW_TASK_MEMORY_DIRECT 1
#endif
#endif

namespace crew::detail {

struct signal_block {
  boost::asio::cancellation_signal signal;
};

namespace {

#ifdef CREW_TASK_MEMORY_DIRECT
constexpr bool direct = true;
#else
constexpr bool direct = false;
#endif

constexpr std::size_t granule = 64;
constexpr std::size_t classes = 16;  // blocks up to 1 KiB
constexpr std::size_t kinds = classes + 1;
constexpr std::size_t signal_kind = classes;  // recycled signals, kept constructed
constexpr std::size_t batch = 128;

// What a kept signal costs: its block and the handler memory it keeps.
constexpr std::size_t signal_bytes = sizeof(signal_block) + 64;

constexpr std::size_t block_bytes(std::size_t kind) noexcept {
  return kind == signal_kind ? signal_bytes : (kind + 1) * granule;
}

/// A free block's first bytes link it to the next; a kept signal's block is linked
/// through a header in front of it.
struct free_block {
  free_block* next;
};

struct signal_slot {
  free_block link;
  void* header_room[2];  // a depot's magazine header overlays link and these
  signal_block block;
};

void release_block(std::size_t kind, free_block* b) noexcept {
  if (kind == signal_kind)
    delete reinterpret_cast<signal_slot*>(b);
  else
    ::operator delete(b);
}

struct magazine {
  free_block* head;
  std::size_t count;

  void push(free_block* b) noexcept {
    b->next = head;
    head = b;
    ++count;
  }
  free_block* pop() noexcept {
    free_block* b = head;
    head = b->next;
    --count;
    return b;
  }
  void release(std::size_t kind) noexcept {
    while (head) release_block(kind, std::exchange(head, head->next));
    count = 0;
  }
};

/// Full magazines shared by every thread, chained through their first blocks.
class depot {
 public:
  /// Takes `m`'s blocks, or gives them back to the heap past the limit.
  void put(std::size_t kind, magazine& m) noexcept {
    if (m.count == 0) return;
    std::size_t const bytes = m.count * block_bytes(kind);
    if (bytes_.load(std::memory_order_relaxed) + bytes <= limit_.load(std::memory_order_relaxed)) {
      auto* h = reinterpret_cast<header*>(m.head);
      h->count = m.count;
      std::lock_guard lock(mutex_);
      h->next_magazine = full_[kind];
      full_[kind] = h;
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      m = {};
      return;
    }
    m.release(kind);
  }

  /// A full magazine, or an empty one if there is none.
  magazine take(std::size_t kind) noexcept {
    header* h;
    {
      std::lock_guard lock(mutex_);
      h = full_[kind];
      if (!h) return {};
      full_[kind] = h->next_magazine;
      bytes_.fetch_sub(h->count * block_bytes(kind), std::memory_order_relaxed);
    }
    return {&h->link, h->count};
  }

  /// Gives every kept block back to the heap, and keeps at most `bytes` from now on.
  void set_limit(std::size_t bytes) noexcept {
    limit_.store(bytes, std::memory_order_relaxed);
    std::array<header*, kinds> all;
    {
      std::lock_guard lock(mutex_);
      all = std::exchange(full_, {});
      bytes_.store(0, std::memory_order_relaxed);
    }
    for (std::size_t k = 0; k < kinds; ++k)
      for (header* h = all[k]; h;) {
        magazine m{&h->link, h->count};
        h = h->next_magazine;
        m.release(k);
      }
  }

  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }

 private:
  /// What a full magazine's first block holds while it is in the depot.
  struct header {
    free_block link;
    header* next_magazine;
    std::size_t count;
  };
  static_assert(sizeof(header) <= granule);

  std::mutex mutex_;
  std::array<header*, kinds> full_{};
  std::atomic<std::size_t> bytes_{0};
  std::atomic<std::size_t> limit_{default_task_memory_limit};
};

depot& the_depot() {
  // Never destroyed: blocks may be given back by static destructors that run after it.
  static depot* d = new depot;
  return *d;
}

// Trivially destructible, so that it can still be read after the thread's destructors
// ran: blocks given back after `cache_owner`'s destructor go straight to the heap.
struct thread_cache {
  std::array<magazine, kinds> loaded;
  std::array<magazine, kinds> spare;
  bool closed;
};

thread_local thread_cache cache{};

struct cache_owner {
  cache_owner() noexcept = default;
  cache_owner(cache_owner const&) = delete;
  cache_owner& operator=(cache_owner const&) = delete;
  ~cache_owner() {
    cache.closed = true;
    for (std::size_t k = 0; k < kinds; ++k) {
      the_depot().put(k, cache.loaded[k]);
      the_depot().put(k, cache.spare[k]);
    }
  }
};

thread_local cache_owner owner;

/// A free block of `kind`, or null if neither this thread nor the depot has one.
free_block* take(std::size_t kind) noexcept {
  magazine& loaded = cache.loaded[kind];
  if (loaded.count == 0) {
    magazine& spare = cache.spare[kind];
    if (spare.count != 0)
      std::swap(loaded, spare);
    else if (cache.closed || (loaded = the_depot().take(kind)).count == 0)
      return nullptr;
  }
  free_block* const b = loaded.pop();
  // The next block of this size is handed out a task later: fetch it now, for writing,
  // since in a burst every block comes back cold.
  if (char const* next = reinterpret_cast<char const*>(loaded.head))
    for (std::size_t at = 0, n = std::min(block_bytes(kind), 5 * granule); at < n; at += granule)
      __builtin_prefetch(next + at, 1);
  return b;
}

/// Keeps `b`; false (the caller frees it) once this thread's cache is gone.
bool give(std::size_t kind, free_block* b) noexcept {
  if (cache.closed) return false;
  (void)owner;  // constructed on a thread's first give-back, destroyed at its end
  magazine& loaded = cache.loaded[kind];
  if (loaded.count == batch) {
    magazine& spare = cache.spare[kind];
    if (spare.count != 0) the_depot().put(kind, spare);
    spare = std::exchange(loaded, magazine{});
  }
  loaded.push(b);
  return true;
}

std::size_t class_of(std::size_t size) noexcept {
  return size == 0 ? classes : (size - 1) / granule;
}

}  // namespace

void* task_memory_allocate(std::size_t size) {
  if (std::size_t const c = class_of(size); !direct && c < classes) {
    if (free_block* b = take(c)) return b;
    return ::operator new(block_bytes(c));
  }
  return ::operator new(size);
}

void task_memory_deallocate(void* p, std::size_t size) noexcept {
  if (std::size_t const c = class_of(size); !direct && c < classes) {
    if (!give(c, static_cast<free_block*>(p))) ::operator delete(p);
    return;
  }
  ::operator delete(p);
}

recycled_signal::recycled_signal() {
  free_block* b = direct ? nullptr : take(signal_kind);
  b_ = b ? &reinterpret_cast<signal_slot*>(b)->block : &(new signal_slot)->block;
}

recycled_signal::~recycled_signal() {
  auto* slot =
      reinterpret_cast<signal_slot*>(reinterpret_cast<char*>(b_) - offsetof(signal_slot, block));
  if (direct || !give(signal_kind, &slot->link)) delete slot;
}

boost::asio::cancellation_signal& recycled_signal::get() const noexcept {
  return b_->signal;
}

void set_task_memory_limit(std::size_t bytes) noexcept {
  the_depot().set_limit(bytes);
}

task_memory_stats get_task_memory_stats() noexcept {
  task_memory_stats s;
  s.limit_bytes = the_depot().limit();
  s.cached_bytes = the_depot().bytes();
  for (std::size_t k = 0; k < kinds; ++k)
    s.cached_bytes += (cache.loaded[k].count + cache.spare[k].count) * block_bytes(k);
  return s;
}

}  // namespace crew::detail
