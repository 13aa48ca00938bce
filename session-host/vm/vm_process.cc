#include "session-host/vm/vm_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

extern char** environ;

namespace appvirt::vm {

namespace {

struct SpawnAttrs {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnAttrs() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnAttrs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttrs(const SpawnAttrs&) = delete;
  SpawnAttrs& operator=(const SpawnAttrs&) = delete;
};

}  // namespace

Result<pid_t> spawn_detached(const std::vector<std::string>& argv, const std::string& log_file) {
  if (argv.empty()) return fail("spawn: empty argv");
  SpawnAttrs s;
  // Default dispositions and an empty mask: the daemon may block or ignore signals.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&s.attr, &all);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setflags(&s.attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  const std::string log = log_file.empty() ? "/dev/null" : log_file;
  posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&s.actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&s.actions, 1, 2);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, cargv[0], &s.actions, &s.attr, cargv.data(), environ);
  if (rc != 0) return fail("posix_spawn(" + argv[0] + ")", rc);
  return pid;
}

Result<int> run_command(const std::vector<std::string>& argv, const std::string& log_file,
                        milliseconds timeout) {
  auto pid = spawn_detached(argv, log_file);
  if (!pid) return tl::unexpected(pid.error());
  auto pidfd = open_pidfd(*pid);
  if (!pidfd) {
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    return tl::unexpected(pidfd.error());
  }
  if (!wait_pidfd_readable(pidfd->get(), timeout)) ::kill(*pid, SIGKILL);
  int status = 0;
  pid_t got = -1;
  do {
    got = ::waitpid(*pid, &status, 0);
  } while (got < 0 && errno == EINTR);
  // In a child-subreaper daemon (hostd) the SIGCHLD handler on another thread may reap it
  // first: its status is then unknown here, and the caller checks what the command made.
  if (got < 0 && errno == ECHILD) return kExitUnknown;
  if (got < 0) return fail_errno("waitpid(" + argv[0] + ")");
  if (WIFSIGNALED(status))
    return fail(argv[0] + ": killed by signal " + std::to_string(WTERMSIG(status)));
  return WEXITSTATUS(status);
}

std::optional<unsigned long long> proc_start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // comm (field 2) may hold spaces and parentheses: fields count from the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i < 22 && rest >> field; ++i) {
  }
  unsigned long long start = 0;
  if (!(rest >> start)) return std::nullopt;
  return start;
}

Result<UniqueFd> open_pidfd(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return fail_errno("pidfd_open(" + std::to_string(pid) + ")");
  return UniqueFd(fd);
}

bool wait_pidfd_readable(int pidfd, milliseconds timeout) {
  // Daemons take signals (SIGCHLD...) on any thread: an EINTR must not end the wait early.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    struct pollfd p {
      pidfd, POLLIN, 0
    };
    int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (rc > 0) return true;
    if (rc == 0 || errno != EINTR) return false;
  }
}

bool wait_pidfd_exit(int pidfd, pid_t pid, milliseconds timeout) {
  if (!wait_pidfd_readable(pidfd, timeout)) return false;
  ::waitpid(pid, nullptr, WNOHANG);  // ECHILD for adopted processes: fine
  return true;
}

}  // namespace appvirt::vm
