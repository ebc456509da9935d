//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_PIPELINE_HPP
#define CREW_PIPELINE_HPP

#include <crew/config.hpp>
#include <crew/detail/io_object.hpp>
#include <crew/detail/task_shape.hpp>
#include <crew/error.hpp>
#include <crew/source_location.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace crew {

/** What a pipeline does when a stage fails on one item. */
enum class item_failure {
  /// The item is dropped, its failure recorded; every other item goes on (the default).
  collect,
  /// The first failure cancels every stage; the run ends with it.
  fatal,
};

/** Options of a pipeline. Designated initializers keep call sites readable. */
struct pipeline_options {
  /// The sink sees items in input order (a bounded reorder buffer); false: as they come.
  bool ordered = true;
  /// What a stage's failure on one item does.
  item_failure failures = item_failure::collect;
  /// The capacity of each channel between two stages, at least 1: a full channel makes
  /// its producer wait (back-pressure).
  std::size_t capacity = 16;
  /// Appears in diagnostics, and as the owner name of the pipeline's tasks.
  std::string name{};
  /// Called once per failure, after it is recorded, on the pipeline's executor, one call
  /// at a time (a task group's `on_failure`).
  std::function<void(task_failure const&)> on_failure{};
  /// The most failures kept in a run's `task_errors`, at least 1, or `crew::unlimited`;
  /// past it failures are counted (`task_errors::dropped()`), as a task group does.
  std::size_t keep_failures = 1024;
};

/** What one stage did in a run. */
struct stage_report {
  std::string name;
  std::size_t concurrency = 0;
  std::size_t items_in = 0;   ///< items the stage function was called with
  std::size_t items_out = 0;  ///< items it produced
  std::size_t failed = 0;     ///< items it failed on (dropped under `collect`)
};

/** What a run did: the outcome's counts; the failures themselves are in its exception. */
struct pipeline_result {
  std::size_t items_in = 0;   ///< items read from the source
  std::size_t items_out = 0;  ///< items the sink took (calls that returned normally)
  std::size_t failed = 0;     ///< items some stage failed on
  std::vector<stage_report> stages;
};

/** A run's failures grouped by stage name ("source" and "sink" for those tasks), each
    group in the order recorded; `task_failure::index` is the item's position in the
    input. */
std::map<std::string, std::vector<task_failure>, std::less<>> failures_by_stage(
    task_errors const& errors);

/// The same for a run's exception: empty if it is null or not a `task_errors`.
std::map<std::string, std::vector<task_failure>, std::less<>> failures_by_stage(
    std::exception_ptr const& e);

namespace detail {

/// An item between two stages, its type erased: the channels and the workers are
/// compiled once, in lib/pipeline.cpp.
struct pipeline_box {
  virtual ~pipeline_box() = default;
};

template <class T>
struct pipeline_value final : pipeline_box {
  template <class U>
  explicit pipeline_value(U&& u) : value(std::forward<U>(u)) {}
  T value;
};

using pipeline_item = std::unique_ptr<pipeline_box>;

/// A stage function, erased: awaitable (`async`) or plain (`sync`); one of them is set.
/// Called by all of the stage's workers, possibly at once on several threads.
struct pipeline_stage_fn {
  unique_function<net::awaitable<pipeline_item>(pipeline_item)> async;
  unique_function<pipeline_item(pipeline_item)> sync;
};

/// The source, erased: the next item, or null at the end. Called by the source task only.
using pipeline_source = unique_function<pipeline_item()>;

/// The sink, erased as the stage functions are. Called by the sink task only.
struct pipeline_sink {
  unique_function<net::awaitable<void>(pipeline_item)> async;
  unique_function<void(pipeline_item)> sync;
};

using pipeline_handler = net::any_completion_handler<void(std::exception_ptr, pipeline_result)>;

class pipeline_run;

/** A pipeline's definition (options and stages) and its run in flight; shared by the
    pipeline object and its runs, compiled in lib/. */
class pipeline_def {
 public:
  /// @throws std::invalid_argument naming the option if one is out of range.
  explicit pipeline_def(pipeline_options options);
  ~pipeline_def();

