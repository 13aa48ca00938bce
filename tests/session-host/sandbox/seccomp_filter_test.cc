// The seccomp filter, loaded for real in a forked child (unprivileged: no_new_privs suffices).
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>

#include "session-host/sandbox/seccomp_filter.h"

namespace appvirt::sandbox {
namespace {

// errno of a failed call, 0 on success.
int err_of(long rc) { return rc < 0 ? errno : 0; }

// Runs in the child after the filter is loaded: "name=errno" lines. Every call is made so
// that, were the filter missing, the kernel would refuse it with another errno (a bad pid, a
// missing path, an invalid flag mix) instead of doing something to the machine.
std::string probe_calls() {
  std::string out;
  auto add = [&](const char* name, int e) {
    out += std::string(name) + "=" + std::to_string(e) + "\n";
  };
  add("unshare_user", err_of(::unshare(CLONE_NEWUSER)));
  add("unshare_ns", err_of(::unshare(CLONE_NEWNS)));
  add("mount", err_of(::mount("none", "/nonexistent-avt", "tmpfs", 0, nullptr)));
  add("ptrace", err_of(::ptrace(PTRACE_ATTACH, 0x3ffffff, nullptr, nullptr)));
  add("setns", err_of(::setns(0, 0)));
  add("bpf", err_of(::syscall(SYS_bpf, 0, nullptr, 0)));
  add("keyctl", err_of(::syscall(SYS_keyctl, 0, 0, 0, 0, 0)));
  add("clone3", err_of(::syscall(SYS_clone3, nullptr, 0)));
  add("clone_newuser",
      err_of(::syscall(SYS_clone, CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0)));
  add("clone_newnet",
      err_of(::syscall(SYS_clone, CLONE_NEWNET | CLONE_THREAD | SIGCHLD, 0, 0, 0, 0)));
  add("tiocsti", err_of(::ioctl(0, TIOCSTI, "x")));
  add("io_uring_setup", err_of(::syscall(SYS_io_uring_setup, 1, nullptr)));
  add("userfaultfd", err_of(::syscall(SYS_userfaultfd, 0)));
  // Ordinary process life keeps working: fork (glibc falls back from clone3 to clone), wait.
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(7);
  int status = 0;
  ::waitpid(pid, &status, 0);
  add("fork_exit", pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  add("getpid_ok", ::getpid() > 0 ? 0 : 1);
  return out;
}

std::map<std::string, int> run_in_filtered_child() {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(2);
    if (!install_seccomp_filter()) ::_exit(3);
    std::string out = probe_calls();
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  std::map<std::string, int> result;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eq = text.find('=', pos), nl = text.find('\n', pos);
    result[text.substr(pos, eq - pos)] = std::stoi(text.substr(eq + 1, nl - eq - 1));
    pos = nl + 1;
  }
  return result;
}

TEST(SeccompFilter, DeniesTheListedCallsAndKeepsProcessesWorking) {
  auto r = run_in_filtered_child();
  EXPECT_EQ(r["unshare_user"], EPERM);
  EXPECT_EQ(r["unshare_ns"], EPERM);
  EXPECT_EQ(r["mount"], EPERM);
  EXPECT_EQ(r["ptrace"], EPERM);
  EXPECT_EQ(r["setns"], EPERM);
  EXPECT_EQ(r["bpf"], EPERM);
  EXPECT_EQ(r["keyctl"], EPERM);
  EXPECT_EQ(r["clone3"], ENOSYS) << "ENOSYS so that glibc falls back to clone";
  EXPECT_EQ(r["clone_newuser"], EPERM);
  EXPECT_EQ(r["clone_newnet"], EPERM);
  EXPECT_EQ(r["tiocsti"], EPERM);
  EXPECT_EQ(r["io_uring_setup"], EPERM);
  EXPECT_EQ(r["userfaultfd"], EPERM);
  EXPECT_EQ(r["fork_exit"], 7);
  EXPECT_EQ(r["getpid_ok"], 0);
}

TEST(SeccompFilter, EveryListedSyscallIsKnownToLibseccomp) {
  auto pfc = seccomp_filter_pfc();
  ASSERT_TRUE(pfc) << pfc.error().str();
  EXPECT_NE(pfc->find("clone3"), std::string::npos);
  EXPECT_GT(seccomp_denials().size(), 40u);
  for (const SeccompDenial& d : seccomp_denials()) {
    EXPECT_FALSE(d.comment.empty()) << d.syscall;
  }
}

}  // namespace
}  // namespace appvirt::sandbox
