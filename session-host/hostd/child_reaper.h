#pragma once
// Reaps hostd's children. hostd is a child subreaper, so besides the helpers it spawns, every
// orphan below it (container inits, the apps once the sandbox helper has exited) becomes its
// child; all of them are reaped here on SIGCHLD and their wait status is kept for a while, so
// whoever watches a pid (pidfd) can still ask how it ended.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <deque>
#include <map>
#include <optional>
#include <sys/types.h>

namespace appvirt::hostd {

class ChildReaper {
 public:
  explicit ChildReaper(boost::asio::any_io_executor executor);

  // Installs the SIGCHLD handler (asio::signal_set) and reaps what already exited.
  void start();
  void stop();

  // waitpid(-1, WNOHANG) until nothing is left; records each status.
  void reap_now();

  // The wait status of pid if it was reaped recently (kept for the last kKeep pids).
  std::optional<int> status_of(pid_t pid) const;

 private:
  void arm();
  static constexpr std::size_t kKeep = 1024;

  boost::asio::signal_set signals_;
  std::map<pid_t, int> statuses_;
  std::deque<pid_t> order_;
};

// "exit 3", "signal 9 (Killed)": a wait status for logs and the API.
std::string describe_wait_status(int status);

}  // namespace appvirt::hostd
