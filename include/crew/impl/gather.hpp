//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_IMPL_GATHER_HPP
#define CREW_IMPL_GATHER_HPP

#include <crew/detail/group_core.hpp>
#include <crew/detail/handler.hpp>
#include <crew/detail/task.hpp>
#include <crew/detail/task_shape.hpp>

#include <boost/asio/associator.hpp>

#include <deque>
#include <iterator>
#include <mutex>
#include <optional>
#include <utility>

namespace crew::detail {

/// Records a failure of the range itself past the item running now (`++it` threw
/// while the item before was pulled): item `index` of the gather, which never got a
/// task. Out of line.
void record_range_failure(group_core& core, gather_identity const& id, std::size_t index,
                          std::exception_ptr e) noexcept;

/** What a gather keeps between its items: the range, where its iteration stands, and
    the results.

    Item k is spawned (into the group core, behind its limit) by the initiation (k = 0)
    or by item k-1. When it starts, item k pulls element k under the mutex, spawns item
    k+1 if the range goes on, then runs its element. So the range is pulled only by
    items that hold a slot, in order, one element at a time: at most `limit` elements
    exist at once, plus one item not started yet.
*/
template <class T, class Range>
class gather_state final : public std::enable_shared_from_this<gather_state<T, Range>> {
 public:
  using View = gather_view_t<Range>;
  using element_type = gather_element_t<View>;
  using traits = gather_element_traits<element_type>;

  gather_state(Range&& range, std::shared_ptr<group_core> core, gather_identity id)
      : holder_(std::forward<Range>(range)), core_(std::move(core)), id_(std::move(id)) {
    if constexpr (std::ranges::sized_range<View>) known_empty_ = std::ranges::size(view()) == 0;
  }

  std::shared_ptr<group_core> const& core() const noexcept { return core_; }

  /// Spawns item 0, unless the range is known to be empty.
  void start() {
    if (!known_empty_) spawn_item(0);
  }

  /// The values in input order; T{} for failed and cancelled items. Called once, by the
  /// completion handler, after every item ended.
  std::vector<T> take_results() {
    std::lock_guard lock(mutex_);
    std::vector<T> out;
    out.reserve(results_.size());
    for (auto& r : results_) {
      if (r)
        out.push_back(std::move(*r));
      else
        out.emplace_back();
    }
    results_.clear();
    return out;
  }

 private:
  void spawn_item(std::size_t k) {
    core_->spawn(task_body(run_item(this->shared_from_this(), k)), id_.spec(k),
                 group_core::admit_mode::spawn);
  }

  static net::awaitable<void> run_item(std::shared_ptr<gather_state> self, std::size_t k);

  /// An lvalue range, referenced.
  struct referenced {
    std::remove_reference_t<Range>* range;
    explicit referenced(Range r) noexcept : range(std::addressof(r)) {}
    View get() const noexcept { return *range; }
  };
  /// An rvalue range, moved in.
  struct held {
    gather_held_t<Range> range;
    explicit held(Range&& r) : range(std::move(r)) {}
    View get() noexcept { return range; }
  };

  View view() noexcept { return holder_.get(); }

  std::mutex mutex_;
  std::conditional_t<std::is_lvalue_reference_v<Range>, referenced, held> holder_;
  std::optional<std::ranges::iterator_t<View>> it_;
  std::optional<std::ranges::sentinel_t<View>> end_;
  std::deque<std::optional<T>> results_;  // grown by the items, in order; never shrunk
  std::shared_ptr<group_core> const core_;
  gather_identity const id_;
  bool known_empty_ = false;
};

template <class T, class Range>
net::awaitable<void> gather_state<T, Range>::run_item(std::shared_ptr<gather_state> self,
                                                      std::size_t k) {
  std::optional<element_type> element;
  std::optional<T>* slot = nullptr;
  std::exception_ptr next_failure;  // ++it threw: the failure of item k+1
  bool more = false;
  {
    std::lock_guard lock(self->mutex_);
    auto& s = *self;
    slot = &s.results_.emplace_back();
    // What the range throws here ends this item, and the iteration with it.
    if (k == 0) {
      s.it_.emplace(std::ranges::begin(s.view()));
      s.end_.emplace(std::ranges::end(s.view()));
    }
    if (*s.it_ == *s.end_) {
      s.results_.pop_back();  // an empty range that did not know its size
      slot = nullptr;
    } else {
      element.emplace(std::ranges::iter_move(*s.it_));
      try {
        ++*s.it_;
        more = *s.it_ != *s.end_;
      } catch (...) {
        next_failure = std::current_exception();
        s.results_.emplace_back();
      }
    }
  }
  if (!slot) co_return;
  if (next_failure) record_range_failure(*self->core_, self->id_, k + 1, std::move(next_failure));
  if (more) self->spawn_item(k + 1);
  char const* const who = "crew::async_gather";
  if constexpr (traits::is_awaitable) {
    check_task(*element, who);
    T value = co_await std::move(*element);
    slot->emplace(std::move(value));
  } else {
    check_task(*element, who);
    auto a = (*element)();
    check_task(a, who);
    T value = co_await std::move(a);
    slot->emplace(std::move(value));
  }
}

/// The user's handler, as the group core's wait sees it: hands over the results with
/// the group's outcome. Its associated executor, allocator and cancellation slot are the
/// user's handler's.
template <class State, class Handler>
struct gather_completion {
  Handler handler;
  std::shared_ptr<State> state;

