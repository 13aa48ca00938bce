#pragma once
// What hostd needs from cgroups, as a seam (STYLE §2). The real implementation adapts the
// sandbox library's CgroupDriver (session-host/sandbox/cgroup.h) when that is available, and a
// small filesystem driver of hostd's own otherwise; tests use a fake. Paths are relative to the
// root of each hierarchy: "appvirt/u-alice/s-<sid>".
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "session-host/hostd/limits.h"

namespace appvirt::hostd {

// What a cgroup subtree uses right now (for the directory and the admin pages).
struct CgroupUsage {
  uint64_t memory_bytes = 0;
  uint64_t pids = 0;
  uint64_t cpu_usec = 0;  // cumulative CPU time
};

class CgroupControl {
 public:
  virtual ~CgroupControl() = default;
  virtual std::string version() const = 0;  // "v1" or "v2"
  virtual Result<void> create(const std::string& path) = 0;
  virtual Result<void> set_limits(const std::string& path, const Limits& limits) = 0;
  // Kills every process in the cgroup and its children and waits (bounded) until it is empty.
  virtual Result<void> kill_all(const std::string& path) = 0;
  // Removes the cgroup and its children (children first). Missing is not an error.
  virtual Result<void> remove(const std::string& path) = 0;
  // rmdir of one cgroup (no children) if it is empty; silently keeps it otherwise.
  virtual void remove_if_empty(const std::string& path) = 0;
  // How many processes the OOM killer has killed in this cgroup.
  virtual Result<uint64_t> oom_kills(const std::string& path) = 0;
  virtual Result<std::vector<pid_t>> procs(const std::string& path) = 0;
  // Current usage of the subtree; fakes need not provide it.
  virtual Result<CgroupUsage> usage(const std::string& path) {
    (void)path;
    return fail("cgroup usage: not supported by this driver");
  }
  // Opened cgroup.procs files (one per hierarchy) that a new child writes "0" to before exec.
  virtual Result<std::vector<UniqueFd>> open_procs_files(const std::string& path) = 0;
};

}  // namespace appvirt::hostd
