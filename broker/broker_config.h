#pragma once
// Everything appvirt-broker reads from its TOML file (and the catalog file it names), validated
// in one pass: each problem names the file, the line and the key; unknown keys are errors.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "broker/catalog.h"
#include "policies/policy.h"
#include "common/result.h"

namespace appvirt::broker {

struct ListenConfig {
  std::string address = "0.0.0.0";
  uint16_t port = 8443;  // 0 = any free port (tests); the chosen port is logged
  // Empty = a self-signed pair under state_dir/tls, generated at first start.
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  std::size_t max_connections = 256;
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{10'000};
};

struct LockoutConfig {
  int max_failures_per_user = 5;
  int max_failures_per_address = 20;
  std::chrono::seconds window{300};
  std::chrono::seconds lockout{300};
};

struct HostConfig {
  std::string name;
  std::string socket;  // hostd control socket (same machine)
  int capacity = 50;   // sessions
};

struct BrokerConfig {
  std::string log_level = "info";
  std::filesystem::path state_dir = "/var/lib/appvirt/broker";
  std::filesystem::path database;   // default state_dir/broker.db
  std::string gateway_address;      // "host:port" written into .rdp files
  std::string pam_service = "appvirt";
  std::string admin_group = "appvirt-admins";
  int auth_threads = 4;
  std::chrono::seconds web_session_ttl{8 * 3600};
  std::chrono::seconds web_session_idle{3600};
  std::filesystem::path web_root;  // the portal's static files (web-portal/), served at "/"
  std::chrono::seconds launch_token_ttl{60};
  int default_width = 1280;
  int default_height = 800;
  ListenConfig listen;
  LockoutConfig lockout;
  // Secrets of the internal APIs, read from files at start; empty = that API is disabled.
  std::filesystem::path gateway_secret_file;
  std::filesystem::path host_secret_file;
  std::chrono::seconds host_report_timeout{15};
  std::chrono::milliseconds host_poll_interval{5'000};
  std::chrono::milliseconds hostd_timeout{60'000};
  std::vector<HostConfig> hosts;
  std::filesystem::path catalog_file;  // optional; its apps join the [[apps]] of this file
  std::vector<App> apps;
  // Per-user and per-group policies (docs/policies.md); without a file the built-in defaults.
  std::filesystem::path policy_file;
  policies::PolicySet policies;
};

// Parses config text; file_name is used in messages. Does not read the catalog file.
Result<BrokerConfig> parse_broker_config(std::string_view text, const std::string& file_name);
// Reads the file, parses it, then loads and merges the catalog file and the policy file if named.
Result<BrokerConfig> load_broker_config(const std::filesystem::path& file);

}  // namespace appvirt::broker