  /// @throws std::invalid_argument if `concurrency` is 0 or `crew::unlimited`.
  void add_stage(std::string name, std::size_t concurrency, source_location site,
                 pipeline_stage_fn fn);

  /// Starts a run of the stages as they are now; completes `handler` once. A run already
  /// in flight: completes `handler` with crew::error::already_running.
  void start_run(net::any_io_executor const& ex, pipeline_source source, pipeline_sink sink,
                 source_location site, pipeline_handler handler);

  /// Cancels the run in flight, if any.
  void cancel() noexcept;
  bool running() const noexcept;
  std::size_t stage_count() const noexcept;
  pipeline_options const& options() const noexcept { return options_; }

  struct stage;

 private:
  pipeline_options const options_;
  std::vector<std::shared_ptr<stage>> stages_;
  std::weak_ptr<pipeline_run> run_;
  mutable std::mutex mutex_;
};

template <class T>
struct pipeline_awaitable_traits {
  static constexpr bool is_awaitable = false;
  using value_type = T;
};

template <class T, class E>
struct pipeline_awaitable_traits<net::awaitable<T, E>> {
  static constexpr bool is_awaitable = true;
  using value_type = T;
  using executor_type = E;
};

/// What a stage function `F` called with an `In` produces.
template <class F, class In>
struct pipeline_stage_traits {
  static_assert(std::is_invocable_v<F&, In&&>,
                "crew::pipeline::stage: the stage function must be callable with the previous "
                "stage's output (an rvalue)");
  using result_type = std::invoke_result_t<F&, In&&>;
  using traits = pipeline_awaitable_traits<std::remove_cvref_t<result_type>>;
  static constexpr bool is_awaitable = traits::is_awaitable;
  using output_type = std::remove_cvref_t<typename traits::value_type>;
  static_assert(!std::is_void_v<output_type>,
                "crew::pipeline::stage: the stage function must return a value, or an "
                "awaitable of one");
};

}  // namespace detail

/** A chain of named stages joined by bounded channels: a source feeds the first stage,
    each stage runs its function on `concurrency` items at once, and a sink takes the
    last stage's output, one item at a time (in input order when `ordered`).

    Built by value: `crew::pipeline<std::string> p{ex}; auto p2 = std::move(p).stage(
    "parse", 4, parse);` — each `stage` call returns a pipeline whose output is the
    stage's. `async_run(source, sink, token)` runs it over a range.

    Every task of a run (the source, each stage's workers, the sink) is a crew task of
    one group (kind "pipeline"): the runtime's hooks, stats and task dump see them, and
    their failures go through crew's failure path.

    Destroying the pipeline cancels its run in flight, which still completes (with
    `operation_aborted`) and never blocks. Member functions may be called from any thread.

    @tparam In The source's items.
    @tparam Out The items the sink gets: the last stage's output (`In` without stages).
    @tparam Executor The executor the tasks run on.
*/
template <class In, class Out = In, class Executor = net::any_io_executor>
class basic_pipeline {
 public:
  using executor_type = Executor;
  using input_type = In;
  using output_type = Out;

  template <class OtherExecutor>
  struct rebind_executor {
    using other = basic_pipeline<In, Out, OtherExecutor>;
  };

  /** A pipeline without stages on `ex` (an executor, or an execution context such as an
      io_context), with the default options (ordered, failures collected, capacity 16).
  */
  template <detail::executor_or_context<Executor> E>
  explicit basic_pipeline(E&& ex) : basic_pipeline(std::forward<E>(ex), pipeline_options{}) {}

  /// The same with `options`; two constructors, not a defaulted parameter (DESIGN §2).
  /// @throws std::invalid_argument if `options.capacity` or `options.keep_failures` is 0.
  template <detail::executor_or_context<Executor> E>
  basic_pipeline(E&& ex, pipeline_options options)
      : ex_(detail::executor_from<Executor>(std::forward<E>(ex))),
        def_(std::make_shared<detail::pipeline_def>(std::move(options))) {}

  basic_pipeline(basic_pipeline&& other) noexcept = default;

  /// Cancels this pipeline's run in flight (as the destructor does), then takes `other`'s.
  basic_pipeline& operator=(basic_pipeline&& other) noexcept;

