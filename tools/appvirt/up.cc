#include "tools/appvirt/up.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/log.h"
#include "common/unique_fd.h"
#include "tools/appvirt/demo_user.h"
#include "tools/appvirt/readiness.h"
#include "tools/appvirt/supervisor.h"

namespace appvirt::up {

namespace {

using namespace std::chrono_literals;

// What must be on the machine before anything starts (deploy/install-deps.sh provides it).
Result<void> preflight(const UpOptions& opts) {
  if (::geteuid() != 0) return fail("appvirt up must run as root (hostd creates containers, the broker uses PAM)");
  if (::getpwnam("appvirt-rdp") == nullptr) {
    return fail("no service user appvirt-rdp (the RDP endpoints run as it): run deploy/install-deps.sh");
  }
  fs::path pam = fs::path("/etc/pam.d") / opts.pam_service;
  if (::access(pam.c_str(), R_OK) != 0) {
    return fail("no PAM service " + pam.string() + ": run deploy/install-deps.sh");
  }
  return {};
}

// One `appvirt up` per state directory: a second one would rewrite the first one's secret.
Result<UniqueFd> lock_state_dir(const fs::path& state_dir) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) return fail("mkdir(" + state_dir.string() + ")", ec.value());
  ::chmod(state_dir.c_str(), 0700);
  fs::path lock = state_dir / "up.lock";
  UniqueFd fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("open(" + lock.string() + ")");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return fail("another appvirt up runs with state dir " + state_dir.string(), errno);
  }
  return fd;
}

Result<DemoUser> prepare_demo_user(const UpOptions& opts) {
  auto user = ensure_demo_user(opts.demo_user, opts.demo_password);
  if (!user) return user;
  if (user->created) {
    spdlog::info("demo-user-created user={} uid={}", user->name, user->uid);
    std::cout << "Created the Linux user '" << user->name
              << "' (useradd, password set with chpasswd) for the demo.\n";
  } else {
    spdlog::info("demo-user-exists user={} uid={}", user->name, user->uid);
    std::cout << "Using the existing Linux user '" << user->name << "'; its password is unchanged.\n";
  }
  return user;
}

std::string log_tail(const fs::path& file, size_t lines) {
  std::ifstream in(file);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += "  | " + l + "\n";
  return out;
}

struct Step {
  DaemonSpec spec;
  std::function<Result<void>()> ready;
  milliseconds ready_timeout;
};

std::vector<Step> daemon_steps(const UpOptions& opts, const Layout& l) {
  std::string broker_addr = local_address(opts.bind);
  fs::path gateway_log = l.logs / "gateway.log";
  return {
      {{"hostd",
        {opts.bins.hostd, "--config", l.hostd_toml, "--terminate-sessions-on-exit"},
        l.logs / "hostd.log", 60s},
       [sock = l.hostd_socket.string()] { return check_hostd(sock, 1s); }, 30s},
      {{"broker", {opts.bins.broker, "--config", l.broker_toml}, l.logs / "broker.log", 20s},
       [broker_addr, port = opts.http_port, cert = l.broker_cert.string()] {
         return check_broker(broker_addr, port, cert, 2s);
       },
       60s},
      // A broker call in flight delays the gateway's stop by up to broker.logon_timeout_ms.
      {{"gateway", {opts.bins.gateway, "--config", l.gateway_toml}, gateway_log, 40s},
       [log = gateway_log.string(), port = opts.rdp_port] { return check_gateway(log, port); },
       30s},
  };
}

// Starts each daemon and waits for it; false when appvirt up must stop (why is logged).
bool start_all(Supervisor& sup, std::vector<Step> steps, bool& stop_requested) {
  for (auto& step : steps) {
    std::string name = step.spec.name;
    fs::path log = step.spec.log_file;
    if (auto r = sup.start(std::move(step.spec)); !r) {
      APPVIRT_LOG_ERR(r.error(), "daemon-start-failed", "name={}", name);
      return false;
    }
    std::string last_error;
    Event e = sup.wait_ready(step.ready, step.ready_timeout, last_error);
    if (e == Event::kReady) {
      spdlog::info("daemon-ready name={}", name);
      continue;
    }
    if (e == Event::kStopRequested) {
      stop_requested = true;
      return false;
    }
    if (e == Event::kTimeout) {
      spdlog::error("daemon-not-ready name={} timeout_ms={} last_error={}", name,
                    step.ready_timeout.count(), log_quote(last_error));
    }
    std::cerr << "appvirt up: " << name << " did not come up; last lines of " << log << ":\n"
              << log_tail(log, 20);
    return false;
  }
  return true;
}

}  // namespace

