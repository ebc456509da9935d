//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A pipeline's run: one group core (kind "pipeline") owns the source task, every
// stage's workers and the sink task; bounded concurrent channels of type-erased items
// join them. See docs/pipeline.md.
//
#include <crew/detail/exception_cast.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/group_core.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/task.hpp>
#include <crew/pipeline.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <deque>
#include <limits>
#include <stdexcept>

namespace crew {

std::map<std::string, std::vector<task_failure>, std::less<>> failures_by_stage(
    task_errors const& errors) {
  std::map<std::string, std::vector<task_failure>, std::less<>> out;
  for (auto const& f : errors.failures()) out[f.name].push_back(f);
  return out;
}

std::map<std::string, std::vector<task_failure>, std::less<>> failures_by_stage(
    std::exception_ptr const& e) {
  if (auto const* errors = detail::exception_cast<task_errors>(e))
    return failures_by_stage(*errors);
  return {};
}

namespace detail {

void throw_pipeline_argument(char const* who, char const* what) {
  throw std::invalid_argument(std::string(who) + " " + what);
}

struct pipeline_def::stage {
  std::string name;
  std::size_t concurrency;
  source_location site;
  pipeline_stage_fn fn;
};

namespace {

/// What travels on a channel: an item, the mark of an item a stage failed on (ordered
/// mode, so that the sink can skip its number), or the end of the stream (one per
/// receiving worker). `empty` marks a free place of the sink's reorder window.
enum class envelope_kind : std::uint8_t { empty, item, skip, end };

struct envelope {
  std::uint64_t seq = 0;
  pipeline_item value;
  envelope_kind kind = envelope_kind::empty;
};

using channel = net::experimental::concurrent_channel<void(boost::system::error_code, envelope)>;
/// The ordered mode's admission window: one credit per item in flight.
using credit_channel = net::experimental::concurrent_channel<void(boost::system::error_code)>;

std::size_t saturating_add(std::size_t a, std::size_t b) noexcept {
  return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                         : a + b;
}

std::size_t saturating_mul(std::size_t a, std::size_t b) noexcept {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
    return std::numeric_limits<std::size_t>::max();
  return a * b;
}

/// A channel operation that failed: crew never closes nor cancels its channels, so
/// this is the task's own cancellation (channel_cancelled), reported as Asio's.
void throw_aborted() {
  throw boost::system::system_error(net::error::operation_aborted);
}

bool cancel_requested() noexcept {
  task_node const* n = current_task();
  return n && n->cancel_requested();
}

}  // namespace

/// One run of a pipeline: its group, channels and counts. Shared by its tasks (through
/// their task_ref) and the group's wait; the pipeline_def only looks at it (weakly).
class pipeline_run : public std::enable_shared_from_this<pipeline_run> {
 public:
  struct counts {
    std::atomic<std::size_t> in{0}, out{0}, failed{0};
    std::atomic<std::size_t> live{0};  // workers not ended yet
  };

  /// Held by every task's coroutine frame, as a parameter: when the last frame is gone
  /// (ended, or destroyed with its io_context) the channels go, while the context's
  /// channel service still exists.
  class task_ref {
   public:
    explicit task_ref(std::shared_ptr<pipeline_run> r) noexcept : run_(std::move(r)) {
      run_->live_tasks_.fetch_add(1, std::memory_order_relaxed);
    }
    task_ref(task_ref&& o) noexcept : run_(std::move(o.run_)) {}
    task_ref& operator=(task_ref&&) = delete;
    ~task_ref() {
      if (run_ && run_->live_tasks_.fetch_sub(1, std::memory_order_acq_rel) == 1)
        run_->release_channels();
    }
    pipeline_run* operator->() const noexcept { return run_.get(); }
    pipeline_run& operator*() const noexcept { return *run_; }

   private:
    std::shared_ptr<pipeline_run> run_;
  };

