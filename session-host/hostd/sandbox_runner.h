#pragma once
// Seam over the sandbox helper (`appvirt-sandbox create|exec`, contract in
// docs/session-host.md). The real runner executes the helper binary with one JSON request on
// stdin and one JSON reply on stdout; the session manager's tests use a fake.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/types.h>
#include <vector>

#include "common/result.h"
#include "session-host/hostd/limits.h"
#include "session-host/hostd/process.h"

namespace appvirt::hostd {

struct ContainerSpec {
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string home;
  std::string runtime_dir;  // <runtime_dir>/u/<user>
  std::string cgroup;       // appvirt/u-<user>
  std::string hostname = "appvirt";
  std::string network = "loopback";
  Limits limits;
};

struct ExecSpec {
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;  // the helper refuses a reused init pid (0: not sent)
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string cgroup;  // appvirt/u-<user>/s-<sid>
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  std::string log_file;
};

class SandboxRunner {
 public:
  virtual ~SandboxRunner() = default;
  // Creates the user's container; returns its init process.
  virtual boost::asio::awaitable<Result<ProcRef>> create(ContainerSpec spec) = 0;
  // Starts a process inside the container; returns its host pid.
  virtual boost::asio::awaitable<Result<pid_t>> exec(ExecSpec spec) = 0;
};

nlohmann::json to_json(const ContainerSpec& s);
nlohmann::json to_json(const ExecSpec& s);

class ChildReaper;

// Runs the appvirt-sandbox binary.
class HelperSandboxRunner : public SandboxRunner {
 public:
  HelperSandboxRunner(std::filesystem::path binary, std::chrono::milliseconds timeout)
      : binary_(std::move(binary)), timeout_(timeout) {}
  boost::asio::awaitable<Result<ProcRef>> create(ContainerSpec spec) override;
  boost::asio::awaitable<Result<pid_t>> exec(ExecSpec spec) override;

 private:
  // Runs "<binary> <verb>" with request on stdin; the parsed {"ok":true,...} reply.
  boost::asio::awaitable<Result<nlohmann::json>> run(std::string verb, nlohmann::json request);

  std::filesystem::path binary_;
  std::chrono::milliseconds timeout_;
};

}  // namespace appvirt::hostd
