//
// crew — structured concurrency for Boost.Asio coroutines.
// Distributed under the Boost Software License, Version 1.0.
//
// A loop is a run group whose actors are driven by this policy over the restart driver
// instead of the run-once one: every start of an actor is a crew task (named after the
// actor, spawned where it was added), and the actor ends only when the loop stops.
//
#include <crew/detail/duration.hpp>
#include <crew/detail/failure.hpp>
#include <crew/detail/restart.hpp>
#include <crew/loop.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace crew::detail {

struct loop_settings {
  crew::clock::duration restart_delay;
  crew::backoff backoff;
  crew::clock* clock;
  std::string name;
  /// The owner kind failures are reported under: "loop", or "repeatable".
  char const* kind;
};

namespace {

class loop_policy final : public restart_policy {
 public:
  loop_policy(actor const& a, source_location site, std::shared_ptr<loop_settings const> s,
              std::function<void(std::uint64_t)> on_start)
      : actor_(a), site_(site), settings_(std::move(s)), on_start_(std::move(on_start)) {}

  task_body make_run(std::size_t, task_spec& spec) override {
    spec.name = actor_.name;
    spec.site = site_;
    return void_function([this] { return actor_.execute(); });
  }

  void run_started(task_node const& t) override {
    if (on_start_) on_start_(t.id_);
  }

  restart_decision next(run_outcome&& o) override {
    if (o.what == run_outcome::kind::failure) report(std::move(*o.failure));
    if (o.stopping) return restart_decision::stop();
    auto delay = settings_->restart_delay;
    if (o.what == run_outcome::kind::failure)
      delay = std::max(delay, settings_->backoff.delay(++failures_));
    else
      failures_ = 0;
    return restart_decision::restart(delay);
  }

  std::exception_ptr stopped() override { return nullptr; }

 private:
  /// Every failed iteration goes to the actor's on_failure, or to the failure path.
  void report(task_failure f) {
    handle_failure(actor_.on_failure, settings_->kind, settings_->name, std::move(f));
  }

  actor const& actor_;  // the run's copy, which outlives its drivers
  source_location site_;
  std::shared_ptr<loop_settings const> settings_;
  std::function<void(std::uint64_t)> on_start_;
  unsigned failures_ = 0;
};

}  // namespace

std::unique_ptr<restart_policy> make_loop_policy(actor const& a, source_location site,
                                                 std::shared_ptr<loop_settings const> settings,
                                                 std::function<void(std::uint64_t)> on_start) {
  return std::make_unique<loop_policy>(a, site, std::move(settings), std::move(on_start));
}

void handle_failure(std::function<void(std::exception_ptr)> const& on_failure,
                    char const* owner_kind, std::string const& owner_name,
                    task_failure f) noexcept {
  if (on_failure) {
    try {
      on_failure(f.exception);
      return;
    } catch (...) {
      try {
        f = make_failure(f, std::current_exception(), task_stage::handler);
      } catch (...) {
        // Only allocation can fail here: report the failure the handler was given.
      }
    }
  }
  report_failure(owner_kind, owner_name, "had a failure nobody handled", std::move(f));
}

std::shared_ptr<loop_settings const> make_loop_settings(loop_options const& o) {
  return make_loop_settings(o, "loop");
}

std::shared_ptr<loop_settings const> make_loop_settings(loop_options const& o, char const* kind) {
  if (o.restart_delay < clock::duration::zero())
    throw std::invalid_argument("crew::loop: options.restart_delay is negative (" +
                                format_duration(o.restart_delay) + ")");
  return std::make_shared<loop_settings const>(
      loop_settings{o.restart_delay, o.backoff, o.clock, o.name, kind});
}

run_group_options run_options_of(loop_options const& o) {
  run_group_options r;
  r.shutdown_grace = o.shutdown_grace;
  r.clock = o.clock;
  r.name = o.name;
  return r;
}

}  // namespace crew::detail