  pipeline_run(net::any_io_executor const& ex, pipeline_options const& o,
               std::vector<std::shared_ptr<pipeline_def::stage>> stages, pipeline_source source,
               pipeline_sink sink)
      : ex_(plain_executor(ex)),
        ordered_(o.ordered),
        fatal_(o.failures == item_failure::fatal),
        stages_(std::move(stages)),
        source_(std::move(source)),
        sink_(std::move(sink)),
        counts_(new counts[stages_.size()]) {
    task_group_options g;
    g.policy = fatal_ ? failure_policy::cancel_on_first : failure_policy::collect_all;
    g.on_failure = o.on_failure;
    g.name = o.name;
    g.keep_failures = o.keep_failures;
    group_ = std::make_shared<group_core>(ex_, g, "pipeline");
    channels_.reserve(stages_.size() + 1);
    for (std::size_t i = 0; i <= stages_.size(); ++i)
      channels_.push_back(std::make_unique<channel>(ex_, o.capacity));
    if (ordered_) credits_ = std::make_unique<credit_channel>(ex_, window(o.capacity));
    for (std::size_t i = 0; i < stages_.size(); ++i)
      counts_[i].live.store(stages_[i]->concurrency, std::memory_order_relaxed);
  }

  /// The ordered mode's bound on items in flight: what the channels and the workers
  /// hold, plus the item in the source's hand.
  std::size_t window(std::size_t capacity) const noexcept {
    std::size_t w = saturating_mul(capacity, stages_.size() + 1);
    for (auto const& s : stages_) w = saturating_add(w, s->concurrency);
    return saturating_add(w, 1);
  }

  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }

  void start(pipeline_handler&& h, net::any_io_executor const& io_ex, source_location site) {
    auto slot = net::get_associated_cancellation_slot(h);
    handler_.emplace(std::move(h), io_ex);
    if (slot.is_connected())
      slot.template emplace<keyed_cancellation<pipeline_run>>(
          keyed_cancellation<pipeline_run>{weak_from_this(), 1});
    std::exception_ptr spawn_error;
    try {
      spawn(run_sink(task_ref(shared_from_this())), "sink", site);
      for (std::size_t i = stages_.size(); i-- > 0;) {
        auto const& s = *stages_[i];
        for (std::size_t k = 1; k <= s.concurrency; ++k)
          spawn(run_worker(task_ref(shared_from_this()), i),
                s.name + " worker " + std::to_string(k), s.site);
      }
      spawn(run_source(task_ref(shared_from_this())), "source", site);
    } catch (...) {
      // Only allocation fails here: what was spawned ends cancelled, the run with this.
      spawn_error = std::current_exception();
      group_->cancel(net::cancellation_type::terminal);
    }
    group_->async_wait(wait_handler([self = shared_from_this(), spawn_error](std::exception_ptr e) {
                         self->finish(spawn_error ? spawn_error : std::move(e));
                       }),
                       std::nullopt);
  }

  void cancel() noexcept {
    if (finished()) return;
    aborted_.store(true, std::memory_order_release);
    group_->cancel(net::cancellation_type::terminal);
  }

  void cancel_key(std::uint64_t, net::cancellation_type) noexcept { cancel(); }

 private:
  void spawn(net::awaitable<void> body, std::string name, source_location site) {
    task_spec spec;
    spec.name = std::move(name);
    spec.site = site;
    group_->spawn(task_body(std::move(body)), std::move(spec), group_core::admit_mode::spawn);
  }

