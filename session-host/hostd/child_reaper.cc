#include "session-host/hostd/child_reaper.h"

#include <sys/wait.h>

#include <cstring>
#include <string>

namespace appvirt::hostd {

ChildReaper::ChildReaper(boost::asio::any_io_executor executor) : signals_(executor) {}

void ChildReaper::start() {
  boost::system::error_code ec;
  signals_.add(SIGCHLD, ec);
  arm();
  reap_now();
}

void ChildReaper::stop() {
  boost::system::error_code ec;
  signals_.cancel(ec);
  signals_.clear(ec);
}

void ChildReaper::arm() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    reap_now();
    arm();
  });
}

void ChildReaper::reap_now() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (!statuses_.count(pid)) order_.push_back(pid);
    statuses_[pid] = status;
    while (order_.size() > kKeep) {
      statuses_.erase(order_.front());
      order_.pop_front();
    }
  }
}

std::optional<int> ChildReaper::status_of(pid_t pid) const {
  auto it = statuses_.find(pid);
  if (it == statuses_.end()) return std::nullopt;
  return it->second;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  }
  return "status " + std::to_string(status);
}

}  // namespace appvirt::hostd
