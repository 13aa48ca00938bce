#pragma once
// A recording Sys: every call is appended to calls() as "name arg arg ..." and succeeds unless
// a test made it fail. Nothing touches the machine (open() hands out /dev/null fds).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox::testing {

class FakeSys : public Sys {
 public:
  std::vector<std::string> calls;
  std::map<std::string, int> fail_on;        // call prefix -> errno to fail with
  std::deque<std::string> messages;          // what recv_msg returns, in order
  std::map<std::string, std::string> files;  // what read_file returns
  std::map<std::string, std::string> links;  // what readlink returns
  std::vector<std::string> existing;         // paths exists() reports
  pid_t clone_pid = 4242;

  // Index of the first call starting with prefix, or -1.
  int index_of(const std::string& prefix, size_t from = 0) const {
    for (size_t i = from; i < calls.size(); ++i) {
      if (calls[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
    }
    return -1;
  }
  int last_index_of(const std::string& prefix) const {
    for (size_t i = calls.size(); i-- > 0;) {
      if (calls[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
    }
    return -1;
  }
  int count(const std::string& prefix) const {
    return static_cast<int>(std::count_if(
        calls.begin(), calls.end(), [&](const std::string& c) { return c.rfind(prefix, 0) == 0; }));
  }

  Result<> mount(const std::string& source, const std::string& target, const std::string& fstype,
                 unsigned long flags, const std::string&) override {
    return record("mount " + source + " " + target + " " + fstype + " " + mount_flags_str(flags));
  }
  Result<> umount2(const std::string& target, int) override { return record("umount2 " + target); }
  Result<> pivot_root(const std::string& n, const std::string& o) override {
    return record("pivot_root " + n + " " + o);
  }
  Result<> chdir(const std::string& path) override { return record("chdir " + path); }
  Result<> mkdir(const std::string& path, mode_t) override { return record("mkdir " + path); }
  Result<> rmdir(const std::string& path) override { return record("rmdir " + path); }
  Result<> symlink(const std::string& t, const std::string& l) override {
    return record("symlink " + t + " " + l);
  }
  Result<> chown(const std::string& path, uid_t uid, gid_t gid) override {
    return record("chown " + path + " " + std::to_string(uid) + ":" + std::to_string(gid));
  }
  Result<> chmod(const std::string& path, mode_t) override { return record("chmod " + path); }
  Result<> create_file(const std::string& path, std::string_view, mode_t) override {
    return record("create_file " + path);
  }
  Result<> write_file(const std::string& path, std::string_view data) override {
    return record("write_file " + path + " " + std::string(data));
  }
  Result<std::string> read_file(const std::string& path) override {
    if (auto r = record("read_file " + path); !r) return tl::unexpected(r.error());
    auto it = files.find(path);
    if (it == files.end()) return fail("read_file(" + path + ")", ENOENT);
    return it->second;
  }
  Result<std::vector<std::string>> list_subdirs(const std::string& path) override {
    if (auto r = record("list_subdirs " + path); !r) return tl::unexpected(r.error());
    return std::vector<std::string>{};
  }
  bool exists(const std::string& path) override {
    return std::find(existing.begin(), existing.end(), path) != existing.end();
  }
  Result<std::string> readlink(const std::string& path) override {
    if (auto r = record("readlink " + path); !r) return tl::unexpected(r.error());
    auto it = links.find(path);
    if (it == links.end()) return fail("readlink(" + path + ")", ENOENT);
    return it->second;
  }
  Result<UniqueFd> open(const std::string& path, int, mode_t) override {
    if (auto r = record("open " + path); !r) return tl::unexpected(r.error());
    return UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  }
  Result<pid_t> clone_process(unsigned long flags) override {
    if (auto r = record("clone " + ns_flags_str(flags)); !r) return tl::unexpected(r.error());
    return clone_pid;
  }
  Result<> unshare(int flags) override {
    return record("unshare " + ns_flags_str(static_cast<unsigned long>(flags)));
  }
  Result<> setns(int, int nstype) override {
    return record("setns " + ns_flags_str(static_cast<unsigned long>(nstype)));
  }
  Result<> sethostname(const std::string& name) override { return record("sethostname " + name); }
  Result<> setsid() override { return record("setsid"); }
  Result<> kill(pid_t pid, int sig) override {
    return record("kill " + std::to_string(pid) + " " + std::to_string(sig));
  }
  Result<int> waitpid(pid_t pid, int) override {
    if (auto r = record("waitpid " + std::to_string(pid)); !r) return tl::unexpected(r.error());
    return 0;
  }
  Result<> set_link_up(const std::string& ifname) override { return record("link_up " + ifname); }
  Result<> setgroups(const std::vector<gid_t>& groups) override {
    std::string s = "setgroups";
    for (gid_t g : groups) s += " " + std::to_string(g);
    return record(s);
  }
  Result<> setresgid(gid_t gid) override { return record("setresgid " + std::to_string(gid)); }
  Result<> setresuid(uid_t uid) override { return record("setresuid " + std::to_string(uid)); }
  Result<> drop_bounding_caps() override { return record("drop_bounding_caps"); }
  Result<> clear_ambient_caps() override { return record("clear_ambient_caps"); }
  Result<> clear_caps() override { return record("clear_caps"); }
  Result<> set_no_new_privs() override { return record("no_new_privs"); }
  Result<> load_seccomp() override { return record("seccomp"); }
  Result<> send_msg(int, std::string_view msg) override {
    return record("send_msg " + std::string(msg));
  }
  Result<std::string> recv_msg(int, int) override {
    if (auto r = record("recv_msg"); !r) return tl::unexpected(r.error());
    if (messages.empty()) return fail("recv_msg: nothing queued", ETIMEDOUT);
    std::string m = messages.front();
    messages.pop_front();
    return m;
  }
  void sleep_ms(int) override { calls.push_back("sleep"); }

 private:
  Result<> record(std::string call) {
    calls.push_back(call);
    for (const auto& [prefix, err] : fail_on) {
      if (call.rfind(prefix, 0) == 0) return fail(call, err);
    }
    return {};
  }
};

}  // namespace appvirt::sandbox::testing
