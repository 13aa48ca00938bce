#include "session-host/sandbox/init.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace appvirt::sandbox {
namespace {

volatile sig_atomic_t g_terminate = 0;

// pid 1 of a namespace ignores every signal it has no handler for, even from the host (except
// SIGKILL/SIGSTOP from an ancestor namespace), so SIGTERM needs a real handler.
void on_signal(int sig) {
  if (sig == SIGTERM) g_terminate = 1;
}

void log_status(pid_t pid, int status) {
  if (WIFEXITED(status)) {
    std::fprintf(stderr, "appvirt-init reaped pid=%d exit=%d\n", pid, WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    std::fprintf(stderr, "appvirt-init reaped pid=%d signal=%d\n", pid, WTERMSIG(status));
  }
}

void reap_all() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    log_status(pid, status);
  }
}

[[noreturn]] void terminate_container() {
  std::fprintf(stderr, "appvirt-init terminating\n");
  // From pid 1, kill(-1) reaches every other process of the namespace.
  ::kill(-1, SIGKILL);
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // ECHILD: all gone
    log_status(pid, status);
  }
  ::_exit(0);
}

}  // namespace

void run_init_loop() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGCHLD, &sa, nullptr);
  // Block both, then sleep in sigsuspend with them open: no wakeup lost between checks.
  sigset_t block, wait_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &block, &wait_mask);
  sigdelset(&wait_mask, SIGTERM);
  sigdelset(&wait_mask, SIGCHLD);
  std::fprintf(stderr, "appvirt-init running\n");
  for (;;) {
    reap_all();
    if (g_terminate) terminate_container();
    ::sigsuspend(&wait_mask);
  }
}

}  // namespace appvirt::sandbox
