#pragma once
// appvirt-gateway settings: one validated struct built from gateway.toml (common/config.h reports
// every problem with file:line:key). See docs/gateway.md for the file format.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/result.h"
#include "gateway/relay.h"

namespace appvirt::gateway {

using std::chrono::milliseconds;

struct ListenConfig {
  std::string address = "0.0.0.0";
  uint16_t port = 3389;  // 0: any free port (tests); the bound port is logged
};

struct LimitsConfig {
  size_t max_connections = 4096;   // all connections: waiting, logging on, relaying
  size_t max_pre_routing = 1024;   // connections whose first PDU is not routed yet
  milliseconds first_pdu_timeout{5000};
  milliseconds connect_timeout{5000};  // gateway -> session endpoint
};

struct BrokerConfig {
  std::string host;  // from url = "https://host:port"
  uint16_t port = 8443;
  std::filesystem::path ca_file;      // pinned broker certificate or its CA (PEM)
  std::filesystem::path secret_file;  // shared secret of the internal API
  std::string server_name;            // if set: checked against the certificate, sent as SNI
  milliseconds timeout{10000};        // token redemption (the whole HTTPS exchange)
  milliseconds logon_timeout{30000};  // logon = PAM + placement + session start
};

struct LogonConfig {
  bool enabled = true;
  std::filesystem::path cert_file = "/var/lib/appvirt/gateway/logon.crt";
  std::filesystem::path key_file = "/var/lib/appvirt/gateway/logon.key";
  std::string cert_common_name;  // for a generated certificate; default: the host name
  size_t max_sessions = 32;
  milliseconds timeout{60000};  // a whole logon-front connection, redirect included
};

enum class EndpointPreference { kUnix, kTcp };

struct GatewayConfig {
  std::string log_level = "info";
  ListenConfig listen;
  LimitsConfig limits;
  BrokerConfig broker;
  LogonConfig logon;
  EndpointPreference prefer = EndpointPreference::kUnix;
  RelayMode relay_mode = RelayMode::kSplice;  // relay.mode: "splice" (default) or "copy"
};

// Reads and validates the file. The error lists every issue, one per line.
Result<GatewayConfig> load_gateway_config(const std::filesystem::path& file);
Result<GatewayConfig> parse_gateway_config(std::string_view text, const std::string& file_name);

// "https://host:port" / "https://[v6]:port" / "https://host" (port 443). Nothing else.
Result<std::pair<std::string, uint16_t>> parse_https_url(std::string_view url);

}  // namespace appvirt::gateway
