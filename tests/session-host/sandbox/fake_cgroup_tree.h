#pragma once
// A fake cgroup filesystem in a temporary directory: LinuxSys on real files, plus the few kernel
// behaviours the drivers rely on (control files appear on mkdir, cgroup.procs appends,
// subtree_control toggles words, rmdir of a group with its control files, SIGKILL empties a
// pid from every cgroup.procs, the v1 memory/memsw ordering rule, v2 no-internal-processes).
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "session-host/sandbox/cgroup.h"
#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox::testing {

namespace fs = std::filesystem;

inline void put(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}
inline std::string get(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class FakeCgroupTree : public LinuxSys {
 public:
  enum class Kind { v1, v2 };

  explicit FakeCgroupTree(Kind kind, bool has_cgroup_kill = true)
      : kind_(kind), has_kill_(has_cgroup_kill) {
    char tmpl[] = "/tmp/avt-cgtree-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    if (kind_ == Kind::v1) {
      for (const std::string& c : cgroup_v1_controllers()) {
        fs::create_directory(root_ + "/" + c);
        populate(root_ + "/" + c, c);
      }
    } else {
      populate(root_, "");
      put(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    }
  }
  ~FakeCgroupTree() override { fs::remove_all(root_); }

  const std::string& root() const { return root_; }
  std::vector<std::pair<pid_t, int>> kills;  // every kill(pid, sig)
  std::vector<std::string> freezer_at_kill;  // v1 freezer.state seen by each kill
  std::set<pid_t> immortal;                  // pids SIGKILL does not remove

  // Puts a pid in a group as the kernel would (test setup, not through the driver).
  void add_pid(const std::string& group_dir, pid_t pid) {
    put(group_dir + "/cgroup.procs", get(group_dir + "/cgroup.procs") + std::to_string(pid) + "\n");
  }

  Result<> mkdir(const std::string& path, mode_t mode) override {
    if (auto r = LinuxSys::mkdir(path, mode); !r) return r;
    populate(path, controller_of(path));
    return {};
  }

  Result<> rmdir(const std::string& path) override {
    if (!fs::exists(path)) return LinuxSys::rmdir(path);
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.is_directory()) return fail("rmdir(" + path + ")", EBUSY);
    }
    if (!get(path + "/cgroup.procs").empty()) return fail("rmdir(" + path + ")", EBUSY);
    for (const auto& e : fs::directory_iterator(path)) fs::remove(e.path());
    return LinuxSys::rmdir(path);
  }

  Result<> write_file(const std::string& path, std::string_view data) override {
    std::string name = fs::path(path).filename();
    std::string dir = fs::path(path).parent_path();
    if (!fs::exists(path)) return fail("open(" + path + ")", ENOENT);
    if (name == "cgroup.procs") {
      if (kind_ == Kind::v2 && !get(dir + "/cgroup.subtree_control").empty() && dir != root_) {
        return fail("write(" + path + ")", EBUSY);  // no internal processes
      }
      add_pid(dir, std::stoi(std::string(data)));
      return {};
    }
    if (name == "cgroup.subtree_control") return toggle(path, dir, std::string(data));
    if (name == "cgroup.kill") return kill_subtree(dir);
    if (name == "memory.limit_in_bytes" &&
        limit(data) > limit(get(dir + "/memory.memsw.limit_in_bytes"))) {
      return fail("write(" + path + ")", EINVAL);  // memory may not exceed memsw
    }
    if (name == "memory.memsw.limit_in_bytes" &&
        limit(data) < limit(get(dir + "/memory.limit_in_bytes"))) {
      return fail("write(" + path + ")", EINVAL);
    }
    return LinuxSys::write_file(path, data);
  }

  Result<> kill(pid_t pid, int sig) override {
    kills.emplace_back(pid, sig);
    if (kind_ == Kind::v1) freezer_at_kill.push_back(freezer_state_of(pid));
    if (sig == SIGKILL && !immortal.count(pid)) remove_pid_everywhere(pid);
    return {};
  }

  void sleep_ms(int) override {}

 private:
  static uint64_t limit(std::string_view text) {
    std::string s(text);
    if (s.rfind("-1", 0) == 0) return UINT64_MAX;
    return std::stoull(s);
  }

  std::string controller_of(const std::string& path) const {
    if (kind_ == Kind::v2) return "";
    std::string rel = path.substr(root_.size() + 1);
    return rel.substr(0, rel.find('/'));
  }

  void populate(const std::string& dir, const std::string& controller) {
    put(dir + "/cgroup.procs", "");
    if (kind_ == Kind::v2) {
      std::string parent = fs::path(dir).parent_path();
      put(dir + "/cgroup.controllers", dir == root_ ? "" : get(parent + "/cgroup.subtree_control"));
      put(dir + "/cgroup.subtree_control", "");
      put(dir + "/cgroup.events", "populated 0\nfrozen 0\n");
      put(dir + "/cgroup.freeze", "0\n");
      if (has_kill_) put(dir + "/cgroup.kill", "");
      put(dir + "/memory.max", "max\n");
      put(dir + "/memory.swap.max", "max\n");
      put(dir + "/memory.current", "0\n");
      put(dir + "/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
      put(dir + "/cpu.weight", "100\n");
      put(dir + "/cpu.max", "max 100000\n");
      put(dir + "/cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
      put(dir + "/pids.max", "max\n");
      put(dir + "/pids.current", "0\n");
      return;
    }
    if (controller == "memory") {
      put(dir + "/memory.limit_in_bytes", "9223372036854771712\n");
      put(dir + "/memory.memsw.limit_in_bytes", "9223372036854771712\n");
      put(dir + "/memory.use_hierarchy", "0\n");  // old kernels: must be turned on
      put(dir + "/memory.usage_in_bytes", "0\n");
      put(dir + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
    } else if (controller == "cpu") {
      put(dir + "/cpu.shares", "1024\n");
      put(dir + "/cpu.cfs_period_us", "100000\n");
      put(dir + "/cpu.cfs_quota_us", "-1\n");
    } else if (controller == "cpuacct") {
      put(dir + "/cpuacct.usage", "0\n");
    } else if (controller == "pids") {
      put(dir + "/pids.max", "max\n");
      put(dir + "/pids.current", "0\n");
    } else if (controller == "freezer") {
      put(dir + "/freezer.state", "THAWED\n");
    }
  }

  Result<> toggle(const std::string& path, const std::string& dir, const std::string& data) {
    if (dir != root_ && !get(dir + "/cgroup.procs").empty()) {
      return fail("write(" + path + ")", EBUSY);  // no internal processes
    }
    std::set<std::string> on;
    std::istringstream in(get(path));
    for (std::string w; in >> w;) on.insert(w);
    std::string c = data.substr(1);
    if (get(dir + "/cgroup.controllers").find(c) == std::string::npos) {
      return fail("write(" + path + ")", ENOENT);
    }
    if (data[0] == '+')
      on.insert(c);
    else
      on.erase(c);
    std::string out;
    for (const std::string& w : on) out += (out.empty() ? "" : " ") + w;
    put(path, out.empty() ? "" : out + "\n");
    return {};
  }

  Result<> kill_subtree(const std::string& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.path().filename() != "cgroup.procs") continue;
      std::istringstream in(get(e.path()));
      for (pid_t p; in >> p;) (void)kill(p, SIGKILL);
    }
    return {};
  }

  std::string freezer_state_of(pid_t pid) const {
    for (const auto& e : fs::recursive_directory_iterator(root_ + "/freezer")) {
      if (e.path().filename() != "cgroup.procs") continue;
      std::istringstream in(get(e.path()));
      for (pid_t p; in >> p;) {
        if (p == pid) return effective_freezer_state(e.path().parent_path());
      }
    }
    return "";
  }

  // A group is frozen when it or an ancestor is, as in the kernel.
  std::string effective_freezer_state(fs::path group) const {
    for (; group.string().size() > (root_ + "/freezer").size(); group = group.parent_path()) {
      if (get(group.string() + "/freezer.state").rfind("FROZEN", 0) == 0) return "FROZEN";
    }
    return "THAWED";
  }

  void remove_pid_everywhere(pid_t pid) {
    for (const auto& e : fs::recursive_directory_iterator(root_)) {
      if (e.path().filename() != "cgroup.procs") continue;
      std::istringstream in(get(e.path()));
      std::string kept;
      for (pid_t p; in >> p;) {
        if (p != pid) kept += std::to_string(p) + "\n";
      }
      put(e.path(), kept);
    }
  }

  Kind kind_;
  bool has_kill_;
  std::string root_;
};

}  // namespace appvirt::sandbox::testing