  /// Cancels the run in flight, if any, and returns at once.
  ~basic_pipeline();

  executor_type get_executor() const noexcept { return ex_; }

  /** Appends a stage; the pipeline moves into the result.

      @param name The stage's name: its workers are tasks named "<name> worker <k>", and
      its failures are named after it. Empty: "stage <n>".
      @param concurrency How many items the stage works on at once (its workers), >= 1.
      @param fn Called with each item (an rvalue `Out`), returning a value or an
      `awaitable<T>` (on `any_io_executor`); T is the next stage's input. All workers
      call the same `fn`, possibly at once on several threads of a multi-threaded
      io_context. What it throws is a failure of that item.
      @param site Where the stage was added; its failures' spawn site.
      @throws std::invalid_argument if `concurrency` is 0 or `crew::unlimited`, or `fn` is
      a null function pointer or an empty std::function.
  */
  template <class F>
  auto stage(std::string name, std::size_t concurrency, F fn,
             source_location site = source_location::current()) &&;

  /** Runs the pipeline over `source`: reads its items lazily, runs every stage, hands
      each result to `sink`.

      @param source An input range of items convertible to `In`. An lvalue is referenced
      (it must outlive the run), an rvalue is moved into the run and its items moved out.
      @param sink Called with each output (an rvalue `Out`), one call at a time, in
      input order if `ordered`; returns void or `awaitable<void>`. A sink that throws
      ends the run (always fatal), as does a source that throws.
      @param site Where the run was started: the source's and the sink's spawn site.

      @par Completion signature
      `void(std::exception_ptr, pipeline_result)`: the exception is null if nothing
      failed, else a `crew::task_errors` with every failure (each item's names its stage
      and, in `index`, the item's position in the input); `operation_aborted`
      (`boost::system::system_error`) if the run was cancelled and nothing failed;
      `crew::error::already_running` if a run is in flight. The result counts what the
      run did, also when it failed.

      @par Per-operation cancellation
      All types: every task of the run is cancelled (their pending channel operations
      abort); the run completes once they all ended.

      @throws std::invalid_argument if `sink` is a null function pointer or an empty
      std::function; std::logic_error if the pipeline was moved from.
  */
  template <class Range, class Sink,
            BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr, pipeline_result))
                CompletionToken BOOST_ASIO_DEFAULT_COMPLETION_TOKEN_TYPE(executor_type)>
  auto async_run(Range&& source, Sink sink,
                 CompletionToken&& token BOOST_ASIO_DEFAULT_COMPLETION_TOKEN(executor_type),
                 source_location site = source_location::current());

  /// `co_await p.run(source, sink)`: the awaitable form of async_run; throws what the
  /// run reports (a `crew::task_errors`), so use `async_run` with `as_tuple` to get the
  /// counts of a run with collected failures.
  template <class Range, class Sink>
  net::awaitable<pipeline_result> run(Range&& source, Sink sink,
                                      source_location site = source_location::current()) {
    return async_run(std::forward<Range>(source), std::move(sink), net::use_awaitable, site);
  }

  /// Cancels the run in flight, if any (as cancelling async_run does).
  void cancel() noexcept {
    if (def_) def_->cancel();
  }

  /// Whether a run is in flight.
  bool running() const noexcept { return def_ && def_->running(); }

  /// How many stages the pipeline has.
  std::size_t stage_count() const noexcept { return def_ ? def_->stage_count() : 0; }

 private:
  template <class, class, class>
  friend class basic_pipeline;
  class initiate_run;

  basic_pipeline(Executor const& ex, std::shared_ptr<detail::pipeline_def> def)
      : ex_(ex), def_(std::move(def)) {}

  detail::pipeline_def& def() const;

  Executor ex_;
  std::shared_ptr<detail::pipeline_def> def_;
};

/// A pipeline on `any_io_executor`: `crew::pipeline<std::string> p{ex};`.
template <class In, class Out = In>
using pipeline = basic_pipeline<In, Out, net::any_io_executor>;

}  // namespace crew

#include <crew/impl/pipeline.hpp>

#endif
