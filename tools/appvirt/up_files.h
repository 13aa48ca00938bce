#pragma once
// What `appvirt up` writes under its state directory: the three daemons' configs, the demo
// catalog and the gateway's shared secret. Rendering is pure (text from UpOptions, tested
// without root); writing is atomic and 0600 under a 0700 directory.
#include <string>
#include <vector>

#include "common/result.h"
#include "tools/appvirt/up_options.h"

namespace appvirt::up {

// Every path appvirt up uses, derived from the options once.
struct Layout {
  fs::path state_dir, hostd_toml, broker_toml, gateway_toml, catalog_toml, gateway_secret;
  fs::path hostd_state, broker_state, gateway_state, logs;
  fs::path hostd_socket, broker_cert, logon_cert, logon_key;
  fs::path demo_app_dir;  // in the demo user's home: the test pattern (the container sees /usr
                          // and the home, not the install prefix)
};

Layout make_layout(const UpOptions& opts, const std::string& demo_home);

// A published app of the demo catalog.
struct DemoApp {
  std::string id, name;
  std::vector<std::string> command;
};

// xterm, xclock (when installed) and the test pattern (with a demo user).
std::vector<DemoApp> demo_apps(const UpOptions& opts, const Layout& layout);

std::string toml_string(const std::string& s);
std::string render_hostd_toml(const UpOptions& opts, const Layout& layout);
std::string render_broker_toml(const UpOptions& opts, const Layout& layout);
std::string render_gateway_toml(const UpOptions& opts, const Layout& layout);
std::string render_catalog_toml(const UpOptions& opts, const std::vector<DemoApp>& apps);

// 256 random bits, hex (the broker wants ≥ 32 printable characters).
Result<std::string> random_secret();

// Creates the state directory tree and writes every generated file.
Result<void> write_state_files(const UpOptions& opts, const Layout& layout,
                               const std::vector<DemoApp>& apps);

// Writes content to path atomically (temp file in the same directory, fsync, rename).
Result<void> write_file_atomic(const fs::path& path, const std::string& content, mode_t mode);

}  // namespace appvirt::up
