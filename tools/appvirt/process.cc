#include "tools/appvirt/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/unique_fd.h"

namespace appvirt::up {

namespace {

// In the forked child, before exec: only async-signal-safe calls.
[[noreturn]] void exec_child(const SpawnSpec& spec, char* const* argv, int log_fd, int in_fd,
                             pid_t parent) {
  if (spec.own_process_group) ::setpgid(0, 0);
  if (spec.term_on_parent_death) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) ::signal(sig, SIG_DFL);
  if (in_fd >= 0) ::dup2(in_fd, 0);
  if (log_fd >= 0) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
  }
  ::execv(argv[0], argv);
  ::_exit(127);
}

}  // namespace

Result<pid_t> spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) return fail("spawn: empty argv");
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  UniqueFd log_fd;
  if (!spec.log_file.empty()) {
    log_fd.reset(::open(spec.log_file.c_str(),
                        O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!log_fd) return fail_errno("open(" + spec.log_file + ")");
  }
  UniqueFd null_fd;
  int in_fd = spec.stdin_fd;
  if (in_fd < 0) {
    null_fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    in_fd = null_fd.get();
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork(" + spec.argv[0] + ")");
  if (pid == 0) exec_child(spec, argv.data(), log_fd.get(), in_fd, parent);
  // Also from the parent: kill(-pid) must work at once, whatever the child has run so far.
  if (spec.own_process_group) ::setpgid(pid, pid);
  return pid;
}

Result<int> run_command(const std::vector<std::string>& argv, const std::string& stdin_text) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd read_end(p[0]), write_end(p[1]);
  SpawnSpec spec;
  spec.argv = argv;
  spec.stdin_fd = read_end.get();
  auto pid = spawn(spec);
  if (!pid) return tl::unexpected(pid.error());
  read_end.reset();
  // Small inputs only (one chpasswd line): they fit in the pipe buffer, so this cannot block.
  if (!stdin_text.empty() &&
      ::write(write_end.get(), stdin_text.data(), stdin_text.size()) !=
          static_cast<ssize_t>(stdin_text.size())) {
    int err = errno;
    write_end.reset();
    ::waitpid(*pid, nullptr, 0);
    return fail("write to " + argv[0], err);
  }
  write_end.reset();
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_errno("waitpid(" + argv[0] + ")");
  }
  return status;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  }
  return "wait status " + std::to_string(status);
}

}  // namespace appvirt::up
