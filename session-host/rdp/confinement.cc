#include "session-host/rdp/confinement.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/unique_fd.h"

namespace appvirt::rdp {
namespace {

constexpr const char* kPrivateRoot = "/tmp/.appvirt-rdp";

Result<void> make_dir(const std::string& path, mode_t mode, const ServiceUser& owner) {
  if (::mkdir(path.c_str(), mode) != 0) return fail_errno("mkdir(" + path + ")");
  if (::chown(path.c_str(), owner.uid, owner.gid) != 0) return fail_errno("chown(" + path + ")");
  return {};
}

Result<void> write_private_file(const std::string& path, const std::string& content,
                                const ServiceUser& owner) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400));
  if (!fd) return fail_errno("open(" + path + ")");
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("write(" + path + ")");
    done += static_cast<size_t>(n);
  }
  if (::fchown(fd.get(), owner.uid, owner.gid) != 0) return fail_errno("fchown(" + path + ")");
  return {};
}

// The x11 dir is opened before /tmp is covered (it may live under /tmp) and bound through its
// /proc/self/fd link. It is opened after unshare() so that its mount belongs to this namespace,
// which bind mounts require.
Result<void> bind_x11_dir(const std::filesystem::path& x11_dir) {
  UniqueFd dir(::open(x11_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return fail_errno("open(--x11-dir " + x11_dir.string() + ")");
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=8m") !=
      0) {
    return fail_errno("mount(tmpfs, /tmp)");
  }
  if (::mkdir("/tmp/.X11-unix", 0755) != 0) return fail_errno("mkdir(/tmp/.X11-unix)");
  std::string source = "/proc/self/fd/" + std::to_string(dir.get());
  if (::mount(source.c_str(), "/tmp/.X11-unix", nullptr, MS_BIND, nullptr) != 0) {
    return fail_errno("mount(" + x11_dir.string() + ", /tmp/.X11-unix, MS_BIND)");
  }
  if (::mount(nullptr, "/tmp/.X11-unix", nullptr,
              MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return fail_errno("mount(/tmp/.X11-unix, MS_REMOUNT nosuid,nodev,noexec)");
  }
  return {};
}

}  // namespace

Result<ServiceUser> lookup_service_user(const std::string& name) {
  errno = 0;
  struct passwd* pw = ::getpwnam(name.c_str());
  if (!pw) return fail("--run-as " + name + ": no such user", errno);
  ServiceUser user{name, pw->pw_uid, pw->pw_gid, {}};
  if (user.uid == 0 || user.gid == 0) return fail("--run-as " + name + ": must not be root");
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  while (::getgrouplist(name.c_str(), user.gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
  }
  groups.resize(static_cast<size_t>(n));
  for (gid_t g : groups) {
    if (g == 0) return fail("--run-as " + name + ": member of group root");
  }
  user.groups = std::move(groups);
  return user;
}

Result<PrivateView> enter_private_mounts(const std::filesystem::path& x11_dir,
                                         const SecretFiles& files, const ServiceUser& user) {
  // A new network namespace too: Xlib tries the abstract socket @/tmp/.X11-unix/X<n> before the
  // file socket, and in the host's namespace any X server with that display number would win
  // over the session's. The listening sockets were created before and stay in the host's
  // namespace; the process itself can no longer reach any network.
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
    return fail_errno("unshare(CLONE_NEWNS|CLONE_NEWNET)");
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return fail_errno("mount(/, MS_REC|MS_PRIVATE)");
  }
  if (auto ok = bind_x11_dir(x11_dir); !ok) return tl::unexpected(ok.error());
  PrivateView view;
  const std::string root = kPrivateRoot;
  view.config_dir = root + "/config";
  view.xauthority = root + "/Xauthority";
  for (const std::string& dir : {root, view.config_dir, view.config_dir + "/shadow"}) {
    if (auto ok = make_dir(dir, 0700, user); !ok) return tl::unexpected(ok.error());
  }
  // FreeRDP 2.11 reads the TLS pair from <ConfigPath>/shadow/shadow.{crt,key} for every client
  // (TLS accept and the RDP RSA key), after the drop, so they must be readable by the user.
  for (const auto& [path, content] :
       {std::pair<std::string, const std::string*>{view.config_dir + "/shadow/shadow.crt",
                                                   &files.cert_pem},
        {view.config_dir + "/shadow/shadow.key", &files.key_pem},
        {view.xauthority, &files.xauthority}}) {
    if (auto ok = write_private_file(path, *content, user); !ok) return tl::unexpected(ok.error());
  }
  return view;
}

Result<void> drop_privileges(const ServiceUser& user) {
  if (::setgroups(user.groups.size(), user.groups.data()) != 0) return fail_errno("setgroups");
  if (::setresgid(user.gid, user.gid, user.gid) != 0) return fail_errno("setresgid");
  if (::setresuid(user.uid, user.uid, user.uid) != 0) return fail_errno("setresuid");
  uid_t r, e, s;
  if (::getresuid(&r, &e, &s) != 0 || r != user.uid || e != user.uid || s != user.uid) {
    return fail("privilege drop: uids not all " + std::to_string(user.uid));
  }
  if (::setuid(0) == 0 || ::setgid(0) == 0) return fail("privilege drop: root could be regained");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail_errno("prctl(NO_NEW_PRIVS)");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail_errno("prctl(SET_DUMPABLE, 0)");
  return {};
}

}  // namespace appvirt::rdp
