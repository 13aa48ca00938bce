#pragma once
// cgroup drivers: one interface, a v1 (per-controller hierarchies) and a v2 (unified) driver.
// Paths are relative to the cgroup root ("appvirt/u-alice/s-123"); the root is injectable so
// the drivers can be tested against a fake tree in a temporary directory.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox {

// Resource limits of a cgroup. An absent field means unlimited / the kernel default, so
// set_limits() with a field removed lifts that limit on a running group.
struct Limits {
  std::optional<uint64_t> memory_max;       // bytes; RAM, and RAM+swap where it can be limited
  std::optional<uint32_t> cpu_weight;       // cgroup v2 scale 1..10000, 100 = default
  std::optional<uint32_t> cpu_max_percent;  // percent of one core, 200 = two cores
  std::optional<uint64_t> pids_max;         // processes + threads
};

// Cumulative counters of a group, its descendants included.
struct CgroupStats {
  uint64_t memory_current = 0;  // bytes
  uint64_t pids_current = 0;
  uint64_t oom_kills = 0;  // processes the OOM killer killed in this subtree
  uint64_t cpu_usage_usec = 0;
};

enum class CgroupVersion { v1, v2 };

class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;

  // The driver for this machine: v2 when root is a pure cgroup2 mount (cgroup.controllers at
  // the top), v1 when it holds the per-controller v1 hierarchies (an empty v2 hierarchy at
  // root/unified, as on hybrid systems, is ignored).
  static Result<std::unique_ptr<CgroupDriver>> detect(Sys& sys,
                                                      std::string root = "/sys/fs/cgroup");

  virtual CgroupVersion version() const = 0;
  virtual const std::string& root() const = 0;

  // Creates the group and its missing ancestors (idempotent).
  virtual Result<> create(std::string_view path) = 0;
  // Applies every field of limits; works on a group with running processes.
  virtual Result<> set_limits(std::string_view path, const Limits& limits) = 0;
  virtual Result<> add_proc(std::string_view path, pid_t pid) = 0;
  // Processes in the group and all its descendants.
  virtual Result<std::vector<pid_t>> procs(std::string_view path) = 0;
  // Kills every process in the subtree and waits until it is empty (bounded by timeout).
  virtual Result<> kill_all(std::string_view path,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) = 0;
  // Removes the group and its descendants, children first. A missing group is not an error.
  virtual Result<> remove(std::string_view path) = 0;
  virtual Result<CgroupStats> stats(std::string_view path) = 0;
  // Whether the group exists (in every hierarchy the driver uses).
  virtual bool exists(std::string_view path) = 0;
};

// Controllers the v1 driver uses, each a hierarchy under root (cpu and cpuacct may be one
// co-mounted hierarchy reached through two symlinks; that works too).
inline const std::vector<std::string>& cgroup_v1_controllers() {
  static const std::vector<std::string> list = {"memory", "cpu", "cpuacct", "pids", "freezer"};
  return list;
}
// Controllers the v2 driver enables in subtree_control on the way down.
inline const std::vector<std::string>& cgroup_v2_controllers() {
  static const std::vector<std::string> list = {"memory", "cpu", "pids"};
  return list;
}

std::unique_ptr<CgroupDriver> make_cgroup_v1(Sys& sys, std::string root);
std::unique_ptr<CgroupDriver> make_cgroup_v2(Sys& sys, std::string root);

// A relative path of safe components ([A-Za-z0-9_.-], not "." or ".."), no leading slash.
Result<> validate_cgroup_path(std::string_view path);

// v1 cpu.shares for a v2-scale weight (100 -> 1024), clamped to the kernel's range.
uint64_t cpu_weight_to_shares(uint32_t weight);

// Helpers shared by both drivers.
namespace cgroup_detail {
Result<uint64_t> read_u64(Sys& sys, const std::string& file);
// The value of "key N" in a flat-keyed file (memory.events, cpu.stat, memory.oom_control).
Result<uint64_t> read_keyed(Sys& sys, const std::string& file, std::string_view key);
Result<std::vector<pid_t>> read_pids(Sys& sys, const std::string& file);
// Every group of the subtree at dir, deepest first, dir itself last.
Result<std::vector<std::string>> subtree_bottom_up(Sys& sys, const std::string& dir);
}  // namespace cgroup_detail

}  // namespace appvirt::sandbox
