#include "gateway/logon_front.h"

#include <arpa/inet.h>
#include <freerdp/error.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>
#include <freerdp/session.h>
#include <freerdp/settings.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <winpr/synch.h>
#include <winpr/wlog.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>

#include "common/log.h"
#include "common/tls_cert.h"

namespace appvirt::gateway {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct LogonFront::Session {
  ClientInfo client;
  UniqueFd fd;
  std::function<void()> done;
  freerdp_peer* peer = nullptr;
  // Filled by PostConnect from the Client Info PDU.
  bool credentials_ready = false;
  bool handled = false;
  std::string username, domain, password, app;
  bool remote_app = false;
  // For the log line.
  std::string outcome, reason, session_id;
};

namespace {

// After the redirect the client disconnects by itself; after a refusal it got the disconnect
// sequence. Either way do not wait long for it.
constexpr auto kRedirectGrace = 10s;
constexpr auto kRefusalGrace = 3s;

void wipe(std::string& s) {
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

std::string setting(rdpSettings* settings, size_t id) {
  const char* v = freerdp_settings_get_string(settings, id);
  return v ? std::string(v) : std::string();
}

bool is_loopback(const std::string& address) {
  in6_addr a6{};
  in_addr a4{};
  if (::inet_pton(AF_INET, address.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (::inet_pton(AF_INET6, address.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

// Runs when the connection is fully up: Client Info (credentials) has been received.
BOOL on_post_connect(freerdp_peer* peer) {
  auto* s = static_cast<LogonFront::Session*>(peer->ContextExtra);
  rdpSettings* settings = peer->settings;
  s->username = setting(settings, FreeRDP_Username);
  s->domain = setting(settings, FreeRDP_Domain);
  s->password = setting(settings, FreeRDP_Password);
  if (char* p = settings->Password) OPENSSL_cleanse(p, std::strlen(p));
  // /shell: (AlternateShell) names the app; RemoteApp programs travel in the RAIL channel,
  // which the front never opens, so RemoteApplicationProgram is read only for completeness.
  s->app = setting(settings, FreeRDP_AlternateShell);
  if (s->app.empty()) s->app = setting(settings, FreeRDP_RemoteApplicationProgram);
  s->remote_app = freerdp_settings_get_bool(settings, FreeRDP_RemoteApplicationMode);
  s->credentials_ready = true;
  return TRUE;
}

BOOL on_activate(freerdp_peer*) { return TRUE; }

asio::awaitable<void> run_logon(BrokerClient* broker, LogonRequest request,
                                std::shared_ptr<std::promise<BrokerResult<LogonReply>>> slot) {
  try {
    auto reply = co_await broker->logon(std::move(request));
    slot->set_value(std::move(reply));
  } catch (const std::exception& e) {
    slot->set_value(tl::unexpected(BrokerError{0, std::string("broker call failed: ") + e.what(), {}}));
  }
}

Result<std::pair<std::string, std::string>> load_or_make_cert(const LogonConfig& config) {
  bool have_cert = fs::exists(config.cert_file), have_key = fs::exists(config.key_file);
  if (have_cert != have_key) {
    return fail("logon.cert_file and logon.key_file: only one of " + config.cert_file.string() +
                " and " + config.key_file.string() + " exists");
  }
  if (!have_cert) {
    std::error_code ec;
    fs::create_directories(config.cert_file.parent_path(), ec);
    fs::create_directories(config.key_file.parent_path(), ec);
    auto made = ensure_self_signed_cert(config.cert_file, config.key_file, config.cert_common_name, 825);
    if (!made) return tl::unexpected(made.error());
    spdlog::info("gateway-logon-cert-generated cert={} common_name={}", config.cert_file.string(),
                 log_quote(config.cert_common_name));
  }
  auto cert = read_small_file(config.cert_file);
  if (!cert) return tl::unexpected(cert.error());
  auto key = read_small_file(config.key_file);
  if (!key) return tl::unexpected(key.error());
  // FreeRDP 2.11 servers need an RSA key.
  if (auto ok = check_cert_key_pair(*cert, *key, true); !ok) {
    return fail("logon certificate " + config.cert_file.string() + ": " + ok.error().message);
  }
  return std::make_pair(std::move(*cert), std::move(*key));
}

}  // namespace

LogonRefusal refusal_for(const BrokerError& error) {
  switch (error.status) {
    case 401:
      return {LOGON_FAILED_BAD_PASSWORD, ERRINFO_SERVER_DENIED_CONNECTION};
    case 403:
      return {LOGON_FAILED_OTHER, ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES};
    case 429:
      return {LOGON_FAILED_OTHER, ERRINFO_SERVER_DENIED_CONNECTION};
    default:
      return {LOGON_FAILED_OTHER, ERRINFO_CB_DESTINATION_NOT_FOUND};
  }
}

Result<std::unique_ptr<LogonFront>> LogonFront::create(asio::any_io_executor io,
                                                       BrokerClient& broker,
                                                       const LogonConfig& config,
                                                       std::chrono::milliseconds broker_timeout) {
  auto pair = load_or_make_cert(config);
  if (!pair) return tl::unexpected(pair.error());
  // FreeRDP logs to stdout on its own; keep it to errors unless WLOG_LEVEL asks for more.
  if (!std::getenv("WLOG_LEVEL")) WLog_SetLogLevel(WLog_GetRoot(), WLOG_ERROR);
  return std::unique_ptr<LogonFront>(new LogonFront(std::move(io), broker, config, broker_timeout,
                                                    std::move(pair->first),
                                                    std::move(pair->second)));
}

LogonFront::LogonFront(asio::any_io_executor io, BrokerClient& broker, LogonConfig config,
                       std::chrono::milliseconds broker_timeout, std::string cert_pem,
                       std::string key_pem)
    : io_(std::move(io)),
      broker_(broker),
      config_(std::move(config)),
      broker_timeout_(broker_timeout),
      cert_pem_(std::move(cert_pem)),
      key_pem_(std::move(key_pem)) {}

LogonFront::~LogonFront() {
  stop();
  join_all();
  OPENSSL_cleanse(key_pem_.data(), key_pem_.size());
}

bool LogonFront::hand_off(UniqueFd& fd, const ClientInfo& client, std::function<void()> done) {
  std::lock_guard lock(mu_);
  reap_finished();
  if (stopping_ || workers_.size() >= config_.max_sessions) return false;
  auto session = std::make_shared<Session>();
  session->client = client;
  session->fd = std::move(fd);
  session->done = std::move(done);
  auto finished = std::make_shared<std::atomic<bool>>(false);
  try {
    std::thread thread([this, session, finished] {
      run(*session);
      log_end(*session);
      session->done();
      *finished = true;
    });
    workers_.push_back(Worker{std::move(thread), finished});
  } catch (const std::system_error&) {
    fd = std::move(session->fd);  // no thread: the caller closes it
    return false;
  }
  return true;
}

void LogonFront::stop() { stopping_ = true; }

void LogonFront::join_all() {
  std::list<Worker> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (Worker& w : workers) {
    if (w.thread.joinable()) w.thread.join();
  }
}

size_t LogonFront::running() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const Worker& w : workers_) n += *w.finished ? 0 : 1;
  return n;
}

void LogonFront::reap_finished() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (*it->finished) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void LogonFront::run(Session& s) {
  struct PeerHolder {
    freerdp_peer* peer = nullptr;
    bool context = false;
    ~PeerHolder() {
      if (!peer) return;
      if (context) {
        peer->Disconnect(peer);
        freerdp_peer_context_free(peer);  // closes the socket (the transport owns it)
      }
      freerdp_peer_free(peer);
    }
  } holder;
  holder.peer = freerdp_peer_new(s.fd.get());
  freerdp_peer* peer = holder.peer;
  if (!peer) {
    s.reason = "freerdp_peer_new failed";
    return;
  }
  peer->ContextSize = sizeof(rdpContext);
  peer->ContextExtra = &s;
  peer->local = is_loopback(s.client.address);
  std::strncpy(peer->hostname, s.client.address.c_str(), sizeof(peer->hostname) - 1);
  if (!freerdp_peer_context_new(peer)) {
    s.reason = "freerdp_peer_context_new failed";
    return;
  }
  holder.context = true;
  s.fd.release();
  s.peer = peer;
  rdpSettings* settings = peer->settings;
  if (!freerdp_settings_set_string(settings, FreeRDP_CertificateContent, cert_pem_.c_str()) ||
      !freerdp_settings_set_string(settings, FreeRDP_PrivateKeyContent, key_pem_.c_str())) {
    s.reason = "cannot set the TLS certificate";
    return;
  }
  freerdp_settings_set_bool(settings, FreeRDP_RdpSecurity, FALSE);
  freerdp_settings_set_bool(settings, FreeRDP_TlsSecurity, TRUE);
  freerdp_settings_set_bool(settings, FreeRDP_NlaSecurity, FALSE);
  freerdp_settings_set_uint32(settings, FreeRDP_ColorDepth, 32);
  peer->PostConnect = on_post_connect;
  peer->Activate = on_activate;
  if (!peer->Initialize(peer)) {
    s.reason = "peer initialisation failed";
    return;
  }
  pump(s);
}

void LogonFront::pump(Session& s) {
  freerdp_peer* peer = s.peer;
  const auto deadline = s.client.accepted + config_.timeout;
  std::optional<Clock::time_point> leave_at;
  for (;;) {
    HANDLE handles[MAXIMUM_WAIT_OBJECTS];
    DWORD count = peer->GetEventHandles(peer, handles, MAXIMUM_WAIT_OBJECTS);
    if (count == 0) {
      s.reason = "no transport event handles";
      break;
    }
    if (WaitForMultipleObjects(count, handles, FALSE, 100) == WAIT_FAILED) {
      s.reason = "WaitForMultipleObjects failed";
      break;
    }
    if (!peer->CheckFileDescriptor(peer)) {
      if (s.reason.empty()) s.reason = s.handled ? "client disconnected" : "connection failed";
      break;
    }
    if (s.credentials_ready && !s.handled) {
      s.handled = true;
      decide(s);
      leave_at = Clock::now() + (s.outcome == "redirected" ? kRedirectGrace : kRefusalGrace);
    }
    auto now = Clock::now();
    if (stopping_) {
      if (s.reason.empty()) s.reason = "shutdown";
      break;
    }
    if (leave_at && now > *leave_at) {
      if (s.reason.empty()) s.reason = "client did not disconnect";
      break;
    }
    if (!leave_at && now > deadline) {
      s.reason = "logon timeout";
      break;
    }
  }
  wipe(s.password);
}

void LogonFront::decide(Session& s) {
  freerdp_peer* peer = s.peer;
  LogonRequest request;
  request.username = s.username;
  request.password = std::move(s.password);
  wipe(s.password);
  if (!s.app.empty()) request.app = s.app;
  request.client_address = s.client.address;
  auto reply = call_broker(std::move(request));
  if (reply) {
    s.session_id = reply->session_id;
    BOOL sent = peer->SendServerRedirection(peer, 0, nullptr, reply->token.c_str(), nullptr,
                                            nullptr, nullptr, nullptr, nullptr, 0, nullptr, 0,
                                            nullptr);
    wipe(reply->token);
    s.outcome = sent ? "redirected" : "redirect-failed";
    return;
  }
  LogonRefusal refusal = refusal_for(reply.error());
  logon_info_ex info{};
  info.haveErrorInfo = TRUE;
  info.ErrorNotificationType = refusal.logon_error_type;
  info.ErrorNotificationData = 0;
  peer->update->SaveSessionInfo(peer->context, INFO_TYPE_LOGON_EXTENDED_INF, &info);
  freerdp_set_error_info(peer->context->rdp, refusal.error_info);
  peer->Close(peer);  // Deactivate All, the Error Info PDU, MCS Disconnect Provider Ultimatum
  s.outcome = "refused";
  s.reason = reply.error().message;
}

void LogonFront::log_end(const Session& s) const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - s.client.accepted);
  auto dash = [](const std::string& v) { return v.empty() ? std::string("-") : log_quote(v); };
  spdlog::info(
      "gateway-connection conn={} peer={}:{} route=logon user={} session={} app={} remote_app={} "
      "outcome={} duration_ms={} reason={}",
      s.client.id, s.client.address, s.client.port, dash(s.username), dash(s.session_id),
      dash(s.app), s.remote_app ? "yes" : "no", s.outcome.empty() ? "none" : s.outcome, ms.count(),
      log_quote(s.reason.empty() ? "unknown" : s.reason));
}

BrokerResult<LogonReply> LogonFront::call_broker(LogonRequest request) {
  auto slot = std::make_shared<std::promise<BrokerResult<LogonReply>>>();
  auto result = slot->get_future();
  asio::co_spawn(io_, run_logon(&broker_, std::move(request), slot), asio::detached);
  // The broker client has its own deadline; this one only guards against a stalled loop.
  const auto deadline = Clock::now() + broker_timeout_ + 2s;
  while (result.wait_for(100ms) != std::future_status::ready) {
    if (stopping_) return tl::unexpected(BrokerError{0, "shutdown", {}});
    if (Clock::now() > deadline) return tl::unexpected(BrokerError{0, "broker logon timed out", {}});
  }
  return result.get();
}

}  // namespace appvirt::gateway
