#pragma once
// hostd.toml → one validated HostdConfig (STYLE §7: parse, then apply). Every key, its default
// and its meaning is listed in docs/hostd.md.
#include <chrono>
#include <filesystem>
#include <string>

#include "common/result.h"
#include "session-host/hostd/limits.h"

namespace appvirt::hostd {

// [vm]: VM sessions (docs/vm.md). Off unless image_dir is set.
struct VmConfig {
  std::filesystem::path image_dir;      // a built golden image (deploy/build-vm-image.sh)
  int capacity = 2;                     // VM sessions this host runs at once
  std::string accelerator = "auto";     // auto (probe KVM, else TCG) | tcg | kvm
  uint64_t memory_mib = 1024;           // when the launch's limits name no memory_max
  int vcpus = 1;                        // when the launch's limits name no cpu_max_percent
  std::chrono::milliseconds ready_timeout{240'000};  // QEMU start → guest agent "ready"
  std::chrono::milliseconds power_off_grace{20'000};  // ACPI power-off before quit/kill
  std::filesystem::path qemu = "/usr/bin/qemu-system-x86_64";
  std::filesystem::path qemu_img = "/usr/bin/qemu-img";
  bool enabled() const { return !image_dir.empty(); }
};

struct HostdConfig {
  std::filesystem::path state_dir = "/var/lib/appvirt/hostd";
  std::filesystem::path runtime_dir = "/run/appvirt";
  std::filesystem::path control_socket;  // default <runtime_dir>/hostd.sock
  std::string log_level = "info";
  uid_t min_uid = 1000;                  // users below this uid may not run sessions (root never)
  std::chrono::seconds ended_retention{600};  // how long ended sessions stay listed

  std::string rdp_user = "appvirt-rdp";
  bool rdp_listen_tcp = false;           // also listen on 127.0.0.1:<ephemeral>
  std::filesystem::path tls_cert;        // default <state_dir>/tls/rdp.crt (generated)
  std::filesystem::path tls_key;         // default <state_dir>/tls/rdp.key (generated)
  std::chrono::milliseconds rdp_ready_timeout{10'000};
  std::string rdp_log_level = "info";

  int display_first = 200;
  int display_last = 999;
  int default_width = 1024;
  int default_height = 768;
  std::chrono::milliseconds xvfb_start_timeout{10'000};
  // Xvfb's GLX extension loads Mesa at start (one Xvfb: 64 vs 12 MiB PSS; 22 vs 7 MiB per
  // session with 20 running). Off unless a published app needs OpenGL (docs/hostd.md).
  bool xvfb_glx = false;

  Limits default_limits;                  // applied to fields a launch leaves out
  std::chrono::milliseconds sandbox_timeout{30'000};
  // How often a session with an idle or disconnect timeout reads its endpoint's activity
  // report (not a file key: the timeouts' precision; tests shorten it).
  std::chrono::milliseconds activity_poll{1000};

  std::filesystem::path sandbox_path;     // default: appvirt-sandbox next to the hostd binary
  std::filesystem::path rdp_path;         // default: appvirt-rdp next to the hostd binary
  std::filesystem::path xvfb_path = "/usr/bin/Xvfb";

  VmConfig vm;
};

// Parses the TOML text; exe_dir is where the hostd binary lives (default helper paths).
// The error lists every issue as "file:line: key: message", one per line.
Result<HostdConfig> parse_hostd_config(std::string_view text, const std::string& file_name,
                                       const std::filesystem::path& exe_dir);
Result<HostdConfig> load_hostd_config(const std::filesystem::path& file,
                                      const std::filesystem::path& exe_dir);

}  // namespace appvirt::hostd
