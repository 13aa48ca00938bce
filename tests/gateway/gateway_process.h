#pragma once
// The appvirt-gateway binary as a child process for end-to-end tests: a config file pointing at
// a FakeBroker, port 0, the bound port read from its stdout line, stderr (the log) in a file.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "tests/gateway/fake_broker.h"
#include "tests/tools/test_support.h"

namespace appvirt::testing {

class GatewayProcess {
 public:
  // extra_toml is appended to the generated config (e.g. "[limits]\nfirst_pdu_timeout_ms = 2000").
  static Result<GatewayProcess> start(const std::string& binary, const std::string& dir,
                                      const FakeBroker& broker, const std::string& extra_toml = {});
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

std::string read_text_file(const std::string& path);
// Writes the gateway config for a broker; returns its path.
std::string write_gateway_config(const std::string& dir, const FakeBroker& broker,
                                 const std::string& extra_toml);

UniqueFd connect_loopback(uint16_t port);
bool send_all(int fd, const std::vector<uint8_t>& data);
// Time until the peer closes fd (EOF or reset), or nullopt if it stays open for `within`. Data
// that arrives meanwhile is read and dropped.
std::optional<std::chrono::milliseconds> time_to_close(int fd, std::chrono::milliseconds within);
// A Connection Request with this cookie line and an RDP_NEG_REQ (TLS | HYBRID).
std::vector<uint8_t> connection_request(const std::optional<std::string>& cookie,
                                        bool correlation_info = false);

}  // namespace appvirt::testing
