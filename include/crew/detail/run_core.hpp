//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
#ifndef CREW_DETAIL_RUN_CORE_HPP
#define CREW_DETAIL_RUN_CORE_HPP

#include <crew/run_group.hpp>
#include <crew/task_group.hpp>

#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace crew::detail {

/** One run of a run group (or a loop): its actors, run as tasks of a private group,
    the interrupt, the grace period, and the result.

    The run completes once two things happened, in either order: every actor returned
    (the group's wait completed) and the interrupt callbacks ran. A mutex guards the
    bookkeeping; it is never held while user code runs.
*/
class run_core : public std::enable_shared_from_this<run_core> {
 public:
  run_core(net::any_io_executor ex, run_group_options const& options, std::vector<actor> actors,
           run_handler handler, char const* owner);

  /// Spawns the actors; called once, by start_run.
  void start();

  /// Interrupts the run with `cause` unless it already was.
  void interrupt(std::exception_ptr cause) noexcept;

  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }

 private:
  static net::awaitable<void> actor_body(std::shared_ptr<run_core> self, std::size_t i,
                                         std::optional<net::awaitable<void>> body,
                                         std::exception_ptr failed);
  void actor_returned(std::size_t i, std::exception_ptr e);
  void report(std::size_t i, std::exception_ptr e, bool in_result);
  void run_interrupts();
  void grace_ended(boost::system::error_code ec);
  void returned_all(std::exception_ptr e);
  void finish();
  void complete(std::exception_ptr result);
  task_failure make_failure(std::size_t i, std::exception_ptr e, task_stage stage) const;

  net::any_io_executor ex_;
  clock& clock_;
  clock::duration grace_;
  std::string name_;
  char const* owner_;
  std::vector<actor> const actors_;
  task_group group_;

  std::mutex mutex_;
  std::vector<bool> running_;
  bool interrupted_ = false;
  bool interrupts_done_ = false;
  bool all_returned_ = false;
  bool grace_pending_ = false;
  std::exception_ptr cause_;
  std::size_t cause_actor_ = static_cast<std::size_t>(-1);
  std::vector<task_failure> late_;   // actors still running when the grace ran out
  std::vector<task_failure> extra_;  // callbacks that threw
  net::cancellation_signal grace_signal_;

  std::optional<run_handler> handler_;
  std::atomic<bool> finished_{false};
};

}  // namespace crew::detail

#endif
