#include "tools/appvirt/demo_user.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common/unique_fd.h"
#include "tools/appvirt/process.h"

namespace appvirt::up {

namespace {

Result<DemoUser> lookup(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{}, *found = nullptr;
  int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return fail("getpwnam_r(" + name + ")", rc);
  if (!found) return fail("no user " + name, ENOENT);
  return DemoUser{name, pw.pw_dir, pw.pw_uid, pw.pw_gid, false};
}

Result<void> run_checked(const std::vector<std::string>& argv, const std::string& input = {}) {
  auto status = run_command(argv, input);
  if (!status) return tl::unexpected(status.error());
  if (*status != 0) return fail(argv[0] + " " + describe_status(*status));
  return {};
}

}  // namespace

Result<DemoUser> ensure_demo_user(const std::string& name, const std::string& password) {
  auto existing = lookup(name);
  if (existing) return existing;
  if (existing.error().err != ENOENT) return existing;
  if (auto r = run_checked({"/usr/sbin/useradd", "--create-home", "--shell", "/bin/bash", name});
      !r) {
    return tl::unexpected(wrap("create demo user", r.error()));
  }
  // chpasswd reads "user:password" on stdin, so the password is never on a command line.
  if (auto r = run_checked({"/usr/sbin/chpasswd"}, name + ":" + password + "\n"); !r) {
    return tl::unexpected(wrap("set demo user password", r.error()));
  }
  auto made = lookup(name);
  if (made) made->created = true;
  return made;
}

namespace {

// Runs in the forked child, already running as the user.
int copy_as_user(int src_fd, const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return 1;
  std::string tmp = dir + "/.appvirt-testpattern.tmp";
  std::string dest = dir + "/appvirt-testpattern";
  ::unlink(tmp.c_str());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0755);
  if (out < 0) return 2;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(src_fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0 || ::write(out, buf, static_cast<size_t>(n)) != n) return 3;
  }
  if (::fchmod(out, 0755) != 0 || ::close(out) != 0) return 4;
  return ::rename(tmp.c_str(), dest.c_str()) == 0 ? 0 : 5;
}

}  // namespace

Result<void> install_demo_app(const DemoUser& user, const std::string& source,
                              const std::string& dir) {
  // Opened as root: the build tree or install prefix may not be readable by the user.
  UniqueFd src(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) return fail_errno("open(" + source + ")");
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork");
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(user.gid, user.gid, user.gid) != 0 ||
        ::setresuid(user.uid, user.uid, user.uid) != 0) {
      ::_exit(10);
    }
    ::_exit(copy_as_user(src.get(), dir));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_errno("waitpid");
  }
  if (status != 0) {
    return fail("copy " + source + " to " + dir + " as " + user.name + ": " +
                describe_status(status) + " (10 = setuid, 1 = mkdir, 2 = open, 3 = copy, 5 = rename)");
  }
  return {};
}

}  // namespace appvirt::up
