#include "session-host/rdp/endpoint.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "common/log.h"
#include "common/tls_cert.h"
#include "common/unique_fd.h"
#include "session-host/rdp/activity_report.h"
#include "session-host/rdp/confinement.h"
#include "session-host/rdp/cookie_gate.h"
#include "session-host/rdp/listeners.h"
#include "session-host/rdp/shadow_host.h"
#include "session-host/rdp/x_display.h"

namespace appvirt::rdp {
namespace {

// "Cookie: msts=" + secret must fit the Connection Request's one-byte length indicator with
// room for the negotiation request, so the gateway can always rewrite a token into it.
constexpr size_t kMinSecret = 16;
constexpr size_t kMaxSecret = 200;
constexpr auto kShutdownBound = std::chrono::seconds(15);

Result<std::string> read_secret(const std::filesystem::path& path) {
  auto text = read_small_file(path, 4096);
  if (!text) return tl::unexpected(wrap("--secret-file", text.error()));
  std::string secret = std::move(*text);
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < kMinSecret || secret.size() > kMaxSecret) {
    return fail("--secret-file: secret must be 16..200 characters");
  }
  for (char c : secret) {
    if (c < 0x21 || c > 0x7e) return fail("--secret-file: secret must be printable ASCII");
  }
  return secret;
}

Result<SecretFiles> read_files(const RdpOptions& o) {
  SecretFiles files;
  auto cert = read_small_file(o.cert);
  auto key = read_small_file(o.key);
  auto xauth = read_small_file(o.xauthority, 64 * 1024);
  if (!cert) return tl::unexpected(wrap("--cert", cert.error()));
  if (!key) return tl::unexpected(wrap("--key", key.error()));
  if (!xauth) return tl::unexpected(wrap("--xauthority", xauth.error()));
  if (auto ok = check_cert_key_pair(*cert, *key, true); !ok) {
    return tl::unexpected(wrap("--cert/--key", ok.error()));
  }
  files.cert_pem = std::move(*cert);
  files.key_pem = std::move(*key);
  files.xauthority = std::move(*xauth);
  return files;
}

// Blocked before any thread exists, so every FreeRDP thread inherits the mask and only the
// accept loop sees the signals, through the signalfd.
Result<UniqueFd> block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return fail_errno("sigprocmask");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) return fail_errno("signalfd");
  return fd;
}

void write_ready(int fd, uint16_t tcp_port) {
  if (fd < 0) return;
  std::string line = fmt::format("{{\"ready\":true,\"tcp_port\":{}}}\n", tcp_port);
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    spdlog::warn("rdp-ready-fd-write-failed fd={} error={}", fd, log_quote(std::strerror(errno)));
  }
  ::close(fd);
}

// A client thread that never ends must not keep a SIGTERMed endpoint alive forever.
void arm_shutdown_watchdog() {
  std::thread([] {
    std::this_thread::sleep_for(kShutdownBound);
    spdlog::error("rdp-endpoint-shutdown-timeout seconds={}", kShutdownBound.count());
    ::_exit(1);
  }).detach();
}

std::string signal_name(int signal_fd) {
  signalfd_siginfo info{};
  if (::read(signal_fd, &info, sizeof info) != sizeof info) return "unknown";
  const char* name = sigabbrev_np(static_cast<int>(info.ssi_signo));
  return name ? name : "unknown";
}

struct Listening {
  UnixListener unix_socket;
  std::optional<TcpListener> tcp;
  ~Listening() { unix_socket.unlink_socket(); }
};

Result<void> open_listeners(const RdpOptions& o, gid_t group, Listening& out) {
  auto unix_socket = listen_unix(o.listen, group);
  if (!unix_socket) return tl::unexpected(unix_socket.error());
  out.unix_socket = std::move(*unix_socket);
  if (o.listen_tcp) {
    auto tcp = listen_tcp(*o.listen_tcp);
    if (!tcp) return tl::unexpected(tcp.error());
    out.tcp = std::move(*tcp);
  }
  return {};
}

