#pragma once
// Client side of the broker's HTTPS API for end-to-end tests: one request per TLS connection,
// raw TLS connections for slow-client and oversized-body tests, portal sign-in, the real broker
// as a child process, and the throwaway PAM service the tests create and remove. Every wait is
// bounded.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "tests/tools/test_support.h"
#include "tests/tools/test_users.h"

namespace appvirt::broker::e2e {

using std::chrono::milliseconds;

struct Reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct Options {
  std::map<std::string, std::string> headers;
  milliseconds timeout{60'000};
  int max_tls_version = 0;  // e.g. TLS1_1_VERSION to check that old versions are refused
};

Result<Reply> https(uint16_t port, const std::string& method, const std::string& target,
                    const std::string& body = "", const Options& opts = {});

// Opens a TLS connection, writes `raw` bytes, then reads until the server closes or the timeout.
// Returns what was read and how long the server took to close.
struct RawResult {
  std::string received;
  milliseconds closed_after{0};
  bool closed = false;  // false: still open at the timeout
};
Result<RawResult> raw_tls(uint16_t port, const std::string& raw, milliseconds timeout);
// Plain TCP without a TLS handshake: how long until the server hangs up.
Result<RawResult> silent_tcp(uint16_t port, milliseconds timeout);

// Users, groups and the clean-up after real sessions (tests/tools/test_users.h), under the
// names the e2e tests have always used.
using testing::pids_of_uid;
using testing::random_suffix;
using testing::reap_orphans;
using testing::remove_cgroup;
using testing::TempGroup;
using testing::TempUser;

// /etc/pam.d/<name>: a copy of deploy/pam.d/appvirt under a unique service name, removed on
// destruction (the real /etc/pam.d/appvirt of the machine is left alone).
class TempPamService {
 public:
  explicit TempPamService(const std::string& source);
  ~TempPamService();
  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }

 private:
  std::string name_;
  bool ok_ = false;
};

// A signed-in portal user: the session cookie and its CSRF token.
struct WebSession {
  std::string cookie;  // value of __Host-appvirt_session
  std::string csrf;
};
// POST /api/v1/login as the portal does it; an answer other than 200 is an error.
Result<WebSession> login(uint16_t port, const std::string& user, const std::string& password);
// Headers that present web's cookie and, for state-changing requests, its CSRF token.
Options as(const WebSession& web, bool csrf = true);
// The launch token inside an .rdp file's loadbalanceinfo line ("" if none).
std::string token_of_rdp_file(const std::string& rdp);

// appvirt-broker as a child process on a port of its choosing.
struct BrokerProcess {
  testing::Child child;
  uint16_t port = 0;
};
// Spawns `binary --config <config> --port-file <port_file>` (log, i.e. stderr, in log_file), reads
// the port and waits until /healthz counts `hosts_up` hosts as up; the error carries the log.
Result<BrokerProcess> start_broker(const std::string& binary, const std::string& config,
                                   const std::string& port_file, const std::string& log_file,
                                   int hosts_up = 1, milliseconds timeout = milliseconds(20'000));

// Listens on 127.0.0.1:port as a stand-in gateway and returns the cookie line of the first
// X.224 Connection Request a client sends (what a real RDP client made of the .rdp file).
class X224Catcher {
 public:
  X224Catcher() = default;
  ~X224Catcher();
  X224Catcher(const X224Catcher&) = delete;
  X224Catcher& operator=(const X224Catcher&) = delete;
  Result<void> listen(uint16_t port);
  Result<std::string> cookie(milliseconds timeout);

 private:
  int fd_ = -1;
};

}  // namespace appvirt::broker::e2e