  void finish(std::exception_ptr e) noexcept {
    finished_.store(true, std::memory_order_release);
    if (!e && aborted_.load(std::memory_order_acquire))
      e = std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted));
    pipeline_result r;
    try {
      r = result();
    } catch (...) {
      // Only allocation fails: the outcome still reaches the handler, without the counts.
    }
    handler_->post(std::move(e), std::move(r));
  }

  pipeline_result result() const {
    pipeline_result r;
    r.items_in = items_in_.load(std::memory_order_relaxed);
    r.items_out = items_out_.load(std::memory_order_relaxed);
    r.stages.reserve(stages_.size());
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      stage_report s;
      s.name = stages_[i]->name;
      s.concurrency = stages_[i]->concurrency;
      s.items_in = counts_[i].in.load(std::memory_order_relaxed);
      s.items_out = counts_[i].out.load(std::memory_order_relaxed);
      s.failed = counts_[i].failed.load(std::memory_order_relaxed);
      r.failed += s.failed;
      r.stages.push_back(std::move(s));
    }
    return r;
  }

  void release_channels() noexcept {
    channels_.clear();
    credits_.reset();
  }

  /// A source, sink or worker that ends with an exception ends the run: whatever it is,
  /// a cancellation (then this is one more) or a failure (always fatal).
  void fail_fast() noexcept { group_->cancel(net::cancellation_type::terminal); }

  /// How many end marks channel `i` carries: one per worker reading it.
  std::size_t readers(std::size_t i) const noexcept {
    return i < stages_.size() ? stages_[i]->concurrency : 1;
  }

  static net::awaitable<void> send(channel& ch, envelope e) {
    auto op =
        ch.async_send(boost::system::error_code{}, std::move(e), net::as_tuple(net::use_awaitable));
    auto [ec] = co_await std::move(op);
    if (ec) throw_aborted();
  }

  static net::awaitable<void> send_ends(channel& ch, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      envelope e;
      e.kind = envelope_kind::end;
      co_await send(ch, std::move(e));
    }
  }

  static net::awaitable<void> run_source(task_ref r) {
    try {
      channel& out = *r->channels_.front();
      for (std::uint64_t seq = 0;; ++seq) {
        if (r->credits_) {  // ordered: wait for room in the window
          auto op = r->credits_->async_send(boost::system::error_code{},
                                            net::as_tuple(net::use_awaitable));
          auto [ec] = co_await std::move(op);
          if (ec) throw_aborted();
        }
        pipeline_item item = r->source_();
        if (!item) break;
        r->items_in_.fetch_add(1, std::memory_order_relaxed);
        envelope e;
        e.seq = seq;
        e.value = std::move(item);
        e.kind = envelope_kind::item;
        auto sent = out.async_send(boost::system::error_code{}, std::move(e),
                                   net::as_tuple(net::use_awaitable));
        if (std::get<0>(co_await std::move(sent))) throw_aborted();
      }
      co_await send_ends(out, r->readers(0));
    } catch (...) {
      r->fail_fast();
      throw;
    }
  }

  static net::awaitable<void> run_worker(task_ref r, std::size_t i) {
    try {
      auto& st = *r->stages_[i];
      auto& counts = r->counts_[i];
      channel& in = *r->channels_[i];
      channel& out = *r->channels_[i + 1];
      std::uint64_t const id = current_task() ? current_task()->id_ : 0;
      for (;;) {
        auto received = co_await in.async_receive(net::as_tuple(net::use_awaitable));
        if (std::get<0>(received)) throw_aborted();
        envelope& e = std::get<1>(received);
        if (e.kind == envelope_kind::end) break;
        if (e.kind == envelope_kind::item) {
          counts.in.fetch_add(1, std::memory_order_relaxed);
          std::exception_ptr error;
          try {
            if (st.fn.sync)
              e.value = st.fn.sync(std::move(e.value));
            else
              e.value = co_await st.fn.async(std::move(e.value));
          } catch (...) {
            error = std::current_exception();
          }
          if (error) {
            // The run's cancellation reaching the stage function is no item's failure.
            if (cancel_requested() && is_operation_aborted(error)) std::rethrow_exception(error);
            counts.failed.fetch_add(1, std::memory_order_relaxed);
            r->record(id, st, e.seq, std::move(error));
            if (!r->ordered_ || r->fatal_) continue;
            e.value.reset();
            e.kind = envelope_kind::skip;  // the sink skips its number
          } else {
            counts.out.fetch_add(1, std::memory_order_relaxed);
          }
        }
        auto sent = out.async_send(boost::system::error_code{}, std::move(e),
                                   net::as_tuple(net::use_awaitable));
        if (std::get<0>(co_await std::move(sent))) throw_aborted();
      }
      if (counts.live.fetch_sub(1, std::memory_order_acq_rel) == 1)
        co_await send_ends(out, r->readers(i + 1));
    } catch (...) {
      r->fail_fast();
      throw;
    }
  }

  /// Hands one item to the user's sink.
  static net::awaitable<void> deliver(pipeline_run& r, pipeline_item item) {
    if (r.sink_.sync)
      r.sink_.sync(std::move(item));
    else
      co_await r.sink_.async(std::move(item));
    r.items_out_.fetch_add(1, std::memory_order_relaxed);
  }

  static net::awaitable<void> run_sink(task_ref r) {
    try {
      channel& in = *r->channels_.back();
      // Ordered: place k holds item next + k. The window keeps k below its bound.
      std::deque<envelope> pending;
      std::uint64_t next = 0;
      for (;;) {
        auto received = co_await in.async_receive(net::as_tuple(net::use_awaitable));
        if (std::get<0>(received)) throw_aborted();
        envelope& e = std::get<1>(received);
        if (e.kind == envelope_kind::end) break;
        if (!r->ordered_) {
          co_await deliver(*r, std::move(e.value));
          continue;
        }
        std::size_t const k = static_cast<std::size_t>(e.seq - next);
        if (pending.size() <= k) pending.resize(k + 1);
        pending[k] = std::move(e);
        while (!pending.empty() && pending.front().kind != envelope_kind::empty) {
          envelope ready = std::move(pending.front());
          pending.pop_front();
          ++next;
          if (ready.kind == envelope_kind::item) co_await deliver(*r, std::move(ready.value));
          r->credits_->try_receive([](boost::system::error_code) {});
        }
      }
    } catch (...) {
      r->fail_fast();
      throw;
    }
  }

  void record(std::uint64_t id, pipeline_def::stage const& st, std::uint64_t seq,
              std::exception_ptr e) noexcept {
    try {
      task_failure f = make_failure(id, st.name, st.site, std::move(e));
      f.index = static_cast<std::size_t>(seq);
      group_->record(std::move(f));
    } catch (...) {
      std::terminate();  // only allocation fails; a lost failure breaks the contract
    }
  }

  net::any_io_executor const ex_;
  bool const ordered_;
  bool const fatal_;
  std::vector<std::shared_ptr<pipeline_def::stage>> const stages_;
  pipeline_source source_;
  pipeline_sink sink_;
  std::unique_ptr<counts[]> counts_;
  std::shared_ptr<group_core> group_;
  std::vector<std::unique_ptr<channel>> channels_;
  std::unique_ptr<credit_channel> credits_;
  std::optional<stored_handler<void(std::exception_ptr, pipeline_result)>> handler_;
  std::atomic<std::size_t> items_in_{0}, items_out_{0};
  std::atomic<std::size_t> live_tasks_{0};
  std::atomic<bool> aborted_{false};
  std::atomic<bool> finished_{false};
};

