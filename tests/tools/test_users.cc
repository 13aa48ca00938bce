#include "tests/tools/test_users.h"

#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace appvirt::testing {

namespace fs = std::filesystem;

namespace {

int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The numeric entries of /proc.
std::vector<fs::path> proc_entries() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") == std::string::npos) out.push_back(e.path());
  }
  return out;
}

pid_t pid_of(const fs::path& entry) { return std::stoi(entry.filename().string()); }

}  // namespace

std::string random_suffix() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

Result<std::string> make_session_test_dir(const std::string& name) {
  if (::geteuid() != 0) return fail(name + " needs root (users, PAM, namespaces, cgroups)");
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return fail_errno("prctl(PR_SET_CHILD_SUBREAPER)");
  std::string dir = "/tmp/" + name + "-XXXXXX";
  if (!::mkdtemp(dir.data())) return fail_errno("mkdtemp(" + dir + ")");
  if (::chmod(dir.c_str(), 0755) != 0) return fail_errno("chmod(" + dir + ")");
  return dir;
}

TempUser::TempUser(const std::string& prefix, const std::vector<std::string>& groups) {
  name_ = prefix + random_suffix();
  password_ = "Pw-" + random_suffix() + "-" + random_suffix() + "!x";
  std::string cmd = "useradd -m -s /bin/sh";
  if (!groups.empty()) {
    cmd += " -G ";
    for (std::size_t i = 0; i < groups.size(); ++i) cmd += (i ? "," : "") + groups[i];
  }
  if (sh(cmd + " " + name_) != 0) return;
  // chpasswd reads "user:password" on stdin: the password never appears on a command line.
  FILE* p = ::popen("chpasswd", "w");
  if (!p) return;
  std::fprintf(p, "%s:%s\n", name_.c_str(), password_.c_str());
  if (::pclose(p) != 0) return;
  passwd* pw = ::getpwnam(name_.c_str());
  if (!pw) return;
  uid_ = pw->pw_uid;
  home_ = pw->pw_dir;
  ok_ = true;
}

TempUser::~TempUser() { sh("userdel -r " + name_); }

TempGroup::TempGroup(const std::string& prefix) {
  name_ = prefix + random_suffix();
  ok_ = sh("groupadd " + name_) == 0;
}

TempGroup::~TempGroup() {
  if (ok_) sh("groupdel " + name_);
}

Result<void> install_testpattern(const TempUser& user, const std::string& source) {
  if (!user.ok()) return fail("install_testpattern: the user " + user.name() + " was not created");
  const std::string app = user.home() + "/appvirt-testpattern";
  std::error_code ec;
  fs::copy_file(source, app, fs::copy_options::overwrite_existing, ec);
  if (ec) return fail("copy " + source + " to " + app + ": " + ec.message());
  struct stat st {};
  if (::stat(user.home().c_str(), &st) != 0) return fail_errno("stat " + user.home());
  if (::chown(app.c_str(), st.st_uid, st.st_gid) != 0) return fail_errno("chown " + app);
  if (::chmod(app.c_str(), 0755) != 0) return fail_errno("chmod " + app);
  return {};
}

std::vector<pid_t> pids_of_uid(uid_t uid) {
  std::vector<pid_t> out;
  for (const auto& e : proc_entries()) {
    struct stat st {};
    if (::stat(e.c_str(), &st) == 0 && st.st_uid == uid) out.push_back(pid_of(e));
  }
  return out;
}

std::vector<pid_t> pids_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& e : proc_entries()) {
    if (slurp(e / "cmdline").find(needle) != std::string::npos) out.push_back(pid_of(e));
  }
  return out;
}

void reap_orphans(const std::set<pid_t>& keep) {
  for (const auto& e : proc_entries()) {
    pid_t pid = pid_of(e);
    if (keep.count(pid)) continue;
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    std::string stat = slurp(e / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 > stat.size()) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (state == "Z" && ppid == ::getpid()) ::waitpid(pid, nullptr, WNOHANG);
  }
}

std::vector<std::string> cgroup_dirs(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  if (fs::is_directory(fs::path("/sys/fs/cgroup") / path, ec)) out.push_back("/sys/fs/cgroup/" + path);
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (fs::is_directory(e.path() / path, ec)) out.push_back((e.path() / path).string());
  }
  return out;
}

void remove_cgroup(const std::string& path) {
  for (const auto& d : cgroup_dirs(path)) {
    // Children first: a cgroup directory is removed with rmdir once it has none.
    std::vector<std::string> tree;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(d, ec)) {
      if (e.is_directory()) tree.push_back(e.path());
    }
    std::sort(tree.rbegin(), tree.rend());
    for (const auto& t : tree) ::rmdir(t.c_str());
    ::rmdir(d.c_str());
  }
}

}  // namespace appvirt::testing
