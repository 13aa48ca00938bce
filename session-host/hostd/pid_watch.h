#pragma once
// Calls back once when a process exits, through a pidfd registered with the io_context: works
// for any process (children, orphans reparented to hostd, processes adopted after a restart),
// costs nothing while the process runs and cannot confuse a reused pid.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <functional>
#include <memory>

#include "common/result.h"
#include "session-host/hostd/process.h"

namespace appvirt::hostd {

class PidWatch {
 public:
  // Opens a pidfd for ref.pid and checks that it is still the process started at
  // ref.start_time; fails (ESRCH) when that process is gone.
  static Result<std::unique_ptr<PidWatch>> open(boost::asio::any_io_executor executor,
                                                const ProcRef& ref, std::function<void()> on_exit);
  ~PidWatch();

  const ProcRef& ref() const { return ref_; }
  // SIGKILL/SIGTERM through the pidfd (safe against pid reuse).
  Result<void> signal(int sig);

 private:
  PidWatch(boost::asio::posix::stream_descriptor fd, ProcRef ref, std::function<void()> on_exit);
  void arm();

  boost::asio::posix::stream_descriptor fd_;
  ProcRef ref_;
  std::function<void()> on_exit_;
  std::shared_ptr<bool> alive_;
};

}  // namespace appvirt::hostd