int run_up(UpOptions opts) {
  if (auto r = preflight(opts); !r) {
    APPVIRT_LOG_ERR(r.error(), "up-failed", "");
    return 1;
  }
  auto lock = lock_state_dir(opts.state_dir);
  if (!lock) {
    APPVIRT_LOG_ERR(lock.error(), "up-failed", "");
    return 1;
  }
  DemoUser user;
  if (opts.demo) {
    auto u = prepare_demo_user(opts);
    if (!u) {
      APPVIRT_LOG_ERR(u.error(), "up-failed", "user={}", opts.demo_user);
      return 1;
    }
    user = *u;
  }
  Layout layout = make_layout(opts, user.home);
  if (opts.demo) {
    if (auto r = install_demo_app(user, opts.bins.testpattern, layout.demo_app_dir); !r) {
      APPVIRT_LOG_ERR(r.error(), "up-failed", "");
      return 1;
    }
  }
  auto apps = demo_apps(opts, layout);
  if (auto r = write_state_files(opts, layout, apps); !r) {
    APPVIRT_LOG_ERR(r.error(), "up-failed", "state_dir={}", log_quote(opts.state_dir.string()));
    return 1;
  }
  spdlog::info("configs-written state_dir={} apps={}", log_quote(opts.state_dir.string()), apps.size());
  auto sup = Supervisor::create();
  if (!sup) {
    APPVIRT_LOG_ERR(sup.error(), "up-failed", "");
    return 1;
  }
  bool stop_requested = false;
  bool up = start_all(*sup, daemon_steps(opts, layout), stop_requested);
  if (up) {
    std::cout << render_banner(opts, layout, apps, user.created) << std::flush;
    stop_requested = sup->run() == Event::kStopRequested;
  }
  bool clean = sup->stop_all();
  spdlog::info("up-stopped clean={} requested={}", clean, stop_requested);
  return clean && stop_requested ? 0 : 1;
}

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string render_banner(const UpOptions& opts, const Layout& layout,
                          const std::vector<DemoApp>& apps, bool user_created) {
  std::string portal = "https://" + host_port(opts.public_host, opts.http_port);
  std::string gateway = host_port(opts.public_host, opts.rdp_port);
  std::string names, first = apps.empty() ? "xterm" : apps.front().id;
  for (const auto& a : apps) names += (names.empty() ? "" : ", ") + a.id;
  std::ostringstream out;
  out << "\nappvirt is up.\n"
      << "  Portal:   " << portal << "/   (self-signed certificate: "
      << layout.broker_cert.string() << ")\n"
      << "  Gateway:  " << gateway << "   (RDP)\n"
      << "  Apps:     " << names << "\n";
  if (!opts.demo) {
    out << "  Users:    members of group appvirt-users sign in with their Linux password\n";
  } else {
    std::string login = nlohmann::json{{"username", opts.demo_user},
                                       {"password", opts.demo_password}}.dump();
    out << "  Demo credentials: user " << opts.demo_user << ", password " << opts.demo_password
        << (user_created ? "" : "   (existing user: password as given, not changed)") << "\n\n"
        << "Any RDP client, e.g. (signs in at the gateway, opens " << first << "):\n"
        << "  xfreerdp /v:" << gateway << " /u:" << opts.demo_user
        << " /p:" << shell_quote(opts.demo_password) << " /cert:ignore\n\n"
        << "The API (sign in, launch, open the .rdp file):\n"
        << "  B=" << portal << "\n"
        << "  CSRF=$(curl -sk -c jar -H 'Content-Type: application/json' -d " << shell_quote(login)
        << " $B/api/v1/login | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"csrf_token\"])')\n"
        << "  curl -sk -b jar $B/api/v1/apps\n"
        << "  curl -sk -b jar -H \"X-CSRF-Token: $CSRF\" -X POST -o " << first << ".rdp $B/api/v1/apps/"
        << first << "/launch\n"
        << "  xfreerdp " << first << ".rdp /cert:ignore\n";
  }
  out << "\nConfigs and logs: " << opts.state_dir.string() << "/ (logs/hostd.log, logs/broker.log, "
      << "logs/gateway.log)\n"
      << "Stop with Ctrl-C or SIGTERM: sessions are logged off and nothing is left behind.\n";
  return out.str();
}

}  // namespace appvirt::up
