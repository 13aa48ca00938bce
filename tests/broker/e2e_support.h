#pragma once
// Client side of the broker's HTTPS API for end-to-end tests: one request per TLS connection,
// raw TLS connections for slow-client and oversized-body tests, and the throwaway users and PAM
// service the tests create and remove. Every wait is bounded.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

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

// A local user with a password (useradd + chpasswd), removed with its home on destruction.
class TempUser {
 public:
  TempUser(const std::string& prefix, const std::vector<std::string>& groups);
  ~TempUser();
  TempUser(const TempUser&) = delete;
  TempUser& operator=(const TempUser&) = delete;
  const std::string& name() const { return name_; }
  const std::string& password() const { return password_; }
  const std::string& home() const { return home_; }
  uid_t uid() const { return uid_; }
  bool ok() const { return ok_; }

 private:
  std::string name_, password_, home_;
  uid_t uid_ = 0;
  bool ok_ = false;
};

// A group (groupadd), removed on destruction.
class TempGroup {
 public:
  explicit TempGroup(const std::string& prefix);
  ~TempGroup();
  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }

 private:
  std::string name_;
  bool ok_ = false;
};

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

std::string random_suffix();

// Cleanup after real hostd sessions (shared with tests/e2e).
// Processes owned by uid, from /proc.
std::vector<pid_t> pids_of_uid(uid_t uid);
// As a subreaper a test inherits what a stopped hostd leaves; reap those zombies.
void reap_orphans();
// Removes a cgroup directory (and its children) relative to every mounted hierarchy.
void remove_cgroup(const std::string& path);

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
