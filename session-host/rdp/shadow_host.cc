#include "session-host/rdp/shadow_host.h"

#include <freerdp/freerdp.h>
#include <freerdp/listener.h>
#include <freerdp/peer.h>
#include <freerdp/server/shadow.h>
#include <freerdp/settings.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <winpr/handle.h>
#include <winpr/synch.h>
#include <winpr/wlog.h>

#include <cstring>

#include "common/log.h"
#include "session-host/rdp/damage_subsystem.h"

namespace appvirt::rdp {

namespace {
// The subsystem's own hooks (the built-in X11 one also sets Authenticate to a PAM check, which
// ours replaces), called after ours.
pfnShadowClientConnect g_subsystem_client_connect = nullptr;
pfnShadowClientDisconnect g_subsystem_client_disconnect = nullptr;
pfnShadowKeyboardEvent g_subsystem_keyboard = nullptr;
pfnShadowUnicodeKeyboardEvent g_subsystem_unicode_keyboard = nullptr;
pfnShadowMouseEvent g_subsystem_mouse = nullptr;
pfnShadowExtendedMouseEvent g_subsystem_extended_mouse = nullptr;

ShadowHost* host_of(rdpShadowServer* server) { return static_cast<ShadowHost*>(server->ext); }

// FreeRDP logs the routing token (our secret) at debug level when it parses the Connection
// Request; keep that logger at info or above whatever WLOG_LEVEL says.
void quiet_secret_logging() {
  wLog* nego = WLog_Get("com.freerdp.core.nego");
  if (nego && WLog_GetLogLevel(nego) < WLOG_INFO) WLog_SetLogLevel(nego, WLOG_INFO);
}
}  // namespace

// C callbacks installed into FreeRDP. No exceptions may leave them.
struct ShadowCallbacks {
  static BOOL open(freerdp_listener*, const char*, UINT16) { return TRUE; }
  static BOOL open_local(freerdp_listener*, const char*) { return TRUE; }

  static DWORD get_event_handles(freerdp_listener* listener, HANDLE* events, DWORD count) {
    if (count < 1) return 0;
    auto* server = static_cast<rdpShadowServer*>(listener->info);
    events[0] = host_of(server)->wake_event_;
    return 1;
  }

  static BOOL check_fds(freerdp_listener* listener) {
    auto* server = static_cast<rdpShadowServer*>(listener->info);
    try {
      host_of(server)->accept_queued();
    } catch (const std::exception& e) {
      spdlog::error("rdp-handoff-failed error={}", log_quote(e.what()));
    }
    return TRUE;  // FALSE would end the shadow server thread
  }

  // Defence in depth: the gate already checked the cookie; FreeRDP parsed the same bytes.
  static bool token_ok(rdpShadowSubsystem* subsystem, rdpShadowClient* client) {
    DWORD length = 0;
    const char* token = freerdp_nego_get_routing_token(&client->context, &length);
    std::string_view line = token ? std::string_view(token, length) : std::string_view();
    return CookieGate::cookie_matches(line, host_of(subsystem->server)->config_.secret);
  }

  // Runs at the end of FreeRDP's PostConnect, before the GFX channel would be opened and before
  // the first frame is encoded, so the codec choice made here holds for the whole connection.
  static void apply_codec_policy(rdpShadowSubsystem* subsystem, rdpSettings* s) {
    if (host_of(subsystem->server)->config_.codecs != CodecPolicy::lossless) return;
    // The shadow server's GFX path is H.264 of the whole screen for every change (~0.5 Mbit/s
    // for typing); without GFX and with RemoteFX/NSCodec off it sends planar (32 bpp) or
    // interleaved (16 bpp) bitmaps of just the changed 64x64 tiles.
    freerdp_settings_set_bool(s, FreeRDP_SupportGraphicsPipeline, FALSE);
    freerdp_settings_set_bool(s, FreeRDP_RemoteFxCodec, FALSE);
    freerdp_settings_set_bool(s, FreeRDP_NSCodec, FALSE);
  }

