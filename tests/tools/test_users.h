#pragma once
// Throwaway local users and groups for tests that run real sessions (root), the app those
// sessions show, and the clean-up of what real sessions leave behind: the users' processes,
// zombies re-parented to a subreaper test, and cgroups. Every wait is bounded.
#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::testing {

// A local user with a password (useradd -m + chpasswd), removed with its home on destruction.
class TempUser {
 public:
  TempUser(const std::string& prefix, const std::vector<std::string>& groups);
  ~TempUser();
  TempUser(const TempUser&) = delete;
  TempUser& operator=(const TempUser&) = delete;
  const std::string& name() const { return name_; }
  const std::string& password() const { return password_; }
  const std::string& home() const { return home_; }
  uid_t uid() const { return uid_; }
  bool ok() const { return ok_; }

 private:
  std::string name_, password_, home_;
  uid_t uid_ = 0;
  bool ok_ = false;
};

// A group (groupadd), removed on destruction.
class TempGroup {
 public:
  explicit TempGroup(const std::string& prefix);
  ~TempGroup();
  TempGroup(const TempGroup&) = delete;
  TempGroup& operator=(const TempGroup&) = delete;
  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }

 private:
  std::string name_;
  bool ok_ = false;
};

std::string random_suffix();

// The start of a test that runs real sessions: checks for root, makes this process a child
// subreaper (sessions re-parent to it when a daemon stops; reap_orphans reaps them) and creates
// /tmp/<name>-XXXXXX, mode 0755 (service users must reach what is below it). Returns its path.
Result<std::string> make_session_test_dir(const std::string& name);

// Copies the appvirt-testpattern binary at `source` to <home>/appvirt-testpattern, owned by the
// user, mode 0755 (only /usr, some of /etc and the home are visible in a container).
Result<void> install_testpattern(const TempUser& user, const std::string& source);

// Processes whose /proc entry belongs to uid (zombies included: they must be gone too).
std::vector<pid_t> pids_of_uid(uid_t uid);
// Processes whose command line contains needle.
std::vector<pid_t> pids_mentioning(const std::string& needle);
// As a subreaper a test inherits what a stopped daemon leaves; reaps those zombies, except the
// pids in keep (children a Child object still waits for).
void reap_orphans(const std::set<pid_t>& keep = {});
// The directories of cgroup `path` in every mounted hierarchy (v1 controllers or v2).
std::vector<std::string> cgroup_dirs(const std::string& path);
// Removes cgroup `path` with its children in every mounted hierarchy.
void remove_cgroup(const std::string& path);

}  // namespace appvirt::testing
