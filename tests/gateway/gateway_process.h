#pragma once
// The appvirt-gateway binary as a child process for end-to-end tests: a config file pointing at
// a FakeBroker, port 0, the bound port read from its stdout line, stderr (the log) in a file.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "tests/gateway/fake_broker.h"
#include "tests/tools/test_support.h"

namespace appvirt::testing {

// Where the gateway finds the broker's internal API: the fake one or a real appvirt-broker.
struct BrokerLink {
  uint16_t port = 0;         // https://127.0.0.1:<port>
  std::string cert_file;     // pinned certificate
  std::string secret_file;   // the gateway's shared secret
};
BrokerLink link_to(const FakeBroker& broker);

class GatewayProcess {
 public:
  // extra_toml is appended to the generated config (e.g. "[limits]\nfirst_pdu_timeout_ms = 2000").
  static Result<GatewayProcess> start(const std::string& binary, const std::string& dir,
                                      const FakeBroker& broker, const std::string& extra_toml = {});
  // listen_port 0: any free port (read back from the gateway's stdout).
  static Result<GatewayProcess> start(const std::string& binary, const std::string& dir,
                                      const BrokerLink& broker, const std::string& extra_toml,
                                      uint16_t listen_port);
  uint16_t port() const { return port_; }
  Child& child() { return child_; }
  const std::string& config_file() const { return config_file_; }
  std::string log() const;
  size_t count_in_log(const std::string& needle) const;
  bool wait_log(const std::string& needle, size_t count, std::chrono::milliseconds timeout) const;

 private:
  Child child_;
  uint16_t port_ = 0;
  std::string log_file_, config_file_;
};

// Writes the gateway config for a broker; returns its path.
std::string write_gateway_config(const std::string& dir, const BrokerLink& broker,
                                 const std::string& extra_toml, uint16_t listen_port = 0);

UniqueFd connect_loopback(uint16_t port);
bool send_all(int fd, const std::vector<uint8_t>& data);
// Time until the peer closes fd (EOF or reset), or nullopt if it stays open for `within`. Data
// that arrives meanwhile is read and dropped.
std::optional<std::chrono::milliseconds> time_to_close(int fd, std::chrono::milliseconds within);
// A Connection Request with this cookie line and an RDP_NEG_REQ (TLS | HYBRID).
std::vector<uint8_t> connection_request(const std::optional<std::string>& cookie,
                                        bool correlation_info = false);

// The hostile first PDUs a gateway must survive, all opened at once: garbage, an oversized TPKT
// announcement and a request cut short by the client closing (each to be closed at once), then a
// truncated request left hanging and a slowloris sending a valid request one byte a second (each
// to be closed at the first-PDU timeout). Shared by the fake-broker and the full-stack tests.
class HostileClients {
 public:
  HostileClients() = default;
  ~HostileClients();
  HostileClients(const HostileClients&) = delete;
  HostileClients& operator=(const HostileClients&) = delete;
  // valid_pdu: a well-formed Connection Request (the truncated one and the slowloris use it).
  Result<void> open(uint16_t port, const std::vector<uint8_t>& valid_pdu);
  std::chrono::steady_clock::time_point opened_at() const { return opened_at_; }
  // Time until garbage, oversized and cut were closed; nullopt if one was still open at `within`.
  std::array<std::optional<std::chrono::milliseconds>, 3> wait_refused(std::chrono::milliseconds within);
  // The same for truncated and slowloris.
  std::array<std::optional<std::chrono::milliseconds>, 2> wait_timed_out(std::chrono::milliseconds within);

 private:
  UniqueFd garbage_, oversized_, cut_, truncated_, slow_;
  std::atomic<bool> stop_slow_{false};
  std::thread slowloris_;
  std::chrono::steady_clock::time_point opened_at_;
};

}  // namespace appvirt::testing
