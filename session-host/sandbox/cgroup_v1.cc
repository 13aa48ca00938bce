// cgroup v1: one hierarchy per controller (root/memory, root/cpu, ...); a group is the same
// relative path in each. Killing uses the freezer so a fork bomb cannot outrun the kill loop.
#include <signal.h>

#include <cstdint>
#include <set>

#include "session-host/sandbox/cgroup.h"

namespace appvirt::sandbox {
namespace {

using namespace cgroup_detail;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kCfsPeriodUs = 100000;

class CgroupV1 : public CgroupDriver {
 public:
  CgroupV1(Sys& sys, std::string root) : sys_(sys), root_(std::move(root)) {
    for (const std::string& c : cgroup_v1_controllers()) {
      if (sys_.exists(root_ + "/" + c)) controllers_.push_back(c);
    }
  }

  CgroupVersion version() const override { return CgroupVersion::v1; }
  const std::string& root() const override { return root_; }

  Result<> create(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    for (const std::string& c : controllers_) {
      if (auto r = create_in(c, std::string(path)); !r) return r;
    }
    return {};
  }

  Result<> set_limits(std::string_view path, const Limits& limits) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    std::string p(path);
    if (auto r = set_memory(p, limits.memory_max); !r) return r;
    if (auto r = set_cpu(p, limits); !r) return r;
    std::string pids = limits.pids_max ? std::to_string(*limits.pids_max) : "max";
    return sys_.write_file(dir("pids", p) + "/pids.max", pids);
  }

  Result<> add_proc(std::string_view path, pid_t pid) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    for (const std::string& c : controllers_) {
      auto r = sys_.write_file(dir(c, std::string(path)) + "/cgroup.procs", std::to_string(pid));
      if (!r) return r;
    }
    return {};
  }

  Result<std::vector<pid_t>> procs(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return tl::unexpected(r.error());
    // The union over hierarchies: a process moved in one hierarchy only is still ours.
    std::set<pid_t> all;
    for (const std::string& c : controllers_) {
      std::string d = dir(c, std::string(path));
      if (!sys_.exists(d)) continue;
      auto groups = subtree_bottom_up(sys_, d);
      if (!groups) return tl::unexpected(groups.error());
      for (const std::string& g : *groups) {
        auto pids = read_pids(sys_, g + "/cgroup.procs");
        if (!pids) return tl::unexpected(pids.error());
        all.insert(pids->begin(), pids->end());
      }
    }
    return std::vector<pid_t>(all.begin(), all.end());
  }

