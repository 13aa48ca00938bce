#include "session-host/sandbox/syscalls.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "session-host/sandbox/seccomp_filter.h"

namespace appvirt::sandbox {
namespace {

Result<> check(int rc, std::string call) {
  if (rc < 0) return fail_errno(std::move(call));
  return {};
}

std::string join_flags(unsigned long flags,
                       std::initializer_list<std::pair<unsigned long, const char*>> names) {
  std::string out;
  for (const auto& [bit, name] : names) {
    if ((flags & bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += name;
    flags &= ~bit;
  }
  if (flags != 0) {
    if (!out.empty()) out += '|';
    out += "0x" + [&] {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%lx", flags);
      return std::string(buf);
    }();
  }
  return out.empty() ? "0" : out;
}

Result<> write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("write(" + what + ")");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

std::string mount_flags_str(unsigned long flags) {
  return join_flags(flags, {{MS_RDONLY, "MS_RDONLY"},
                            {MS_NOSUID, "MS_NOSUID"},
                            {MS_NODEV, "MS_NODEV"},
                            {MS_NOEXEC, "MS_NOEXEC"},
                            {MS_REMOUNT, "MS_REMOUNT"},
                            {MS_BIND, "MS_BIND"},
                            {MS_REC, "MS_REC"},
                            {MS_PRIVATE, "MS_PRIVATE"},
                            {MS_SLAVE, "MS_SLAVE"},
                            {MS_STRICTATIME, "MS_STRICTATIME"}});
}

std::string ns_flags_str(unsigned long flags) {
  return join_flags(flags, {{CLONE_NEWPID, "CLONE_NEWPID"},
                            {CLONE_NEWNS, "CLONE_NEWNS"},
                            {CLONE_NEWIPC, "CLONE_NEWIPC"},
                            {CLONE_NEWUTS, "CLONE_NEWUTS"},
                            {CLONE_NEWNET, "CLONE_NEWNET"},
                            {CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
                            {CLONE_NEWUSER, "CLONE_NEWUSER"},
                            {CLONE_NEWTIME, "CLONE_NEWTIME"}});
}

Result<> mkdir_all(Sys& sys, const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (sys.exists(prefix)) continue;
    auto r = sys.mkdir(prefix, mode);
    if (!r && r.error().err != EEXIST) return r;
  }
  return {};
}

Result<> LinuxSys::mount(const std::string& source, const std::string& target,
                         const std::string& fstype, unsigned long flags, const std::string& data) {
  int rc = ::mount(source.empty() ? nullptr : source.c_str(), target.c_str(),
                   fstype.empty() ? nullptr : fstype.c_str(), flags,
                   data.empty() ? nullptr : data.c_str());
  return check(rc, "mount(" + source + ", " + target + ", " + fstype + ", " +
                       mount_flags_str(flags) + ", " + data + ")");
}

Result<> LinuxSys::umount2(const std::string& target, int flags) {
  return check(::umount2(target.c_str(), flags),
               "umount2(" + target + ", " + std::to_string(flags) + ")");
}

Result<> LinuxSys::pivot_root(const std::string& new_root, const std::string& put_old) {
  return check(static_cast<int>(::syscall(SYS_pivot_root, new_root.c_str(), put_old.c_str())),
               "pivot_root(" + new_root + ", " + put_old + ")");
}

Result<> LinuxSys::chdir(const std::string& path) {
  return check(::chdir(path.c_str()), "chdir(" + path + ")");
}

Result<> LinuxSys::mkdir(const std::string& path, mode_t mode) {
  return check(::mkdir(path.c_str(), mode), "mkdir(" + path + ")");
}

Result<> LinuxSys::rmdir(const std::string& path) {
  return check(::rmdir(path.c_str()), "rmdir(" + path + ")");
}

Result<> LinuxSys::symlink(const std::string& target, const std::string& link_path) {
  return check(::symlink(target.c_str(), link_path.c_str()),
               "symlink(" + target + ", " + link_path + ")");
}

Result<> LinuxSys::chown(const std::string& path, uid_t uid, gid_t gid) {
  return check(::lchown(path.c_str(), uid, gid),
               "chown(" + path + ", " + std::to_string(uid) + ":" + std::to_string(gid) + ")");
}

Result<> LinuxSys::chmod(const std::string& path, mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%o", mode);
  return check(::chmod(path.c_str(), mode), "chmod(" + path + ", " + buf + ")");
}

Result<> LinuxSys::create_file(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return fail_errno("open(" + path + ", O_CREAT)");
  if (::fchmod(fd.get(), mode) < 0) return fail_errno("fchmod(" + path + ")");
  return write_all(fd.get(), data, path);
}

Result<> LinuxSys::write_file(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return fail_errno("open(" + path + ", O_WRONLY)");
  // cgroup files take one value per write(); a short write would split it, so write once.
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) return fail_errno("write(" + path + ", \"" + std::string(data) + "\")");
  if (static_cast<size_t>(n) != data.size()) return fail("short write(" + path + ")", EIO);
  return {};
}

Result<std::string> LinuxSys::read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open(" + path + ", O_RDONLY)");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read(" + path + ")");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::vector<std::string>> LinuxSys::list_subdirs(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return fail_errno("opendir(" + path + ")");
  std::vector<std::string> out;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::lstat((path + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.push_back(std::move(name));
  }
  ::closedir(dir);
  return out;
}

bool LinuxSys::exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Result<std::string> LinuxSys::readlink(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return fail_errno("readlink(" + path + ")");
  return std::string(buf, static_cast<size_t>(n));
}

Result<UniqueFd> LinuxSys::open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return fail_errno("open(" + path + ")");
  return UniqueFd(fd);
}

Result<pid_t> LinuxSys::clone_process(unsigned long flags) {
  // Raw clone with fork semantics (no new stack): the helper is single threaded, so the child
  // is a plain copy and can go on running the child-side steps in this address space.
  long pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return fail_errno("clone(" + ns_flags_str(flags) + ")");
  return static_cast<pid_t>(pid);
}

Result<> LinuxSys::unshare(int flags) {
  return check(::unshare(flags), "unshare(" + ns_flags_str(static_cast<unsigned>(flags)) + ")");
}

Result<> LinuxSys::setns(int fd, int nstype) {
  return check(::setns(fd, nstype), "setns(" + ns_flags_str(static_cast<unsigned>(nstype)) + ")");
}

Result<> LinuxSys::sethostname(const std::string& name) {
  return check(::sethostname(name.data(), name.size()), "sethostname(" + name + ")");
}

Result<> LinuxSys::setsid() { return check(::setsid() < 0 ? -1 : 0, "setsid()"); }

Result<> LinuxSys::kill(pid_t pid, int sig) {
  return check(::kill(pid, sig), "kill(" + std::to_string(pid) + ", " + std::to_string(sig) + ")");
}

Result<int> LinuxSys::waitpid(pid_t pid, int options) {
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid, &status, options);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return fail_errno("waitpid(" + std::to_string(pid) + ")");
  if (rc == 0) return fail("waitpid(" + std::to_string(pid) + "): still running", EAGAIN);
  return status;
}

Result<> LinuxSys::set_link_up(const std::string& ifname) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return fail_errno("socket(AF_INET, SOCK_DGRAM)");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) < 0)
    return fail_errno("SIOCGIFFLAGS(" + ifname + ")");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) < 0)
    return fail_errno("SIOCSIFFLAGS(" + ifname + ")");
  return {};
}

