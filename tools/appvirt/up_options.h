#pragma once
// `appvirt up` settings: CLI flags land in one validated struct (UpOptions); binary paths are
// resolved next to the appvirt executable unless a flag names them (build-tree tests do).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/result.h"

namespace appvirt::up {

namespace fs = std::filesystem;

// Executables `appvirt up` runs or hands to hostd / publishes.
struct Binaries {
  fs::path hostd, broker, gateway, sandbox, rdp, testpattern;
};

struct UpOptions {
  fs::path state_dir = "/var/lib/appvirt";
  fs::path runtime_dir = "/run/appvirt";  // hostd's sockets and containers' runtime dirs
  uint16_t http_port = 8443;              // broker HTTPS (portal + API)
  uint16_t rdp_port = 3389;               // gateway
  std::string bind = "0.0.0.0";           // broker and gateway listen address
  std::string public_host;                // what clients dial; empty = detected
  bool demo = true;
  std::string demo_user = "demo";
  std::string demo_password = "demo-password";  // never logged
  std::string pam_service = "appvirt";
  std::string log_level = "info";
  fs::path bin_dir;  // empty = the directory of the appvirt executable
  fs::path web_root;  // portal files for the broker; empty = <prefix>/share/appvirt/web-portal
                      // when that exists, else the broker's default
  Binaries bins;     // each empty = <bin_dir>/<name>
};

// Registers the `up` flags on a CLI11 (sub)command; `demo_spec` receives --demo-user USER:PASSWORD.
void add_up_flags(CLI::App& cmd, UpOptions& opts, std::string& demo_spec);

// Checks and completes the options after parsing: splits the demo spec, fills binary paths,
// picks the public host. Every problem is listed in the error, one per line.
Result<void> finish_up_options(UpOptions& opts, const std::string& demo_spec);

// The address clients use: the bind address unless it is a wildcard, else the first
// non-loopback IPv4 address of this machine, else 127.0.0.1.
std::string default_public_host(const std::string& bind);

// "host:port", with brackets for IPv6 literals.
std::string host_port(const std::string& host, uint16_t port);

// Loopback address to reach a daemon listening on `bind` from this machine.
std::string local_address(const std::string& bind);

}  // namespace appvirt::up