// ---------------------------------------------------------------- pipeline_def

pipeline_def::pipeline_def(pipeline_options options) : options_(std::move(options)) {
  if (options_.capacity == 0)
    throw std::invalid_argument("crew::pipeline: options.capacity must be at least 1, got 0");
  if (options_.keep_failures == 0)
    throw std::invalid_argument(
        "crew::pipeline: options.keep_failures must be at least 1 or crew::unlimited, got 0");
}

pipeline_def::~pipeline_def() = default;

void pipeline_def::add_stage(std::string name, std::size_t concurrency, source_location site,
                             pipeline_stage_fn fn) {
  std::lock_guard lock(mutex_);
  if (name.empty()) name = "stage " + std::to_string(stages_.size() + 1);
  if (concurrency == 0)
    throw std::invalid_argument("crew::pipeline::stage: the stage '" + name +
                                "' has concurrency 0; it must be at least 1");
  if (concurrency == unlimited)
    throw std::invalid_argument("crew::pipeline::stage: the stage '" + name +
                                "' has concurrency crew::unlimited; a stage runs that many "
                                "workers, so it must be a number");
  stages_.push_back(
      std::make_shared<stage>(stage{std::move(name), concurrency, site, std::move(fn)}));
}

void pipeline_def::start_run(net::any_io_executor const& ex, pipeline_source source,
                             pipeline_sink sink, source_location site, pipeline_handler handler) {
  std::shared_ptr<pipeline_run> run;
  {
    std::lock_guard lock(mutex_);
    if (auto current = run_.lock(); !current || current->finished()) {
      run =
          std::make_shared<pipeline_run>(ex, options_, stages_, std::move(source), std::move(sink));
      run_ = run;
    }
  }
  if (!run) {
    stored_handler<void(std::exception_ptr, pipeline_result)>(std::move(handler), ex)
        .post(std::make_exception_ptr(boost::system::system_error(
                  make_error_code(error::already_running), "crew::pipeline::async_run")),
              pipeline_result{});
    return;
  }
  run->start(std::move(handler), ex, site);
}

void pipeline_def::cancel() noexcept {
  std::shared_ptr<pipeline_run> run;
  {
    std::lock_guard lock(mutex_);
    run = run_.lock();
  }
  if (run) run->cancel();
}

bool pipeline_def::running() const noexcept {
  std::lock_guard lock(mutex_);
  auto run = run_.lock();
  return run && !run->finished();
}

std::size_t pipeline_def::stage_count() const noexcept {
  std::lock_guard lock(mutex_);
  return stages_.size();
}

}  // namespace detail
}  // namespace crew