Result<> LinuxSys::setgroups(const std::vector<gid_t>& groups) {
  return check(::setgroups(groups.size(), groups.data()),
               "setgroups(" + std::to_string(groups.size()) + " groups)");
}

Result<> LinuxSys::setresgid(gid_t gid) {
  return check(::setresgid(gid, gid, gid), "setresgid(" + std::to_string(gid) + ")");
}

Result<> LinuxSys::setresuid(uid_t uid) {
  return check(::setresuid(uid, uid, uid), "setresuid(" + std::to_string(uid) + ")");
}

Result<> LinuxSys::drop_bounding_caps() {
  int last = CAP_LAST_CAP;
  if (auto text = read_file("/proc/sys/kernel/cap_last_cap")) last = std::atoi(text->c_str());
  for (int cap = 0; cap <= last; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
      return fail_errno("prctl(PR_CAPBSET_DROP, " + std::to_string(cap) + ")");
    }
  }
  return {};
}

Result<> LinuxSys::clear_ambient_caps() {
  return check(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
               "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
}

Result<> LinuxSys::clear_caps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  return check(static_cast<int>(::syscall(SYS_capset, &header, data)), "capset(0)");
}

Result<> LinuxSys::set_no_new_privs() {
  return check(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
}

Result<> LinuxSys::load_seccomp() { return install_seccomp_filter(); }

Result<> LinuxSys::send_msg(int fd, std::string_view msg) {
  ssize_t n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
  if (n < 0) return fail_errno("send(sync socket)");
  return {};
}

Result<std::string> LinuxSys::recv_msg(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return fail_errno("poll(sync socket)");
  if (rc == 0)
    return fail("timed out after " + std::to_string(timeout_ms) + " ms on sync socket", ETIMEDOUT);
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0) return fail_errno("recv(sync socket)");
  if (n == 0) return fail("sync socket closed by the other side", EPIPE);
  return std::string(buf, static_cast<size_t>(n));
}

void LinuxSys::sleep_ms(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

Sys& linux_sys() {
  static LinuxSys sys;
  return sys;
}

}  // namespace appvirt::sandbox
