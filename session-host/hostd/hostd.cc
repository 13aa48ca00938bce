#include "session-host/hostd/hostd.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>

#include "common/log.h"
#include "common/tls_cert.h"
#include "common/unique_fd.h"
#include "session-host/hostd/control_api.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// True when something accepts connections on path (another hostd): its socket must not be
// unlinked from under it.
bool socket_in_use(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof(buf) - 1) < 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

Daemon::Daemon(HostdConfig config, bool terminate_sessions_on_exit)
    : config_(std::move(config)), terminate_on_exit_(terminate_sessions_on_exit),
      stop_signals_(io_) {}

Daemon::~Daemon() = default;

Result<void> Daemon::setup() {
  // Orphans below hostd (container inits, apps once the sandbox helper exits) become its
  // children, so their exit is seen and they are reaped.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) return fail_errno("prctl(PR_SET_CHILD_SUBREAPER)");
  ::signal(SIGPIPE, SIG_IGN);
  auto cg = DriverCgroupControl::detect();
  if (!cg) return tl::unexpected(cg.error());
  cgroups_ = std::move(*cg);
  store_ = std::make_unique<SessionStore>(config_.state_dir);
  if (auto r = store_->init(); !r) return r;
  std::error_code ec;
  fs::create_directories(config_.runtime_dir, ec);
  if (ec) return fail("mkdir(" + config_.runtime_dir.string() + ")", ec.value());
  fs::create_directories(config_.tls_cert.parent_path(), ec);
  fs::create_directories(config_.tls_key.parent_path(), ec);
  if (auto r = ensure_self_signed_cert(config_.tls_cert, config_.tls_key, host_name(), 3650); !r) {
    return tl::unexpected(wrap("rdp certificate", r.error()));
  }
  sandbox_ = std::make_unique<HelperSandboxRunner>(config_.sandbox_path, config_.sandbox_timeout);
  rdp_ = std::make_unique<ProcessRdpLauncher>(config_.rdp_path, config_.rdp_ready_timeout);
  displays_ = std::make_unique<DisplayAllocator>(config_.display_first, config_.display_last);
  reaper_ = std::make_unique<ChildReaper>(io_.get_executor());
  reaper_->start();
  SessionManagerDeps deps{users_, *sandbox_, *cgroups_, *rdp_, clock_, *store_, *displays_,
                          reaper_.get()};
  sessions_ = std::make_unique<SessionManager>(io_.get_executor(), config_, deps);
  if (auto r = sessions_->init_vms(); !r) return r;
  sessions_->adopt();
  return open_control_socket();
}

Result<void> Daemon::open_control_socket() {
  std::string path = config_.control_socket.string();
  std::error_code ec;
  fs::create_directories(config_.control_socket.parent_path(), ec);
  if (socket_in_use(path)) return fail("control socket " + path + " is in use by another hostd");
  ::unlink(path.c_str());
  acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
  boost::system::error_code bec;
  acceptor_->open(asio::local::stream_protocol(), bec);
  // The socket is created 0600 (umask) so no other user can connect even for an instant.
  mode_t old = ::umask(0177);
  if (!bec) acceptor_->bind(asio::local::stream_protocol::endpoint(path), bec);
  ::umask(old);
  if (!bec) acceptor_->listen(asio::socket_base::max_listen_connections, bec);
  if (bec) return fail("control socket " + path + ": " + bec.message());
  ::chmod(path.c_str(), 0600);
  server_ = std::make_unique<http::HttpServer>(make_control_router(*sessions_), http::ServerLimits{});
  server_->start(*acceptor_);
  spdlog::info("hostd listening socket={} cgroup={} sessions={}", path, cgroups_->version(),
               sessions_->active_sessions());
  return {};
}

void Daemon::on_stop_signal(int sig) {
  spdlog::info("hostd stopping signal={} terminate_sessions={}", sig, terminate_on_exit_);
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  ::unlink(config_.control_socket.c_str());
  if (terminate_on_exit_) {
    sessions_->terminate_all("hostd-shutdown");
  } else {
    sessions_->detach();
  }
  if (reaper_) reaper_->stop();
  io_.stop();
}

int Daemon::run() {
  if (auto r = setup(); !r) {
    // Not APPVIRT_LOG_ERR: its parameter named `error` also replaces the `error` in spdlog::error.
    spdlog::error("hostd setup_failed error={}", log_quote(r.error().str()));
    return 1;
  }
  stop_signals_.add(SIGTERM);
  stop_signals_.add(SIGINT);
  stop_signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) on_stop_signal(sig);
  });
  io_.run();
  return 0;
}

}  // namespace appvirt::hostd
