#pragma once
// Runs the daemons of `appvirt up` as children: starts them one by one, waits for each to be
// ready, watches them, and stops them in reverse order. SIGCHLD, SIGTERM, SIGINT and SIGHUP are
// blocked and read from a signalfd, so every wait is a poll with a deadline.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::up {

using std::chrono::milliseconds;

struct DaemonSpec {
  std::string name;  // "hostd", "broker", "gateway"
  std::vector<std::string> argv;
  std::filesystem::path log_file;  // stdout + stderr; a previous run's log becomes <log>.1
  milliseconds stop_timeout{20000};
};

enum class Event { kReady, kStopRequested, kDaemonDied, kTimeout };

class Supervisor {
 public:
  static Result<Supervisor> create();
  Supervisor(Supervisor&&) = default;
  Supervisor& operator=(Supervisor&&) = default;
  ~Supervisor();

  Result<void> start(DaemonSpec spec);
  // Repeats `check` every 100 ms until it succeeds (kReady), the timeout passes (kTimeout; the
  // last error is in last_error), a daemon dies or a stop signal arrives.
  Event wait_ready(const std::function<Result<void>()>& check, milliseconds timeout,
                   std::string& last_error);
  // Until a daemon dies or a stop signal arrives.
  Event run();
  // SIGTERM to each running daemon, newest first, each waited for (SIGKILL to its process group
  // after its stop_timeout). True when every daemon exited with status 0.
  bool stop_all();
  // Name and wait status of the daemon whose death ended wait_ready/run.
  const std::string& died_name() const { return died_name_; }
  int died_status() const { return died_status_; }

 private:
  struct Daemon {
    DaemonSpec spec;
    pid_t pid = -1;
    bool running = false;
    int status = 0;
  };
  explicit Supervisor(UniqueFd sigfd) : sigfd_(std::move(sigfd)) {}
  // Handles the signals that arrive within `timeout`; returns the event they make, if any.
  std::optional<Event> poll_signals(milliseconds timeout);
  void reap();
  bool wait_exit(Daemon& d, milliseconds timeout);

  UniqueFd sigfd_;
  std::vector<Daemon> daemons_;
  bool stopping_ = false;
  bool stop_requested_ = false;
  std::string died_name_;
  int died_status_ = 0;
};

}  // namespace appvirt::up
