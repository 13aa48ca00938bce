#include "tools/appvirt/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "common/log.h"
#include "tools/appvirt/process.h"

namespace appvirt::up {

namespace {

using Clock = std::chrono::steady_clock;

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  return set;
}

milliseconds left(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return d.count() > 0 ? d : milliseconds(0);
}

}  // namespace

Result<Supervisor> Supervisor::create() {
  sigset_t set = handled_signals();
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return fail_errno("sigprocmask");
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return fail_errno("signalfd");
  // The daemons' logs are files; a closed terminal must not kill appvirt up mid-shutdown.
  ::signal(SIGPIPE, SIG_IGN);
  return Supervisor(UniqueFd(fd));
}

Supervisor::~Supervisor() {
  if (sigfd_) stop_all();
}

Result<void> Supervisor::start(DaemonSpec spec) {
  std::error_code ec;
  if (std::filesystem::exists(spec.log_file, ec)) {
    std::filesystem::rename(spec.log_file, spec.log_file.string() + ".1", ec);
  }
  SpawnSpec how;
  how.argv = spec.argv;
  how.log_file = spec.log_file.string();
  how.own_process_group = true;
  how.term_on_parent_death = true;
  auto pid = spawn(how);
  if (!pid) return tl::unexpected(wrap("start " + spec.name, pid.error()));
  spdlog::info("daemon-started name={} pid={} log={}", spec.name, *pid,
               log_quote(spec.log_file.string()));
  daemons_.push_back(Daemon{std::move(spec), *pid, true, 0});
  return {};
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    for (auto& d : daemons_) {
      if (d.pid != pid || !d.running) continue;
      d.running = false;
      d.status = status;
      if (stopping_) {
        spdlog::info("daemon-stopped name={} {}", d.spec.name, log_quote(describe_status(status)));
      } else {
        spdlog::error("daemon-died name={} pid={} {} log={}", d.spec.name, pid,
                      log_quote(describe_status(status)), log_quote(d.spec.log_file.string()));
        if (died_name_.empty()) {
          died_name_ = d.spec.name;
          died_status_ = status;
        }
      }
    }
  }
}

std::optional<Event> Supervisor::poll_signals(milliseconds timeout) {
  pollfd p{sigfd_.get(), POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n <= 0) return std::nullopt;
  signalfd_siginfo info{};
  while (::read(sigfd_.get(), &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo == SIGCHLD) continue;
    if (!stop_requested_) spdlog::info("stop-requested signal={}", ::strsignal(static_cast<int>(info.ssi_signo)));
    stop_requested_ = true;
  }
  // SIGCHLD coalesces, so reap whatever has exited whichever signal woke us.
  reap();
  if (!stopping_ && !died_name_.empty()) return Event::kDaemonDied;
  if (stop_requested_) return Event::kStopRequested;
  return std::nullopt;
}

Event Supervisor::wait_ready(const std::function<Result<void>()>& check, milliseconds timeout,
                             std::string& last_error) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto e = poll_signals(milliseconds(0))) return *e;
    auto r = check();
    if (r) return Event::kReady;
    last_error = r.error().str();
    if (Clock::now() >= deadline) return Event::kTimeout;
    if (auto e = poll_signals(std::min(milliseconds(100), left(deadline)))) return *e;
  }
}

Event Supervisor::run() {
  for (;;) {
    if (auto e = poll_signals(milliseconds(60'000))) return *e;
  }
}

bool Supervisor::wait_exit(Daemon& d, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  reap();
  while (d.running && Clock::now() < deadline) {
    poll_signals(std::min(milliseconds(100), left(deadline)));
    reap();
  }
  return !d.running;
}

bool Supervisor::stop_all() {
  stopping_ = true;
  bool clean = died_name_.empty();
  for (auto it = daemons_.rbegin(); it != daemons_.rend(); ++it) {
    Daemon& d = *it;
    if (d.running) {
      spdlog::info("daemon-stopping name={} pid={}", d.spec.name, d.pid);
      ::kill(d.pid, SIGTERM);
      if (!wait_exit(d, d.spec.stop_timeout)) {
        spdlog::error("daemon-stop-timeout name={} timeout_ms={}; killing its process group",
                      d.spec.name, d.spec.stop_timeout.count());
        ::kill(-d.pid, SIGKILL);
        wait_exit(d, milliseconds(5000));
        clean = false;
      }
    }
    if (d.status != 0 && d.spec.name != died_name_) clean = false;
  }
  daemons_.clear();
  return clean;
}

}  // namespace appvirt::up
