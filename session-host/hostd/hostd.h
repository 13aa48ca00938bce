#pragma once
// The hostd daemon: builds the real seams from the config, re-adopts sessions, serves the
// control API on its Unix socket and handles SIGTERM/SIGINT (close the socket, leave sessions
// running for the next hostd unless told to terminate them).
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <memory>

#include "common/http_server.h"
#include "session-host/hostd/cgroup_adapter.h"
#include "session-host/hostd/hostd_config.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

class Daemon {
 public:
  Daemon(HostdConfig config, bool terminate_sessions_on_exit);
  ~Daemon();
  // Sets everything up and serves until SIGTERM/SIGINT. Returns the process exit code.
  int run();

 private:
  Result<void> setup();
  Result<void> open_control_socket();
  void on_stop_signal(int sig);

  HostdConfig config_;
  bool terminate_on_exit_;
  boost::asio::io_context io_;
  std::unique_ptr<CgroupControl> cgroups_;
  SystemUserDb users_;
  SystemClock clock_;
  std::unique_ptr<HelperSandboxRunner> sandbox_;
  std::unique_ptr<ProcessRdpLauncher> rdp_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<DisplayAllocator> displays_;
  std::unique_ptr<ChildReaper> reaper_;
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  boost::asio::signal_set stop_signals_;
};

}  // namespace appvirt::hostd
