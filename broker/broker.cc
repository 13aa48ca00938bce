#include "broker/broker.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <fstream>

#include "broker/static_files.h"
#include "common/log.h"
#include "common/tls_cert.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof(buf) - 1) < 0 || !buf[0]) return "localhost";
  return buf;
}

// A secret file: whitespace around the value is ignored; short secrets are refused.
Result<std::string> read_secret(const fs::path& path) {
  if (path.empty()) return std::string();
  auto text = read_small_file(path, 4096);
  if (!text) return tl::unexpected(text.error());
  std::string s = *text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  s.erase(0, start);
  if (s.size() < 32) return fail("secret file " + path.string() + ": needs at least 32 characters");
  return s;
}

Result<void> write_port_file(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out) return fail_errno("write(" + tmp + ")");
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) return fail_errno("rename(" + tmp + ")");
  return {};
}

}  // namespace

Broker::Broker(BrokerConfig config, std::string port_file)
    : config_(std::move(config)),
      port_file_(std::move(port_file)),
      io_(std::make_unique<asio::io_context>()),
      signals_(std::make_unique<asio::signal_set>(*io_)),
      tls_(asio::ssl::context::tls_server) {}

Broker::~Broker() {
  // PAM calls in flight finish first: their completions are posted to the io_context.
  if (auth_pool_) auth_pool_->join();
  server_.reset();
  signals_.reset();
  if (service_) service_->shutdown();
  io_.reset();
}

Result<void> Broker::setup_tls() {
  fs::path cert = config_.listen.tls_cert, key = config_.listen.tls_key;
  if (cert.empty()) {
    // No configured certificate: a self-signed one, generated once and kept.
    cert = config_.state_dir / "tls" / "broker.crt";
    key = config_.state_dir / "tls" / "broker.key";
    std::error_code ec;
    fs::create_directories(cert.parent_path(), ec);
    if (ec) return fail("mkdir(" + cert.parent_path().string() + ")", ec.value());
    if (auto r = ensure_self_signed_cert(cert, key, host_name(), 825); !r) {
      return tl::unexpected(wrap("broker certificate", r.error()));
    }
  }
  return configure_server_tls(tls_, cert, key);
}

Result<ApiSecrets> Broker::load_secrets() {
  ApiSecrets s;
  auto gw = read_secret(config_.gateway_secret_file);
  if (!gw) return tl::unexpected(gw.error());
  auto host = read_secret(config_.host_secret_file);
  if (!host) return tl::unexpected(host.error());
  s.gateway = std::move(*gw);
  s.host = std::move(*host);
  if (!s.gateway.empty() && s.gateway == s.host) {
    return fail("internal.gateway_secret_file and internal.host_secret_file hold the same secret");
  }
  return s;
}

Result<void> Broker::setup() {
  std::error_code ec;
  fs::create_directories(config_.state_dir, ec);
  if (ec) return fail("mkdir(" + config_.state_dir.string() + ")", ec.value());
  ::chmod(config_.state_dir.c_str(), 0700);
  auto store = SqliteStore::open(config_.database.string());
  if (!store) return tl::unexpected(store.error());
  store_ = std::move(*store);
  // The store holds the policy versions; policy_file only seeds them (docs/policies.md).
  auto policies = PolicyStore::open(*store_, config_.policy_file, [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  });
  if (!policies) return tl::unexpected(policies.error());
  policy_store_ = std::move(*policies);
  if (auto r = setup_tls(); !r) return r;
  auto secrets = load_secrets();
  if (!secrets) return tl::unexpected(secrets.error());
  build_service(std::move(*secrets));
  return start_server();
}

void Broker::build_service(ApiSecrets secrets) {
  auth_pool_ = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(config_.auth_threads));
  auth_ = std::make_unique<PamAuthenticator>(config_.pam_service);
  users_ = std::make_unique<NssUserDirectory>();
  host_client_ = std::make_unique<UnixHostClient>(config_.hostd_timeout, std::chrono::seconds(5));
  BrokerDeps deps{*store_, *auth_, *users_, *host_client_, *auth_pool_, [] {
                    return std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                        .count();
                  }, policy_store_.get()};
  service_ = std::make_unique<BrokerService>(io_->get_executor(), config_, Catalog(config_.apps),
                                             std::move(deps));
  web_ = std::make_unique<WebSessionTable>(config_.web_session_ttl, config_.web_session_idle, 100'000);
  api_ = std::make_unique<BrokerApi>(*service_, *web_, std::move(secrets));
}

Result<void> Broker::start_server() {
  http::ServerLimits limits;
  limits.max_body_bytes = config_.listen.max_body_bytes;
  limits.max_header_bytes = config_.listen.max_header_bytes;
  limits.header_timeout = config_.listen.header_timeout;
  limits.body_timeout = config_.listen.body_timeout;
  limits.max_connections = config_.listen.max_connections;
  auto files = std::make_shared<const StaticFiles>(config_.web_root);
  server_ = std::make_unique<TlsServer>(
      *io_, tls_,
      [api = api_.get(), files](std::string peer) {
        http::Router r = api->router_for(std::move(peer));
        add_static_routes(r, files);  // last: the API's routes win
        return r;
      },
      limits, config_.listen.handshake_timeout, api::decorate);
  auto port = server_->listen(config_.listen.address, config_.listen.port);
  if (!port) return tl::unexpected(port.error());
  server_->start();
  spdlog::info("broker listening address={} port={} hosts={} apps={} database={}",
               config_.listen.address, *port, config_.hosts.size(), config_.apps.size(),
               log_quote(config_.database.string()));
  if (!port_file_.empty()) {
    if (auto r = write_port_file(port_file_, *port); !r) return r;
  }
  return {};
}

void Broker::on_stop(int sig) {
  spdlog::info("broker stopping signal={}", sig);
  if (server_) server_->stop();
  if (service_) service_->stop();
  io_->stop();
}

int Broker::run() {
  ::signal(SIGPIPE, SIG_IGN);
  if (auto r = setup(); !r) {
    spdlog::error("broker setup_failed error={}", log_quote(r.error().str()));
    return 1;
  }
  if (::geteuid() != 0) {
    spdlog::warn("broker not running as root: pam_unix can then only check passwords when the "
                 "broker may read /etc/shadow (group shadow)");
  }
  signals_->add(SIGTERM);
  signals_->add(SIGINT);
  signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) on_stop(sig);
  });
  // Reconcile with the hosts first (probes + session lists), then keep polling.
  asio::co_spawn(*io_, service_->poll_loop(), asio::detached);
  io_->run();
  auth_pool_->join();
  spdlog::info("broker stopped");
  return 0;
}

}  // namespace appvirt::broker