// Everything that needs root, in order; returns the FreeRDP config dir of the private view.
Result<std::string> confine(const RdpOptions& o, const ServiceUser& user, SecretFiles& files) {
  auto view = enter_private_mounts(o.x11_dir, files, user);
  OPENSSL_cleanse(files.key_pem.data(), files.key_pem.size());
  if (!view) return tl::unexpected(view.error());
  if (::setenv("DISPLAY", o.display.c_str(), 1) != 0 ||
      ::setenv("XAUTHORITY", view->xauthority.c_str(), 1) != 0) {
    return fail_errno("setenv(DISPLAY/XAUTHORITY)");
  }
  if (auto ok = drop_privileges(user); !ok) return tl::unexpected(ok.error());
  return view->config_dir;
}

Result<void> serve(const RdpOptions& o) {
  if (::geteuid() != 0) return fail("appvirt-rdp must start as root (it drops to --run-as)");
  if (o.ready_fd >= 0 && ::fcntl(o.ready_fd, F_GETFD) < 0) return fail_errno("--ready-fd");
  auto user = lookup_service_user(o.run_as);
  if (!user) return tl::unexpected(user.error());
  auto secret = read_secret(o.secret_file);
  if (!secret) return tl::unexpected(secret.error());
  auto files = read_files(o);
  if (!files) return tl::unexpected(files.error());
  auto stop = block_stop_signals();
  if (!stop) return tl::unexpected(stop.error());
  Listening listening;
  if (auto ok = open_listeners(o, user->gid, listening); !ok) return ok;
  std::unique_ptr<ActivityReport> activity;
  if (!o.status_file.empty()) {
    auto opened = ActivityReport::open(o.status_file);
    if (!opened) return tl::unexpected(opened.error());
    activity = std::move(*opened);
  }
  auto config_dir = confine(o, *user, *files);
  if (!config_dir) return tl::unexpected(config_dir.error());

  auto x_hold = XDisplayHold::open();
  if (!x_hold) return tl::unexpected(x_hold.error());
  auto host = ShadowHost::start(
      {*config_dir, *secret, activity.get(),
       o.capture == "stock" ? CaptureMode::stock : CaptureMode::damage,
       o.codecs == "stock" ? CodecPolicy::stock : CodecPolicy::lossless});
  if (!host) return tl::unexpected(host.error());
  std::vector<int> fds = {listening.unix_socket.fd.get()};
  if (listening.tcp) fds.push_back(listening.tcp->fd.get());
  CookieGate gate(fds, *secret,
                  [h = host->get()](UniqueFd fd, const PeerAddress& peer) {
                    h->hand_off(std::move(fd), peer);
                  },
                  CookieGate::Limits{});
  const uint16_t tcp_port = listening.tcp ? listening.tcp->port : 0;
  spdlog::info("rdp-endpoint-ready display={} socket={} tcp_port={} user={}", o.display,
               log_quote(o.listen.string()), tcp_port, o.run_as);
  write_ready(o.ready_fd, tcp_port);
  auto ran = gate.run(stop->get());
  spdlog::info("rdp-endpoint-stopping signal={}", signal_name(stop->get()));
  arm_shutdown_watchdog();
  (*host)->stop();
  return ran;
}

}  // namespace

int run_endpoint(const RdpOptions& options) {
  init_logging("appvirt-rdp", options.log_level);
  // FreeRDP's WLog writes to stdout; line buffering keeps its lines in order with ours.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto served = serve(options);
  if (!served) {
    // (not APPVIRT_LOG_ERR: its parameter named `error` also rewrites the spdlog::error inside)
    spdlog::error("rdp-endpoint-failed error={}", log_quote(served.error().str()));
    return 1;
  }
  spdlog::info("rdp-endpoint-stopped");
  return 0;
}

}  // namespace appvirt::rdp
