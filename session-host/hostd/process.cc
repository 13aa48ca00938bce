#include "session-host/hostd/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace appvirt::hostd {

namespace {

// Everything the child needs, prepared before fork: after fork only async-signal-safe calls.
struct ChildPlan {
  std::vector<char*> argv;
  std::vector<char*> envp;
  int stdio[3];
  std::vector<int> extra;
  std::vector<int> cgroup_fds;
  int report_fd;
  int devnull;
};

[[noreturn]] void child_fail(int report_fd) {
  int e = errno;
  (void)!::write(report_fd, &e, sizeof(e));
  ::_exit(127);
}

[[noreturn]] void run_child(const ChildPlan& p) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);  // EINVAL for KILL/STOP is fine
  if (::setsid() < 0) child_fail(p.report_fd);
  for (int fd : p.cgroup_fds) {
    if (::write(fd, "0", 1) != 1) child_fail(p.report_fd);
  }
  // Move every source fd above the targets first, so dup2 onto 0..n cannot clobber a source.
  int n = 3 + static_cast<int>(p.extra.size());
  int moved[64];
  for (int i = 0; i < n; ++i) {
    int src = i < 3 ? (p.stdio[i] >= 0 ? p.stdio[i] : p.devnull) : p.extra[i - 3];
    moved[i] = ::fcntl(src, F_DUPFD_CLOEXEC, 64 + n);
    if (moved[i] < 0) child_fail(p.report_fd);
  }
  for (int i = 0; i < n; ++i) {
    if (::dup2(moved[i], i) < 0) child_fail(p.report_fd);
  }
  // Everything above the targets closes at exec (the error pipe must stay open until then).
  if (::syscall(SYS_close_range, n, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = n; fd < 4096; ++fd) {
      if (fd != p.report_fd) ::close(fd);
    }
  }
  ::execve(p.argv[0], p.argv.data(), p.envp.data());
  child_fail(p.report_fd);
}

}  // namespace

Result<pid_t> spawn_process(const SpawnOptions& o) {
  if (o.argv.empty()) return fail("spawn: empty argv");
  if (o.extra_fds.size() > 32) return fail("spawn: too many fds");
  ChildPlan plan;
  for (const auto& a : o.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  for (const auto& e : o.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
  plan.envp.push_back(nullptr);
  plan.stdio[0] = o.stdin_fd;
  plan.stdio[1] = o.stdout_fd;
  plan.stdio[2] = o.stderr_fd;
  plan.extra = o.extra_fds;
  plan.cgroup_fds = o.cgroup_procs_fds;
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return fail_errno("open(/dev/null)");
  plan.devnull = devnull.get();
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) return fail_errno("pipe2");
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);
  plan.report_fd = wr.get();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork");
  if (pid == 0) run_child(plan);
  wr.reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(rd.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    // The child exited with 127; the reaper collects it.
    return fail("exec(" + o.argv[0] + ")", child_errno);
  }
  return pid;
}

std::optional<uint64_t> proc_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // comm (field 2) may contain spaces and parentheses: fields resume after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  rest >> state;  // field 3
  if (state == "Z" || state == "X") return std::nullopt;
  std::string field;
  for (int i = 4; i < 22; ++i) rest >> field;
  uint64_t start = 0;
  if (!(rest >> start)) return std::nullopt;
  return start;
}

bool proc_alive(const ProcRef& ref) {
  auto t = proc_start_time(ref.pid);
  return t && *t == ref.start_time;
}

std::optional<ProcRef> proc_ref(pid_t pid) {
  auto t = proc_start_time(pid);
  if (!t) return std::nullopt;
  return ProcRef{pid, *t};
}

Result<UniqueFd> pidfd_open(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return fail_errno("pidfd_open(" + std::to_string(pid) + ")");
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return UniqueFd(fd);
}

Result<void> pidfd_kill(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) < 0) {
    if (errno == ESRCH) return {};
    return fail_errno("pidfd_send_signal(" + std::to_string(sig) + ")");
  }
  return {};
}

}  // namespace appvirt::hostd
