#include "session-host/hostd/hostd_config.h"

#include <fstream>
#include <sstream>

#include "common/config.h"

namespace appvirt::hostd {

namespace {

namespace fs = std::filesystem;

void read_general(ConfigReader& r, HostdConfig& c) {
  c.state_dir = r.get_absolute_path("state_dir", c.state_dir);
  c.runtime_dir = r.get_absolute_path("runtime_dir", c.runtime_dir);
  c.control_socket = r.get_absolute_path("control_socket", c.runtime_dir / "hostd.sock");
  c.log_level = r.get_string("log_level", c.log_level);
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
  if (!levels.count(c.log_level)) {
    r.add_issue("log_level", "must be one of trace, debug, info, warn, error");
  }
  c.min_uid = static_cast<uid_t>(r.get_int("min_uid", c.min_uid, 1, 2147483647));
  c.ended_retention = std::chrono::seconds(
      r.get_int("ended_retention_seconds", c.ended_retention.count(), 0, 7 * 86400));
  c.sandbox_timeout = std::chrono::milliseconds(
      r.get_int("sandbox_timeout_ms", c.sandbox_timeout.count(), 100, 600'000));
}

void read_rdp(ConfigReader& r, HostdConfig& c) {
  c.rdp_user = r.get_string("rdp.user", c.rdp_user);
  if (c.rdp_user.empty()) r.add_issue("rdp.user", "must not be empty");
  c.rdp_listen_tcp = r.get_bool("rdp.listen_tcp", c.rdp_listen_tcp);
  c.tls_cert = r.get_absolute_path("rdp.tls_cert", c.state_dir / "tls" / "rdp.crt");
  c.tls_key = r.get_absolute_path("rdp.tls_key", c.state_dir / "tls" / "rdp.key");
  c.rdp_ready_timeout = std::chrono::milliseconds(
      r.get_int("rdp.ready_timeout_ms", c.rdp_ready_timeout.count(), 100, 120'000));
  c.rdp_log_level = r.get_string("rdp.log_level", c.rdp_log_level);
}

void read_display(ConfigReader& r, HostdConfig& c) {
  c.display_first = static_cast<int>(r.get_int("display.first", c.display_first, 1, 65000));
  c.display_last = static_cast<int>(r.get_int("display.last", c.display_last, 1, 65000));
  if (c.display_last < c.display_first) {
    r.add_issue("display.last", "must not be below display.first");
  }
  c.default_width = static_cast<int>(r.get_int("display.width", c.default_width, 64, 8192));
  c.default_height = static_cast<int>(r.get_int("display.height", c.default_height, 64, 8192));
  c.xvfb_start_timeout = std::chrono::milliseconds(
      r.get_int("display.start_timeout_ms", c.xvfb_start_timeout.count(), 100, 120'000));
  c.xvfb_glx = r.get_bool("display.glx", c.xvfb_glx);
}

void read_limits(ConfigReader& r, HostdConfig& c) {
  c.default_limits.memory_max = r.get_optional_size("limits.memory_max", kMinMemoryMax, kMaxMemoryMax);
  c.default_limits.cpu_weight = r.get_optional_int("limits.cpu_weight", 1, 10000);
  c.default_limits.cpu_max_percent = r.get_optional_int("limits.cpu_max_percent", 1, 100000);
  c.default_limits.pids_max = r.get_optional_int("limits.pids_max", 8, 4194304);
}

void read_paths(ConfigReader& r, HostdConfig& c, const fs::path& exe_dir) {
  c.sandbox_path = r.get_absolute_path("paths.sandbox", exe_dir / "appvirt-sandbox");
  c.rdp_path = r.get_absolute_path("paths.rdp", exe_dir / "appvirt-rdp");
  c.xvfb_path = r.get_absolute_path("paths.xvfb", c.xvfb_path);
}

void read_vm(ConfigReader& r, HostdConfig& c) {
  VmConfig& v = c.vm;
  v.image_dir = r.get_absolute_path("vm.image_dir", v.image_dir);
  v.capacity = static_cast<int>(r.get_int("vm.capacity", v.capacity, 0, 4096));
  v.accelerator = r.get_string("vm.accelerator", v.accelerator);
  if (v.accelerator != "auto" && v.accelerator != "tcg" && v.accelerator != "kvm") {
    r.add_issue("vm.accelerator", "must be one of auto, tcg, kvm");
  }
  v.memory_mib = static_cast<uint64_t>(r.get_int("vm.memory_mib", v.memory_mib, 128, 1 << 20));
  v.vcpus = static_cast<int>(r.get_int("vm.vcpus", v.vcpus, 1, 64));
  v.ready_timeout = std::chrono::milliseconds(
      r.get_int("vm.ready_timeout_ms", v.ready_timeout.count(), 1000, 1'800'000));
  v.power_off_grace = std::chrono::milliseconds(
      r.get_int("vm.power_off_grace_ms", v.power_off_grace.count(), 0, 600'000));
  v.qemu = r.get_absolute_path("vm.qemu", v.qemu);
  v.qemu_img = r.get_absolute_path("vm.qemu_img", v.qemu_img);
}

}  // namespace

Result<HostdConfig> parse_hostd_config(std::string_view text, const std::string& file_name,
                                       const std::filesystem::path& exe_dir) {
  auto reader = ConfigReader::parse(text, file_name);
  if (!reader) return tl::unexpected(reader.error());
  HostdConfig c;
  read_general(*reader, c);
  read_rdp(*reader, c);
  read_display(*reader, c);
  read_limits(*reader, c);
  read_paths(*reader, c, exe_dir);
  read_vm(*reader, c);
  reader->check_unknown_keys();
  if (!reader->ok()) {
    std::string report = reader->report();
    if (!report.empty() && report.back() == '\n') report.pop_back();
    return fail(report);
  }
  return c;
}

Result<HostdConfig> load_hostd_config(const std::filesystem::path& file,
                                      const std::filesystem::path& exe_dir) {
  std::ifstream in(file);
  if (!in) return fail_errno("open(" + file.string() + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_hostd_config(ss.str(), file.string(), exe_dir);
}

}  // namespace appvirt::hostd
