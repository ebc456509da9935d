//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_TASK_EXECUTOR_HPP
#define CREW_DETAIL_TASK_EXECUTOR_HPP

#include <crew/detail/task.hpp>

#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>

#include <type_traits>
#include <utility>

namespace crew::detail {

/// Runs `f` as one section of the task `n`, which is the current task meanwhile.
template <class F>
void run_section(task_node* n, F&& f) {
  struct guard {
    task_node* n;
    task_node* outer;
    ~guard() {
      current_task_ = outer;
      n->leave();
    }
  } g{n, current_task_};
  n->enter();
  current_task_ = n;
  std::forward<F>(f)();
}

/// A function that runs as one section of a task, holding a reference to it.
template <class F>
class section_function {
 public:
  section_function(task_node* n, F&& f) : node_(n), f_(std::move(f)) { node_->add_ref(); }
  section_function(task_node* n, F const& f) : node_(n), f_(f) { node_->add_ref(); }
  section_function(section_function&& o) noexcept(std::is_nothrow_move_constructible_v<F>)
      : node_(std::exchange(o.node_, nullptr)), f_(std::move(o.f_)) {}
  section_function& operator=(section_function&&) = delete;
  ~section_function() {
    if (node_) node_->release();
  }

  void operator()() { run_section(node_, std::move(f_)); }

 private:
  task_node* node_;
  F f_;
};

/** The executor a crew task runs on: the group's executor, plus the task's sections.

    Every function executed through it runs as a section of its task (see
    task_node), which is what makes cancelling a task from another thread safe on a
    multi-threaded io_context. It forwards every property to the inner executor.
*/
template <class Inner>
class task_executor {
 public:
  using inner_executor_type = Inner;

  task_executor(Inner inner, task_node* n) noexcept : inner_(std::move(inner)), node_(n) {
    node_->add_ref();
  }
  task_executor(task_executor const& o) noexcept : inner_(o.inner_), node_(o.node_) {
    node_->add_ref();
  }
  task_executor(task_executor&& o) noexcept
      : inner_(std::move(o.inner_)), node_(std::exchange(o.node_, nullptr)) {}
  task_executor& operator=(task_executor o) noexcept {
    std::swap(inner_, o.inner_);
    std::swap(node_, o.node_);
    return *this;
  }
  ~task_executor() {
    if (node_) node_->release();
  }

  Inner const& get_inner_executor() const noexcept { return inner_; }
  task_node* node() const noexcept { return node_; }

  template <class Property>
  requires boost::asio::can_query<Inner const&, Property>::value decltype(auto) query(
      Property const& p) const
      noexcept(boost::asio::is_nothrow_query<Inner const&, Property>::value) {
    return boost::asio::query(inner_, p);
  }

  template <class Property>
  requires boost::asio::can_require<Inner const&, Property>::value auto require(
      Property const& p) const {
    using other = std::decay_t<typename boost::asio::require_result<Inner const&, Property>::type>;
    return task_executor<other>(boost::asio::require(inner_, p), node_);
  }

  template <class Property>
  requires boost::asio::can_prefer<Inner const&, Property>::value auto prefer(
      Property const& p) const {
    using other = std::decay_t<typename boost::asio::prefer_result<Inner const&, Property>::type>;
    return task_executor<other>(boost::asio::prefer(inner_, p), node_);
  }

  template <class F>
  void execute(F&& f) const {
    if constexpr (requires(Inner const& i) { i.running_in_this_thread(); }) {
      // What the inner executor would do for a possibly-blocking execute, minus
      // the copy of the function.
      if (boost::asio::query(inner_, boost::asio::execution::blocking) !=
              boost::asio::execution::blocking.never &&
          inner_.running_in_this_thread()) {
        // Already inside one of this task's sections (a resumption dispatched from a
        // completion that runs in the task): that section covers this call too.
        if (current_task_ == node_)
          std::forward<F>(f)();
        else
          run_section(node_, std::forward<F>(f));
        return;
      }
    }
    boost::asio::execution::execute(inner_,
                                    section_function<std::decay_t<F>>(node_, std::forward<F>(f)));
  }

  friend bool operator==(task_executor const& a, task_executor const& b) noexcept {
    return a.node_ == b.node_ && a.inner_ == b.inner_;
  }
  friend bool operator!=(task_executor const& a, task_executor const& b) noexcept {
    return !(a == b);
  }

 private:
  template <class>
  friend class task_executor;

  Inner inner_;
  task_node* node_;
};

}  // namespace crew::detail

#endif
