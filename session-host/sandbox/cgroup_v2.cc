// cgroup v2: one unified hierarchy. Controllers reach a group only when every ancestor lists
// them in cgroup.subtree_control, and a group with controllers enabled for its children may not
// hold processes itself ("no internal processes"): processes live in leaves.
#include <signal.h>

#include <set>
#include <sstream>

#include "session-host/sandbox/cgroup.h"

namespace appvirt::sandbox {
namespace {

using namespace cgroup_detail;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kCpuPeriodUs = 100000;

std::set<std::string> words(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string w;
  while (in >> w) out.insert(w);
  return out;
}

class CgroupV2 : public CgroupDriver {
 public:
  CgroupV2(Sys& sys, std::string root) : sys_(sys), root_(std::move(root)) {}

  CgroupVersion version() const override { return CgroupVersion::v2; }
  const std::string& root() const override { return root_; }

  Result<> create(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    std::string parent = root_;
    std::string p(path);
    size_t start = 0;
    while (start < p.size()) {
      size_t end = p.find('/', start);
      if (end == std::string::npos) end = p.size();
      if (auto r = enable_controllers(parent); !r) return r;
      std::string d = parent + "/" + p.substr(start, end - start);
      if (!sys_.exists(d)) {
        auto r = sys_.mkdir(d, 0755);
        if (!r && r.error().err != EEXIST) return r;
      }
      parent = d;
      start = end + 1;
    }
    return {};
  }

  Result<> set_limits(std::string_view path, const Limits& limits) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    std::string d = dir(path);
    std::string mem = limits.memory_max ? std::to_string(*limits.memory_max) : "max";
    if (auto r = sys_.write_file(d + "/memory.max", mem); !r) return r;
    // memory.max bounds RAM only; with swap a group could go past it. No swap when limited.
    if (sys_.exists(d + "/memory.swap.max")) {
      auto r = sys_.write_file(d + "/memory.swap.max", limits.memory_max ? "0" : "max");
      if (!r) return r;
    }
    std::string weight = std::to_string(limits.cpu_weight.value_or(100));
    if (auto r = sys_.write_file(d + "/cpu.weight", weight); !r) return r;
    std::string quota = "max";
    if (limits.cpu_max_percent)
      quota = std::to_string(*limits.cpu_max_percent * kCpuPeriodUs / 100);
    auto r = sys_.write_file(d + "/cpu.max", quota + " " + std::to_string(kCpuPeriodUs));
    if (!r) return r;
    std::string pids = limits.pids_max ? std::to_string(*limits.pids_max) : "max";
    return sys_.write_file(d + "/pids.max", pids);
  }

  Result<> add_proc(std::string_view path, pid_t pid) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    return sys_.write_file(dir(path) + "/cgroup.procs", std::to_string(pid));
  }

  Result<std::vector<pid_t>> procs(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return tl::unexpected(r.error());
    std::vector<pid_t> all;
    if (!sys_.exists(dir(path))) return all;
    auto groups = subtree_bottom_up(sys_, dir(path));
    if (!groups) return tl::unexpected(groups.error());
    for (const std::string& g : *groups) {
      auto pids = read_pids(sys_, g + "/cgroup.procs");
      if (!pids) return tl::unexpected(pids.error());
      all.insert(all.end(), pids->begin(), pids->end());
    }
    return all;
  }

  Result<> kill_all(std::string_view path, std::chrono::milliseconds timeout) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    std::string d = dir(path);
    bool has_kill = sys_.exists(d + "/cgroup.kill");  // Linux 5.14+
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto pids = procs(path);
      if (!pids) return tl::unexpected(pids.error());
      if (pids->empty()) return {};
      if (Clock::now() > deadline) {
        return fail("kill_all(" + std::string(path) + "): " + std::to_string(pids->size()) +
                        " processes left after " + std::to_string(timeout.count()) + " ms",
                    ETIMEDOUT);
      }
      auto r = has_kill ? sys_.write_file(d + "/cgroup.kill", "1") : freeze_and_kill(d, *pids);
      if (!r) return r;
      sys_.sleep_ms(10);
    }
  }

  Result<> remove(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return r;
    if (!sys_.exists(dir(path))) return {};
    auto groups = subtree_bottom_up(sys_, dir(path));
    if (!groups) return tl::unexpected(groups.error());
    for (const std::string& g : *groups) {
      auto r = sys_.rmdir(g);
      if (!r && r.error().err != ENOENT) return r;
    }
    return {};
  }

  Result<CgroupStats> stats(std::string_view path) override {
    if (auto r = validate_cgroup_path(path); !r) return tl::unexpected(r.error());
    std::string d = dir(path);
    CgroupStats s;
    auto mem = read_u64(sys_, d + "/memory.current");
    if (!mem) return tl::unexpected(mem.error());
    s.memory_current = *mem;
    auto pids = read_u64(sys_, d + "/pids.current");
    if (!pids) return tl::unexpected(pids.error());
    s.pids_current = *pids;
    // memory.events is hierarchical (unless mounted with memory_localevents).
    auto ooms = read_keyed(sys_, d + "/memory.events", "oom_kill");
    if (!ooms) return tl::unexpected(ooms.error());
    s.oom_kills = *ooms;
    auto cpu = read_keyed(sys_, d + "/cpu.stat", "usage_usec");
    if (!cpu) return tl::unexpected(cpu.error());
    s.cpu_usage_usec = *cpu;
    return s;
  }

  bool exists(std::string_view path) override {
    return validate_cgroup_path(path) && sys_.exists(dir(path));
  }

 private:
  std::string dir(std::string_view path) const { return root_ + "/" + std::string(path); }

  // Enables our controllers for the children of parent, those the parent has and not yet.
  Result<> enable_controllers(const std::string& parent) {
    auto available = sys_.read_file(parent + "/cgroup.controllers");
    if (!available) return tl::unexpected(available.error());
    auto enabled = sys_.read_file(parent + "/cgroup.subtree_control");
    if (!enabled) return tl::unexpected(enabled.error());
    std::set<std::string> have = words(*available), on = words(*enabled);
    for (const std::string& c : cgroup_v2_controllers()) {
      if (!have.count(c) || on.count(c)) continue;
      auto r = sys_.write_file(parent + "/cgroup.subtree_control", "+" + c);
      if (!r) {
        // EBUSY: the parent holds processes itself (no internal processes rule).
        return fail("enable " + c + " for children of " + parent + ": " + r.error().message,
                    r.error().err);
      }
    }
    return {};
  }

  // Without cgroup.kill: freeze so nothing forks between listing and killing; v2 frozen
  // tasks still die of SIGKILL.
  Result<> freeze_and_kill(const std::string& d, const std::vector<pid_t>& pids) {
    bool frozen = static_cast<bool>(sys_.write_file(d + "/cgroup.freeze", "1"));
    for (pid_t pid : pids) {
      auto r = sys_.kill(pid, SIGKILL);
      if (!r && r.error().err != ESRCH) return r;
    }
    if (frozen) return sys_.write_file(d + "/cgroup.freeze", "0");
    return {};
  }

  Sys& sys_;
  std::string root_;
};

}  // namespace

std::unique_ptr<CgroupDriver> make_cgroup_v2(Sys& sys, std::string root) {
  return std::make_unique<CgroupV2>(sys, std::move(root));
}

}  // namespace appvirt::sandbox