  static BOOL client_connect(rdpShadowSubsystem* subsystem, rdpShadowClient* client) {
    if (!token_ok(subsystem, client)) {
      spdlog::error("rdp-client-refused reason=routing-token-mismatch-after-handoff");
      return FALSE;
    }
    rdpSettings* s = client->context.settings;
    apply_codec_policy(subsystem, s);
    spdlog::info("rdp-client-connected peer={} width={} height={} bpp={}",
                 log_quote(client->context.peer->hostname), s->DesktopWidth, s->DesktopHeight,
                 s->ColorDepth);
    BOOL ok = g_subsystem_client_connect ? g_subsystem_client_connect(subsystem, client) : TRUE;
    if (ok) {
      if (ActivityReport* a = activity(subsystem)) a->client_connected(client);
    }
    return ok;
  }

  static void client_disconnect(rdpShadowSubsystem* subsystem, rdpShadowClient* client) {
    spdlog::info("rdp-client-disconnected peer={}", log_quote(client->context.peer->hostname));
    if (ActivityReport* a = activity(subsystem)) a->client_disconnected(client);
    if (g_subsystem_client_disconnect) g_subsystem_client_disconnect(subsystem, client);
  }

  // Input hooks: record the activity (the idle timeout), then do what the subsystem does.
  // Synchronize events (lock key states, sent on connect and focus) are not user input.
  static ActivityReport* activity(rdpShadowSubsystem* subsystem) {
    return host_of(subsystem->server)->config_.activity;
  }
  static void note_input(rdpShadowSubsystem* subsystem) {
    if (ActivityReport* a = activity(subsystem)) a->input();
  }
  static BOOL keyboard(rdpShadowSubsystem* ss, rdpShadowClient* c, UINT16 flags, UINT16 code) {
    note_input(ss);
    return g_subsystem_keyboard ? g_subsystem_keyboard(ss, c, flags, code) : TRUE;
  }
  static BOOL unicode_keyboard(rdpShadowSubsystem* ss, rdpShadowClient* c, UINT16 flags,
                               UINT16 code) {
    note_input(ss);
    return g_subsystem_unicode_keyboard ? g_subsystem_unicode_keyboard(ss, c, flags, code) : TRUE;
  }
  static BOOL mouse(rdpShadowSubsystem* ss, rdpShadowClient* c, UINT16 flags, UINT16 x, UINT16 y) {
    note_input(ss);
    return g_subsystem_mouse ? g_subsystem_mouse(ss, c, flags, x, y) : TRUE;
  }
  static BOOL extended_mouse(rdpShadowSubsystem* ss, rdpShadowClient* c, UINT16 flags, UINT16 x,
                             UINT16 y) {
    note_input(ss);
    return g_subsystem_extended_mouse ? g_subsystem_extended_mouse(ss, c, flags, x, y) : TRUE;
  }

