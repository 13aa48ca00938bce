#pragma once
// Seam over starting a session's RDP endpoint (`appvirt-rdp`, contract in
// docs/session-host.md). The real launcher spawns the binary in its own session and cgroup and
// waits for its ready line; the session manager's tests use a fake.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "session-host/hostd/process.h"

namespace appvirt::hostd {

struct RdpSpec {
  int display = 0;
  std::string x11_dir;
  std::string xauthority;
  std::string listen;        // unix socket path
  bool listen_tcp = false;   // 127.0.0.1:0
  std::string secret_file;
  std::string cert;
  std::string key;
  std::string run_as;
  std::string log_level = "info";
  std::string log_file;      // stdout/stderr of the endpoint
  std::string status_file;   // --status-file (activity report); empty: none
  std::vector<int> cgroup_procs_fds;  // borrowed; the child joins these cgroups before exec
};

struct RdpEndpoint {
  ProcRef proc;
  int tcp_port = 0;  // 0 when not listening on TCP
};

class RdpLauncher {
 public:
  virtual ~RdpLauncher() = default;
  virtual boost::asio::awaitable<Result<RdpEndpoint>> launch(RdpSpec spec) = 0;
};

// The command line appvirt-rdp gets for spec (with --ready-fd 3).
std::vector<std::string> rdp_argv(const std::filesystem::path& binary, const RdpSpec& spec);

class ProcessRdpLauncher : public RdpLauncher {
 public:
  ProcessRdpLauncher(std::filesystem::path binary, std::chrono::milliseconds ready_timeout)
      : binary_(std::move(binary)), ready_timeout_(ready_timeout) {}
  boost::asio::awaitable<Result<RdpEndpoint>> launch(RdpSpec spec) override;

 private:
  std::filesystem::path binary_;
  std::chrono::milliseconds ready_timeout_;
};

}  // namespace appvirt::hostd
