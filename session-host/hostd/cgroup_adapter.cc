#include "session-host/hostd/cgroup_adapter.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

namespace appvirt::hostd {

namespace fs = std::filesystem;

sandbox::Limits to_sandbox_limits(const Limits& l) {
  sandbox::Limits out;
  out.memory_max = l.memory_max;
  if (l.cpu_weight) out.cpu_weight = static_cast<uint32_t>(*l.cpu_weight);
  if (l.cpu_max_percent) out.cpu_max_percent = static_cast<uint32_t>(*l.cpu_max_percent);
  if (l.pids_max) out.pids_max = static_cast<uint64_t>(*l.pids_max);
  return out;
}

Result<std::unique_ptr<DriverCgroupControl>> DriverCgroupControl::detect(std::string root) {
  auto driver = sandbox::CgroupDriver::detect(sandbox::linux_sys(), std::move(root));
  if (!driver) return tl::unexpected(driver.error());
  return std::make_unique<DriverCgroupControl>(std::move(*driver));
}

std::string DriverCgroupControl::version() const {
  return driver_->version() == sandbox::CgroupVersion::v2 ? "v2" : "v1";
}

Result<void> DriverCgroupControl::create(const std::string& path) { return driver_->create(path); }

Result<void> DriverCgroupControl::set_limits(const std::string& path, const Limits& limits) {
  return driver_->set_limits(path, to_sandbox_limits(limits));
}

Result<void> DriverCgroupControl::kill_all(const std::string& path) {
  if (!driver_->exists(path) && dirs_of(path).empty()) return {};
  return driver_->kill_all(path, std::chrono::seconds(5));
}

Result<void> DriverCgroupControl::remove(const std::string& path) { return driver_->remove(path); }

void DriverCgroupControl::remove_if_empty(const std::string& path) {
  for (const auto& d : dirs_of(path)) ::rmdir(d.c_str());
}

Result<uint64_t> DriverCgroupControl::oom_kills(const std::string& path) {
  auto s = driver_->stats(path);
  if (!s) return tl::unexpected(s.error());
  return s->oom_kills;
}

Result<CgroupUsage> DriverCgroupControl::usage(const std::string& path) {
  auto s = driver_->stats(path);
  if (!s) return tl::unexpected(s.error());
  return CgroupUsage{s->memory_current, s->pids_current, s->cpu_usage_usec};
}

Result<std::vector<pid_t>> DriverCgroupControl::procs(const std::string& path) {
  return driver_->procs(path);
}

std::vector<std::string> DriverCgroupControl::dirs_of(const std::string& path) const {
  std::vector<std::string> out;
  std::vector<std::string> candidates;
  if (driver_->version() == sandbox::CgroupVersion::v2) {
    candidates.push_back(driver_->root() + "/" + path);
  } else {
    for (const auto& c : sandbox::cgroup_v1_controllers()) {
      candidates.push_back(driver_->root() + "/" + c + "/" + path);
    }
  }
  std::error_code ec;
  for (const auto& c : candidates) {
    if (!fs::is_directory(c, ec)) continue;
    // cpu and cpuacct are often one hierarchy reached through two names: keep it once.
    auto real = fs::canonical(c, ec).string();
    bool seen = false;
    for (const auto& o : out) seen = seen || fs::canonical(o, ec).string() == real;
    if (!seen) out.push_back(c);
  }
  return out;
}

Result<std::vector<UniqueFd>> DriverCgroupControl::open_procs_files(const std::string& path) {
  std::vector<UniqueFd> out;
  for (const auto& d : dirs_of(path)) {
    std::string f = d + "/cgroup.procs";
    UniqueFd fd(::open(f.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return fail_errno("open(" + f + ")");
    out.push_back(std::move(fd));
  }
  if (out.empty()) return fail("cgroup " + path + " does not exist");
  return out;
}

}  // namespace appvirt::hostd