  // Only called when server->authentication is on; the session secret is the authentication,
  // so this replaces the subsystem's PAM check with the same token check.
  static int authenticate(rdpShadowSubsystem* subsystem, rdpShadowClient* client, const char*,
                          const char*, const char*) {
    return token_ok(subsystem, client) ? 1 : -1;
  }
};

ShadowHost::ShadowHost(Config config) : config_(std::move(config)) {}

ShadowHost::~ShadowHost() { stop(); }

Result<std::unique_ptr<ShadowHost>> ShadowHost::start(Config config) {
  std::unique_ptr<ShadowHost> host(new ShadowHost(std::move(config)));
  if (auto ok = host->init(); !ok) return tl::unexpected(ok.error());
  if (shadow_server_start(host->server_) < 0) return fail("shadow_server_start failed");
  host->started_ = true;
  return host;
}

Result<void> ShadowHost::init() {
  quiet_secret_logging();
  if (config_.capture == CaptureMode::damage) {
    shadow_subsystem_set_entry(&damage_subsystem_entry);
  } else {
    shadow_subsystem_set_entry_builtin("X11");
  }
  server_ = shadow_server_new();
  if (!server_) return fail("shadow_server_new failed");
  server_->ext = this;
  server_->authentication = FALSE;
  server_->ConfigPath = ::strdup(config_.config_dir.c_str());
  // TLS only: NLA would need NT hashes of a password we do not have (the secret is the
  // credential), and Standard RDP Security is obsolete cryptography.
  freerdp_settings_set_bool(server_->settings, FreeRDP_TlsSecurity, TRUE);
  freerdp_settings_set_bool(server_->settings, FreeRDP_NlaSecurity, FALSE);
  freerdp_settings_set_bool(server_->settings, FreeRDP_RdpSecurity, FALSE);
  wake_event_ = CreateEventA(nullptr, TRUE, FALSE, nullptr);
  if (!wake_event_) return fail("CreateEvent failed");
  if (shadow_server_init(server_) < 0) {
    return fail("shadow_server_init failed (X display reachable? FreeRDP's log says more)");
  }
  install_hooks();
  return {};
}

void ShadowHost::install_hooks() {
  freerdp_listener* listener = server_->listener;
  listener->Open = &ShadowCallbacks::open;
  listener->OpenLocal = &ShadowCallbacks::open_local;
  listener->GetEventHandles = &ShadowCallbacks::get_event_handles;
  listener->CheckFileDescriptor = &ShadowCallbacks::check_fds;
  rdpShadowSubsystem* subsystem = server_->subsystem;
  g_subsystem_client_connect = subsystem->ClientConnect;
  g_subsystem_client_disconnect = subsystem->ClientDisconnect;
  subsystem->ClientConnect = &ShadowCallbacks::client_connect;
  subsystem->ClientDisconnect = &ShadowCallbacks::client_disconnect;
  subsystem->Authenticate = &ShadowCallbacks::authenticate;
  g_subsystem_keyboard = subsystem->KeyboardEvent;
  g_subsystem_unicode_keyboard = subsystem->UnicodeKeyboardEvent;
  g_subsystem_mouse = subsystem->MouseEvent;
  g_subsystem_extended_mouse = subsystem->ExtendedMouseEvent;
  subsystem->KeyboardEvent = &ShadowCallbacks::keyboard;
  subsystem->UnicodeKeyboardEvent = &ShadowCallbacks::unicode_keyboard;
  subsystem->MouseEvent = &ShadowCallbacks::mouse;
  subsystem->ExtendedMouseEvent = &ShadowCallbacks::extended_mouse;
}

void ShadowHost::hand_off(UniqueFd fd, const PeerAddress& peer) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Queued{std::move(fd), peer});
  }
  SetEvent(wake_event_);
}

void ShadowHost::accept_queued() {
  ResetEvent(wake_event_);  // before draining: a hand_off racing with us sets it again
  std::vector<Queued> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
  }
  for (Queued& q : batch) accept_one(std::move(q));
}

void ShadowHost::accept_one(Queued q) {
  freerdp_peer* peer = freerdp_peer_new(q.fd.get());
  if (!peer) {
    spdlog::error("rdp-handoff-failed error=freerdp_peer_new");
    return;
  }
  peer->local = q.peer.local ? TRUE : FALSE;
  std::strncpy(peer->hostname, q.peer.host.c_str(), sizeof peer->hostname - 1);
  const int fd = q.fd.release();  // FreeRDP's transport owns it from here
  if (!server_->listener->PeerAccepted(server_->listener, peer)) {
    // Depending on where shadow_client_accepted failed, FreeRDP may already have closed the
    // fd; closing it again could hit a reused number, so end the connection with shutdown()
    // and accept leaking one descriptor on this rare path.
    ::shutdown(fd, SHUT_RDWR);
    freerdp_peer_free(peer);
    spdlog::error("rdp-handoff-failed error=PeerAccepted");
  }
}

void ShadowHost::stop() {
  if (server_) {
    if (started_) shadow_server_stop(server_);
    started_ = false;
    if (server_->listener) shadow_server_uninit(server_);
    shadow_server_free(server_);
    server_ = nullptr;
  }
  if (wake_event_) {
    CloseHandle(wake_event_);
    wake_event_ = nullptr;
  }
  std::lock_guard lock(mu_);
  queue_.clear();
}

}  // namespace appvirt::rdp
