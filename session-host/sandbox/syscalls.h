#pragma once
// The syscall seam of the sandbox. Every namespace, mount, cgroup-file, identity and seccomp call
// the sandbox makes goes through Sys, so the ordered setup can be unit-tested without root (a
// recording fake) and integration-tested with root (LinuxSys). Each call returns Result<>: on
// failure the Error names the call with its arguments and carries errno.
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::sandbox {

class Sys {
 public:
  virtual ~Sys() = default;

  // Files and mounts.
  virtual Result<> mount(const std::string& source, const std::string& target,
                         const std::string& fstype, unsigned long flags,
                         const std::string& data) = 0;
  virtual Result<> umount2(const std::string& target, int flags) = 0;
  virtual Result<> pivot_root(const std::string& new_root, const std::string& put_old) = 0;
  virtual Result<> chdir(const std::string& path) = 0;
  virtual Result<> mkdir(const std::string& path, mode_t mode) = 0;  // EEXIST is an error
  virtual Result<> rmdir(const std::string& path) = 0;
  virtual Result<> symlink(const std::string& target, const std::string& link_path) = 0;
  virtual Result<> chown(const std::string& path, uid_t uid, gid_t gid) = 0;
  virtual Result<> chmod(const std::string& path, mode_t mode) = 0;
  // Creates (or truncates) a regular file with these contents.
  virtual Result<> create_file(const std::string& path, std::string_view data, mode_t mode) = 0;
  // Writes to an existing file (cgroup control files): no O_CREAT, so a typo is ENOENT.
  virtual Result<> write_file(const std::string& path, std::string_view data) = 0;
  virtual Result<std::string> read_file(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> list_subdirs(const std::string& path) = 0;
  virtual bool exists(const std::string& path) = 0;  // lstat succeeds
  virtual Result<std::string> readlink(const std::string& path) = 0;
  virtual Result<UniqueFd> open(const std::string& path, int flags, mode_t mode = 0) = 0;

  // Processes and namespaces.
  // fork-like clone(2): returns 0 in the child, the child's pid in the parent.
  virtual Result<pid_t> clone_process(unsigned long flags) = 0;
  virtual Result<> unshare(int flags) = 0;
  virtual Result<> setns(int fd, int nstype) = 0;
  virtual Result<> sethostname(const std::string& name) = 0;
  virtual Result<> setsid() = 0;
  virtual Result<> kill(pid_t pid, int sig) = 0;
  virtual Result<int> waitpid(pid_t pid, int options) = 0;  // returns the wait status
  virtual Result<> set_link_up(const std::string& ifname) = 0;

  // Identity and privileges.
  virtual Result<> setgroups(const std::vector<gid_t>& groups) = 0;
  virtual Result<> setresgid(gid_t gid) = 0;  // real, effective and saved
  virtual Result<> setresuid(uid_t uid) = 0;
  virtual Result<> drop_bounding_caps() = 0;  // PR_CAPBSET_DROP for every capability
  virtual Result<> clear_ambient_caps() = 0;
  virtual Result<> clear_caps() = 0;  // capset: effective, permitted, inheritable = 0
  virtual Result<> set_no_new_privs() = 0;
  virtual Result<> load_seccomp() = 0;  // the filter of seccomp_filter.h

  // Sync with the other side of a clone: one short message over a socket.
  virtual Result<> send_msg(int fd, std::string_view msg) = 0;
  virtual Result<std::string> recv_msg(int fd, int timeout_ms) = 0;

  // Waiting, so loops in tests with fakes do not really sleep.
  virtual void sleep_ms(int ms) = 0;
};

// The real thing.
class LinuxSys : public Sys {
 public:
  Result<> mount(const std::string& source, const std::string& target, const std::string& fstype,
                 unsigned long flags, const std::string& data) override;
  Result<> umount2(const std::string& target, int flags) override;
  Result<> pivot_root(const std::string& new_root, const std::string& put_old) override;
  Result<> chdir(const std::string& path) override;
  Result<> mkdir(const std::string& path, mode_t mode) override;
  Result<> rmdir(const std::string& path) override;
  Result<> symlink(const std::string& target, const std::string& link_path) override;
  Result<> chown(const std::string& path, uid_t uid, gid_t gid) override;
  Result<> chmod(const std::string& path, mode_t mode) override;
  Result<> create_file(const std::string& path, std::string_view data, mode_t mode) override;
  Result<> write_file(const std::string& path, std::string_view data) override;
  Result<std::string> read_file(const std::string& path) override;
  Result<std::vector<std::string>> list_subdirs(const std::string& path) override;
  bool exists(const std::string& path) override;
  Result<std::string> readlink(const std::string& path) override;
  Result<UniqueFd> open(const std::string& path, int flags, mode_t mode) override;
  Result<pid_t> clone_process(unsigned long flags) override;
  Result<> unshare(int flags) override;
  Result<> setns(int fd, int nstype) override;
  Result<> sethostname(const std::string& name) override;
  Result<> setsid() override;
  Result<> kill(pid_t pid, int sig) override;
  Result<int> waitpid(pid_t pid, int options) override;
  Result<> set_link_up(const std::string& ifname) override;
  Result<> setgroups(const std::vector<gid_t>& groups) override;
  Result<> setresgid(gid_t gid) override;
  Result<> setresuid(uid_t uid) override;
  Result<> drop_bounding_caps() override;
  Result<> clear_ambient_caps() override;
  Result<> clear_caps() override;
  Result<> set_no_new_privs() override;
  Result<> load_seccomp() override;
  Result<> send_msg(int fd, std::string_view msg) override;
  Result<std::string> recv_msg(int fd, int timeout_ms) override;
  void sleep_ms(int ms) override;
};

// Process-wide LinuxSys instance.
Sys& linux_sys();

// "MS_BIND|MS_REC|MS_RDONLY" for error messages and fake-call records.
std::string mount_flags_str(unsigned long flags);
// "CLONE_NEWPID|CLONE_NEWNS" likewise.
std::string ns_flags_str(unsigned long flags);

// mkdir -p through the seam (EEXIST of a component is fine).
Result<> mkdir_all(Sys& sys, const std::string& path, mode_t mode);

}  // namespace appvirt::sandbox
