#pragma once
// The whole appvirt stack for end-to-end tests, all real, on free ports and under one temporary
// directory: appvirt-hostd (with appvirt-sandbox and appvirt-rdp), appvirt-broker (real PAM under
// a private service name, one [[hosts]] entry on the hostd socket, a catalog with
// appvirt-testpattern and xterm, gateway_address = the gateway's port) and appvirt-gateway
// (pointed at the broker's internal API with the same secret), plus one PAM user made for the
// test. Everything it creates (processes, sessions, cgroups, the user, the PAM file, the
// directory) is removed on destruction, also after a failed start. Needs root.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "tests/broker/e2e_support.h"
#include "tests/gateway/gateway_process.h"
#include "tests/session-host/hostd/hostd_process.h"
#include "tests/tools/test_support.h"

namespace appvirt::e2e {

using std::chrono::milliseconds;

struct Binaries {
  std::string hostd, broker, gateway, sandbox, rdp, testpattern, rdp_probe, pam_file;
};

// The published apps. "pattern" comes first, so it is the user's default app (gateway logon
// without a program). It advances its variant on every key press: typed keys are app state.
inline constexpr const char* kPatternApp = "pattern";
inline constexpr const char* kXtermApp = "xterm";
inline constexpr int kSessionWidth = 1024;
inline constexpr int kSessionHeight = 768;

using broker::e2e::WebSession;
// The launch token inside an .rdp file's loadbalanceinfo line ("" if none).
using broker::e2e::token_of_rdp_file;

struct Launch {
  unsigned status = 0;
  std::string error_body;  // when status != 200
  std::string session_id, token, rdp_file;
  bool reused = false;
};

struct ProbeRun {
  int exit_code = -1;
  nlohmann::json report = nlohmann::json::object();  // rdp-probe's JSON ({} if it wrote none)
  std::string log;        // its stderr
  std::string str() const { return "exit=" + std::to_string(exit_code) + " " + report.dump() + "\n" + log; }
};

// Optional additions to the stack's configuration (set before start()).
struct StackOptions {
  std::string hostd_extra;  // appended to hostd.toml: whole tables, e.g. "[vm]\n..."
  std::string broker_apps;  // appended to broker.toml after its [[apps]]: more [[apps]]
  std::string policies;     // non-empty: written and named as the broker's policy_file
  milliseconds launch_timeout{60'000};  // broker → hostd launch call, and the portal launch request
  // false: the first hostd runs without --terminate-sessions-on-exit, so restart_hostd() leaves
  // its sessions running (the restart path); every later hostd has the flag again.
  bool terminate_sessions_on_exit = true;
};

class FullStack {
 public:
  explicit FullStack(Binaries bin);
  ~FullStack();
  FullStack(const FullStack&) = delete;
  FullStack& operator=(const FullStack&) = delete;

  // Creates the user and PAM service, starts hostd, the broker and the gateway, and waits until
  // the broker counts the host as up and the gateway listens.
  Result<void> start();
  void set_options(StackOptions o) { opts_ = std::move(o); }

  const std::string& dir() const { return dir_; }
  const broker::e2e::TempUser& user() const { return *user_; }
  uint16_t broker_port() const { return broker_port_; }
  uint16_t gateway_port() const { return gateway_port_; }
  std::string gateway_address() const { return "127.0.0.1:" + std::to_string(gateway_port_); }
  testing::GatewayProcess& gateway() { return *gateway_; }
  std::string broker_log() const;
  std::string hostd_log() const;
  // Logs of all three daemons, for failure messages.
  std::string logs() const;

  // Portal (HTTPS, cookie + CSRF, as the web portal does it).
  Result<WebSession> login(const std::string& user, const std::string& password);
  Result<Launch> launch(const WebSession& web, const std::string& app);
  // The user's sessions in the broker's directory, ended ones included.
  Result<nlohmann::json> my_sessions(const WebSession& web);
  // Every session hostd knows.
  Result<nlohmann::json> hostd_sessions();
  // Stops hostd with SIGTERM (it must exit 0 within 20 s) and starts a new one on the same state
  // directory and socket, with --terminate-sessions-on-exit; both log to <dir>/hostd.log.
  Result<void> restart_hostd();

  // rdp-probe against the gateway with these extra arguments.
  ProbeRun probe(const std::vector<std::string>& args, milliseconds timeout,
                 const std::string& tag);
  // Spawns rdp-probe without waiting (e.g. to hold a connection); report in <dir>/<tag>.json.
  Result<testing::Child> spawn_probe(const std::vector<std::string>& args, const std::string& tag,
                                     int ready_fd = -1);
  ProbeRun collect_probe(testing::Child& child, const std::string& tag, milliseconds timeout);

  // xfreerdp under the given client display; stdout+stderr in <dir>/xfreerdp-<tag>.log.
  Result<testing::Child> xfreerdp(const testing::Xvfb& display, const std::vector<std::string>& args,
                                  const std::string& tag);
  std::string xfreerdp_log(const std::string& tag) const;

 private:
  Result<void> write_configs();
  Result<void> start_broker();
  Result<void> start_gateway();
  void stop_all();

  Binaries bin_;
  StackOptions opts_;
  testing::HostdSetup hostd_setup_;
  std::string dir_, sock_, secret_file_;
  uint16_t broker_port_ = 0, gateway_port_ = 0;
  std::unique_ptr<broker::e2e::TempPamService> pam_;
  std::unique_ptr<broker::e2e::TempGroup> staff_;
  std::unique_ptr<broker::e2e::TempUser> user_;
  testing::Child hostd_, broker_;
  std::optional<testing::GatewayProcess> gateway_;
};

}  // namespace appvirt::e2e