  Result<> kill_all(std::string_view path, std::chrono::milliseconds timeout) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    std::string p(path);
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto pids = procs(p);
      if (!pids) return tl::unexpected(pids.error());
      if (pids->empty()) return {};
      if (Clock::now() > deadline) {
        return fail("kill_all(" + p + "): " + std::to_string(pids->size()) +
                        " processes left after " + std::to_string(timeout.count()) + " ms",
                    ETIMEDOUT);
      }
      // Frozen, nothing in the group can fork between reading the list and the kills. v1
      // frozen tasks die of SIGKILL only once thawed, hence kill, then thaw.
      bool frozen = freeze(p, deadline);
      for (pid_t pid : *pids) {
        auto r = sys_.kill(pid, SIGKILL);
        if (!r && r.error().err != ESRCH) return r;
      }
      if (frozen) {
        if (auto r = sys_.write_file(dir("freezer", p) + "/freezer.state", "THAWED"); !r) return r;
      }
      sys_.sleep_ms(10);
    }
  }

  Result<> remove(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    for (const std::string& c : controllers_) {
      std::string d = dir(c, std::string(path));
      if (!sys_.exists(d)) continue;  // gone, or a co-mounted hierarchy already handled
      auto groups = subtree_bottom_up(sys_, d);
      if (!groups) return tl::unexpected(groups.error());
      for (const std::string& g : *groups) {
        auto r = sys_.rmdir(g);
        if (!r && r.error().err != ENOENT) return r;
      }
    }
    return {};
  }

  Result<CgroupStats> stats(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return tl::unexpected(r.error());
    std::string p(path);
    CgroupStats s;
    auto mem = read_u64(sys_, dir("memory", p) + "/memory.usage_in_bytes");
    if (!mem) return tl::unexpected(mem.error());
    s.memory_current = *mem;
    auto pids = read_u64(sys_, dir("pids", p) + "/pids.current");
    if (!pids) return tl::unexpected(pids.error());
    s.pids_current = *pids;
    auto ooms = oom_kills(p);
    if (!ooms) return tl::unexpected(ooms.error());
    s.oom_kills = *ooms;
    if (has("cpuacct")) {
      auto ns = read_u64(sys_, dir("cpuacct", p) + "/cpuacct.usage");
      if (!ns) return tl::unexpected(ns.error());
      s.cpu_usage_usec = *ns / 1000;
    }
    return s;
  }

  bool exists(std::string_view path) override {
    if (!validate_cgroup_path(path)) return false;
    for (const std::string& c : controllers_) {
      if (!sys_.exists(dir(c, std::string(path)))) return false;
    }
    return true;
  }

 private:
  std::string dir(const std::string& controller, const std::string& path) const {
    return root_ + "/" + controller + "/" + path;
  }
  bool has(const std::string& controller) const {
    for (const std::string& c : controllers_) {
      if (c == controller) return true;
    }
    return false;
  }

  Result<> create_in(const std::string& controller, const std::string& path) {
    std::string d = root_ + "/" + controller;
    size_t start = 0;
    while (start < path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      d += "/" + path.substr(start, end - start);
      if (!sys_.exists(d)) {
        auto r = sys_.mkdir(d, 0755);
        if (!r && r.error().err != EEXIST) return r;
      }
      if (controller == "memory") {
        if (auto r = ensure_hierarchy(d); !r) return r;
      }
      start = end + 1;
    }
    return {};
  }

  // Without use_hierarchy a child's usage does not count against the parent's limit, so a
  // session group could escape the user's memory limit. Recent kernels fix it at 1.
  Result<> ensure_hierarchy(const std::string& d) {
    std::string file = d + "/memory.use_hierarchy";
    if (!sys_.exists(file)) return {};
    auto v = read_u64(sys_, file);
    if (!v) return tl::unexpected(v.error());
    if (*v == 1) return {};
    return sys_.write_file(file, "1");
  }

  Result<> set_memory(const std::string& p, std::optional<uint64_t> max) {
    std::string mem_file = dir("memory", p) + "/memory.limit_in_bytes";
    std::string sw_file = dir("memory", p) + "/memory.memsw.limit_in_bytes";
    std::string value = max ? std::to_string(*max) : "-1";
    if (!sys_.exists(sw_file)) return sys_.write_file(mem_file, value);
    // RAM+swap is limited to the same value so swap cannot extend the limit. The kernel wants
    // memsw >= memory at every moment: raise memsw first, lower it last.
    auto current_sw = read_u64(sys_, sw_file);
    if (!current_sw) return tl::unexpected(current_sw.error());
    uint64_t wanted = max.value_or(UINT64_MAX);
    if (wanted > *current_sw) {
      if (auto r = sys_.write_file(sw_file, value); !r) return r;
      return sys_.write_file(mem_file, value);
    }
    if (auto r = sys_.write_file(mem_file, value); !r) return r;
    return sys_.write_file(sw_file, value);
  }

  Result<> set_cpu(const std::string& p, const Limits& limits) {
    std::string d = dir("cpu", p);
    uint64_t shares = cpu_weight_to_shares(limits.cpu_weight.value_or(100));
    if (auto r = sys_.write_file(d + "/cpu.shares", std::to_string(shares)); !r) return r;
    std::string quota = "-1";
    if (limits.cpu_max_percent)
      quota = std::to_string(*limits.cpu_max_percent * kCfsPeriodUs / 100);
    if (auto r = sys_.write_file(d + "/cpu.cfs_period_us", std::to_string(kCfsPeriodUs)); !r) {
      return r;
    }
    return sys_.write_file(d + "/cpu.cfs_quota_us", quota);
  }

  // v1 counts an OOM kill only in the victim's own group, so sum over the subtree.
  Result<uint64_t> oom_kills(const std::string& p) {
    auto groups = subtree_bottom_up(sys_, dir("memory", p));
    if (!groups) return tl::unexpected(groups.error());
    uint64_t total = 0;
    for (const std::string& g : *groups) {
      auto n = read_keyed(sys_, g + "/memory.oom_control", "oom_kill");
      if (n) total += *n;  // kernels before 4.13 have no oom_kill line: 0
    }
    return total;
  }

  // Best effort: a task in uninterruptible sleep can keep the group FREEZING; the kill loop
  // still makes progress then, it only loses the fork-bomb guarantee for that round.
  bool freeze(const std::string& p, Clock::time_point deadline) {
    std::string file = dir("freezer", p) + "/freezer.state";
    if (!sys_.write_file(file, "FROZEN")) return false;
    auto until = std::min(deadline, Clock::now() + std::chrono::milliseconds(500));
    while (Clock::now() < until) {
      auto state = sys_.read_file(file);
      if (state && state->rfind("FROZEN", 0) == 0) return true;
      sys_.sleep_ms(5);
    }
    return true;  // FREEZING: still thaw afterwards
  }

  Sys& sys_;
  std::string root_;
  std::vector<std::string> controllers_;
};

}  // namespace

std::unique_ptr<CgroupDriver> make_cgroup_v1(Sys& sys, std::string root) {
  return std::make_unique<CgroupV1>(sys, std::move(root));
}

}  // namespace appvirt::sandbox
