#pragma once
// CgroupControl on the sandbox library's CgroupDriver (session-host/sandbox/cgroup.h): one
// cgroup implementation for the helper and hostd. What the driver does not offer (the
// cgroup.procs files a new child joins before exec, rmdir of an empty parent) is done here
// on the driver's root and controller layout.
#include <memory>

#include "session-host/hostd/cgroup_control.h"
#include "session-host/sandbox/cgroup.h"

namespace appvirt::hostd {

class DriverCgroupControl : public CgroupControl {
 public:
  // CgroupDriver::detect on the live system.
  static Result<std::unique_ptr<DriverCgroupControl>> detect(std::string root = "/sys/fs/cgroup");
  explicit DriverCgroupControl(std::unique_ptr<sandbox::CgroupDriver> driver)
      : driver_(std::move(driver)) {}

  std::string version() const override;
  Result<void> create(const std::string& path) override;
  Result<void> set_limits(const std::string& path, const Limits& limits) override;
  Result<void> kill_all(const std::string& path) override;
  Result<void> remove(const std::string& path) override;
  void remove_if_empty(const std::string& path) override;
  Result<uint64_t> oom_kills(const std::string& path) override;
  Result<CgroupUsage> usage(const std::string& path) override;
  Result<std::vector<pid_t>> procs(const std::string& path) override;
  Result<std::vector<UniqueFd>> open_procs_files(const std::string& path) override;

 private:
  // The directory of path in each hierarchy the driver uses (v2: one).
  std::vector<std::string> dirs_of(const std::string& path) const;

  std::unique_ptr<sandbox::CgroupDriver> driver_;
};

sandbox::Limits to_sandbox_limits(const Limits& l);

}  // namespace appvirt::hostd