  void operator()(std::exception_ptr e) {
    auto results = state->take_results();
    state.reset();
    std::move(handler)(std::move(e), std::move(results));
  }
};

/// The initiation of async_gather, as Asio's own initiations are: a named class with
/// the I/O executor.
template <class Executor>
class initiate_gather {
 public:
  using executor_type = Executor;

  explicit initiate_gather(Executor const& ex) : ex_(ex) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class Handler, class State>
  void operator()(Handler&& handler, std::shared_ptr<State> state) const {
    std::shared_ptr<group_core> const core = state->core();
    state->start();
    core->async_wait(wait_handler(gather_completion<State, std::decay_t<Handler>>{
                         std::forward<Handler>(handler), std::move(state)}),
                     std::nullopt);
  }

 private:
  executor_type ex_;
};

}  // namespace crew::detail

template <template <class, class> class Associator, class State, class Handler,
          class DefaultCandidate>
struct boost::asio::associator<Associator, crew::detail::gather_completion<State, Handler>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      crew::detail::gather_completion<State, Handler> const& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }

  static auto get(crew::detail::gather_completion<State, Handler> const& h,
                  DefaultCandidate const& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

namespace crew {

template <class ExecutorOrContext, std::ranges::input_range Range,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::gather_signature_t<Range>) CompletionToken>
requires detail::gather_target<ExecutorOrContext> && detail::gather_holdable<Range>
auto async_gather(ExecutorOrContext&& ex, Range&& range, gather_options options,
                  CompletionToken&& token, source_location site) {
  using view_type = detail::gather_view_t<Range>;
  detail::check_gather_range<view_type>();
  if constexpr (!detail::gather_range_ok<view_type>()) {
    return;  // check_gather_range said why
  } else {
    using value_type = detail::gather_value_t<Range>;
    using executor_type = detail::gather_executor_t<ExecutorOrContext>;
    using state_type = detail::gather_state<value_type, Range>;
    // Everything that may throw happens here, in the caller, before the initiation:
    // use_awaitable runs the initiation outside the awaiting coroutine.
    executor_type executor = detail::gather_executor_of(std::forward<ExecutorOrContext>(ex));
    auto core = detail::make_gather_core(net::any_io_executor(executor), options);
    auto state = std::make_shared<state_type>(std::forward<Range>(range), std::move(core),
                                              detail::gather_identity::capture(options.name, site));
    return net::async_initiate<CompletionToken, detail::gather_signature_t<Range>>(
        detail::initiate_gather<executor_type>(executor), token, std::move(state));
  }
}

template <class ExecutorOrContext, std::ranges::input_range Range,
          BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::gather_signature_t<Range>) CompletionToken>
requires detail::gather_target<ExecutorOrContext> && detail::gather_holdable<Range> &&
    detail::not_gather_options<CompletionToken>
auto async_gather(ExecutorOrContext&& ex, Range&& range, CompletionToken&& token,
                  source_location site) {
  return async_gather(std::forward<ExecutorOrContext>(ex), std::forward<Range>(range),
                      gather_options{}, std::forward<CompletionToken>(token), site);
}

}  // namespace crew

#endif
