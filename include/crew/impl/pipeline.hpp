//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// What needs the user's types: boxing and unboxing items, calling the stage functions,
// iterating the source, calling the sink. Everything else is in lib/pipeline.cpp.
//
#ifndef CREW_IMPL_PIPELINE_HPP
#define CREW_IMPL_PIPELINE_HPP

#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>

namespace crew {
namespace detail {

/// Throws `std::invalid_argument` "`who`: `what`"; out of line.
[[noreturn]] void throw_pipeline_argument(char const* who, char const* what);

/// Refuses a callable that cannot be called: a null function pointer, an empty
/// std::function.
template <class F>
void check_pipeline_callable(F const& f, char const* who) {
  if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>) {
    if (f == nullptr) throw_pipeline_argument(who, "is a null function pointer");
  } else if constexpr (is_std_function<F>::value) {
    if (!f) throw_pipeline_argument(who, "is an empty std::function");
  }
}

template <class T, class U>
pipeline_item make_pipeline_item(U&& u) {
  return pipeline_item(new pipeline_value<T>(std::forward<U>(u)));
}

template <class T>
T take_pipeline_item(pipeline_item& item) {
  T value = std::move(static_cast<pipeline_value<T>&>(*item).value);
  item.reset();
  return value;
}

/// One item through an awaitable stage function. `f` lives in the stage, which the run
/// keeps until its last worker ended. An item whose type does not change keeps its box.
template <class In, class A, class F>
net::awaitable<pipeline_item> call_pipeline_stage(F& f, pipeline_item item) {
  In value = std::move(static_cast<pipeline_value<In>&>(*item).value);
  if constexpr (!std::is_same_v<In, A>) item.reset();
  // Named, not a temporary of the co_await's full-expression (g++ 12, DESIGN §2).
  A out = co_await std::invoke(f, std::move(value));
  if constexpr (std::is_same_v<In, A> && std::is_move_assignable_v<A>) {
    static_cast<pipeline_value<A>&>(*item).value = std::move(out);
    co_return item;
  } else {
    co_return make_pipeline_item<A>(std::move(out));
  }
}

template <class Out, class S>
net::awaitable<void> call_pipeline_sink(S& s, pipeline_item item) {
  Out value = take_pipeline_item<Out>(item);
  co_await std::invoke(s, std::move(value));
}

/// The source: a range referenced (an lvalue) or owned (an rvalue), iterated lazily by
/// the source task. The range lives on the heap, so moving the erased function never
/// moves it under its iterators.
template <class In, class Range>
pipeline_source make_pipeline_source(Range&& range) {
  using range_type = std::remove_reference_t<Range>;
  constexpr bool owned = !std::is_lvalue_reference_v<Range>;
  using begin_type = decltype(std::begin(std::declval<range_type&>()));
  using end_type = decltype(std::end(std::declval<range_type&>()));
  using reference = std::iter_reference_t<begin_type>;
  // An owned range's items are moved out of it.
  constexpr bool moves = owned && std::is_lvalue_reference_v<reference> &&
                         !std::is_const_v<std::remove_reference_t<reference>>;
  using read_type = std::conditional_t<moves, std::remove_reference_t<reference>&&, reference>;
  static_assert(std::is_constructible_v<In, read_type>,
                "crew::pipeline::async_run: the source's items must convert to the "
                "pipeline's input type");
  struct state {
    std::conditional_t<owned, std::remove_cv_t<range_type>, range_type*> range;
    std::optional<begin_type> it;
    std::optional<end_type> end;
    range_type& get() {
      if constexpr (owned)
        return range;
      else
        return *range;
    }
  };
  std::unique_ptr<state> s;
  if constexpr (owned)
    s.reset(new state{std::move(range), {}, {}});
  else
    s.reset(new state{&range, {}, {}});
  return [s = std::move(s)]() mutable -> pipeline_item {
    if (!s->it) {
      s->it.emplace(std::begin(s->get()));
      s->end.emplace(std::end(s->get()));
    }
    if (*s->it == *s->end) return nullptr;
    pipeline_item item;
    if constexpr (moves)
      item = make_pipeline_item<In>(In(std::move(**s->it)));
    else
      item = make_pipeline_item<In>(In(**s->it));
    ++*s->it;
    return item;
  };
}

template <class Out, class Sink>
pipeline_sink make_pipeline_sink(Sink&& sink) {
  using sink_type = std::decay_t<Sink>;
  static_assert(std::is_invocable_v<sink_type&, Out&&>,
                "crew::pipeline::async_run: the sink must be callable with the pipeline's "
                "output (an rvalue)");
  using result_type = std::remove_cvref_t<std::invoke_result_t<sink_type&, Out&&>>;
  pipeline_sink out;
  if constexpr (std::is_void_v<result_type>) {
    out.sync = [s = sink_type(std::forward<Sink>(sink))](pipeline_item item) mutable {
      std::invoke(s, take_pipeline_item<Out>(item));
    };
  } else {
    static_assert(std::is_same_v<result_type, net::awaitable<void>>,
                  "crew::pipeline::async_run: the sink returns void or awaitable<void> (on "
                  "any_io_executor)");
    out.async = [s = sink_type(std::forward<Sink>(sink))](pipeline_item item) mutable {
      return call_pipeline_sink<Out>(s, std::move(item));
    };
  }
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------- initiation

/// The initiation of async_run, as Asio's own initiations are: a named class with the
/// I/O executor.
template <class In, class Out, class Executor>
class basic_pipeline<In, Out, Executor>::initiate_run {
 public:
  using executor_type = Executor;

  initiate_run(basic_pipeline const& p, source_location site)
      : ex_(p.get_executor()), def_(p.def_), site_(site) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler>
  void operator()(Handler&& handler, detail::pipeline_source source,
                  detail::pipeline_sink sink) const {
    def_->start_run(net::any_io_executor(ex_), std::move(source), std::move(sink), site_,
                    detail::pipeline_handler(std::forward<Handler>(handler)));
  }

 private:
  executor_type ex_;
  std::shared_ptr<detail::pipeline_def> def_;
  source_location site_;
};

// ---------------------------------------------------------------- basic_pipeline

template <class In, class Out, class Executor>
basic_pipeline<In, Out, Executor>& basic_pipeline<In, Out, Executor>::operator=(
    basic_pipeline&& other) noexcept {
  if (this != &other) {
    if (def_) def_->cancel();
    ex_ = std::move(other.ex_);
    def_ = std::move(other.def_);
  }
  return *this;
}

template <class In, class Out, class Executor>
basic_pipeline<In, Out, Executor>::~basic_pipeline() {
  if (def_) def_->cancel();
}

template <class In, class Out, class Executor>
detail::pipeline_def& basic_pipeline<In, Out, Executor>::def() const {
  if (!def_) throw std::logic_error("crew::pipeline: the pipeline was moved from");
  return *def_;
}

template <class In, class Out, class Executor>
template <class F>
auto basic_pipeline<In, Out, Executor>::stage(std::string name, std::size_t concurrency, F fn,
                                              source_location site) && {
  using traits = detail::pipeline_stage_traits<F, Out>;
  using next_type = typename traits::output_type;
  if constexpr (traits::is_awaitable)
    static_assert(std::is_same_v<typename traits::traits::executor_type, net::any_io_executor>,
                  "crew::pipeline::stage: a stage's awaitable runs on net::any_io_executor "
                  "(the default of net::awaitable)");
  auto& d = def();
  detail::check_pipeline_callable(fn, "crew::pipeline::stage: the stage function");
  detail::pipeline_stage_fn erased;
  if constexpr (traits::is_awaitable) {
    erased.async = [f = std::move(fn)](detail::pipeline_item item) mutable {
      return detail::call_pipeline_stage<Out, next_type>(f, std::move(item));
    };
  } else {
    erased.sync = [f = std::move(fn)](detail::pipeline_item item) mutable {
      if constexpr (std::is_same_v<Out, next_type> && std::is_move_assignable_v<Out>) {
        // The item keeps its box.
        auto& value = static_cast<detail::pipeline_value<Out>&>(*item).value;
        value = std::invoke(f, std::move(value));
        return item;
      } else {
        return detail::make_pipeline_item<next_type>(
            std::invoke(f, detail::take_pipeline_item<Out>(item)));
      }
    };
  }
  d.add_stage(std::move(name), concurrency, site, std::move(erased));
  return basic_pipeline<In, next_type, Executor>(ex_, std::move(def_));
}

template <class In, class Out, class Executor>
template <class Range, class Sink,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr, pipeline_result))
              CompletionToken>
auto basic_pipeline<In, Out, Executor>::async_run(Range&& source, Sink sink,
                                                  CompletionToken&& token, source_location site) {
  // Everything that can be refused is refused here, at the call: with use_awaitable,
  // Asio 1.26 runs the initiation outside the awaiting coroutine.
  (void)def();
  detail::check_pipeline_callable(sink, "crew::pipeline::async_run: the sink");
  auto erased_sink = detail::make_pipeline_sink<Out>(std::move(sink));
  auto erased_source = detail::make_pipeline_source<In>(std::forward<Range>(source));
  return net::async_initiate<CompletionToken, void(std::exception_ptr, pipeline_result)>(
      initiate_run(*this, site), token, std::move(erased_source), std::move(erased_sink));
}

}  // namespace crew

#endif
