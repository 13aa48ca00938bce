#include "session-host/hostd/pid_watch.h"

#include <cerrno>

namespace appvirt::hostd {

Result<std::unique_ptr<PidWatch>> PidWatch::open(boost::asio::any_io_executor executor,
                                                 const ProcRef& ref,
                                                 std::function<void()> on_exit) {
  auto fd = pidfd_open(ref.pid);
  if (!fd) return tl::unexpected(fd.error());
  // The pidfd pins the process; a start time that differs now means the pid was reused before
  // we opened it.
  if (!proc_alive(ref)) return fail("process " + std::to_string(ref.pid) + " is gone", ESRCH);
  boost::asio::posix::stream_descriptor sd(executor, fd->release());
  return std::unique_ptr<PidWatch>(new PidWatch(std::move(sd), ref, std::move(on_exit)));
}

PidWatch::PidWatch(boost::asio::posix::stream_descriptor fd, ProcRef ref,
                   std::function<void()> on_exit)
    : fd_(std::move(fd)), ref_(ref), on_exit_(std::move(on_exit)),
      alive_(std::make_shared<bool>(true)) {
  arm();
}

PidWatch::~PidWatch() {
  *alive_ = false;
  boost::system::error_code ec;
  fd_.close(ec);
}

void PidWatch::arm() {
  fd_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                 [this, alive = alive_](const boost::system::error_code& ec) {
                   // The callback may destroy this watch; touch nothing after calling it.
                   if (ec || !*alive) return;
                   auto cb = std::move(on_exit_);
                   if (cb) cb();
                 });
}

Result<void> PidWatch::signal(int sig) { return pidfd_kill(fd_.native_handle(), sig); }

}  // namespace appvirt::hostd
