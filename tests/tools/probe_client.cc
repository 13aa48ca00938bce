#include "tests/tools/probe_client.h"

#include <unistd.h>

#include <freerdp/client.h>
#include <freerdp/client/cmdline.h>
#include <freerdp/freerdp.h>
#include <freerdp/gdi/gdi.h>
#include <freerdp/input.h>
#include <freerdp/primitives.h>
#include <freerdp/settings.h>
#include <winpr/synch.h>
#include <winpr/wlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/tools/byte_relay.h"
#include "tests/tools/keymap.h"
#include "tests/tools/sleep_shortcut.h"

namespace appvirt::probe {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void configure_freerdp_logging(const ProbeOptions& options, bool level_given) {
  wLog* root = WLog_GetRoot();
  WLog_SetLogAppenderType(root, WLOG_APPENDER_CONSOLE);
  WLog_ConfigureAppender(WLog_GetLogAppender(root), "outputstream", const_cast<char*>("stderr"));
  // An explicit --log-level wins; otherwise a WLOG_LEVEL from the environment is kept.
  if (level_given || std::getenv("WLOG_LEVEL") == nullptr) {
    std::string level = options.log_level;
    std::transform(level.begin(), level.end(), level.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    WLog_SetStringLogLevel(root, level.c_str());
  }
}

namespace {

// Calls on_expire once the deadline passes, unless cancelled first (by destruction).
class Watchdog {
 public:
  Watchdog(Clock::time_point deadline, std::function<void()> on_expire)
      : thread_([this, deadline, f = std::move(on_expire)] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_until(lock, deadline, [this] { return cancelled_; })) f();
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

class ProbeSession;

// FreeRDP allocates ContextSize bytes and hands back rdpContext*: our fields follow its own.
struct ProbeContext {
  rdpClientContext common;
  ProbeSession* session;
};

class ProbeSession {
 public:
  explicit ProbeSession(const ProbeOptions& opt) : opt_(opt) {}
  ~ProbeSession();
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  ProbeReport run();

 private:
  Result<void> prepare();
  Result<void> create_context();
  Result<void> apply_settings(int fd);
  void apply_codec_settings(rdpSettings* s);
  Result<void> connect();
  void drive();
  bool pump(Clock::duration max_wait);
  bool step(Clock::time_point now);
  bool send_next_key(Clock::time_point now);
  void evaluate();
  void finish_at_deadline();
  void signal_ready();
  void hold();
  void close();
  Frame grab_frame() const;
  int64_t ms_since_start(Clock::time_point t) const {
    return std::chrono::duration_cast<milliseconds>(t - start_).count();
  }
  Clock::time_point quiet_since() const { return std::max(last_paint_, last_key_at_); }

  // FreeRDP callbacks (C ABI; they must not throw).
  static ProbeSession* from(rdpContext* context) {
    return reinterpret_cast<ProbeContext*>(context)->session;
  }
  static BOOL client_new(freerdp* instance, rdpContext* context);
  static BOOL on_pre_connect(freerdp* instance);
  static BOOL on_post_connect(freerdp* instance);
  static void on_post_disconnect(freerdp* instance);
  static BOOL on_begin_paint(rdpContext* context);
  static BOOL on_end_paint(rdpContext* context);
  static BOOL on_desktop_resize(rdpContext* context);
  static BOOL on_authenticate(freerdp*, char**, char**, char**) { return FALSE; }
  static DWORD on_verify_certificate(freerdp*, const char*, UINT16, const char*, const char*,
                                     const char*, const char*, DWORD) {
    return 2;  // accept for this connection only; nothing is written to known_hosts
  }
  static DWORD on_verify_changed_certificate(freerdp*, const char*, UINT16, const char*,
                                             const char*, const char*, const char*, const char*,
                                             const char*, const char*, DWORD) {
    return 2;
  }

  const ProbeOptions& opt_;
  ProbeReport report_;
  rdpContext* context_ = nullptr;
  ByteRelay relay_;
  std::optional<SleepShortcut> sleep_shortcut_;  // after relay_: uses it
  Clock::time_point start_;
  Clock::time_point deadline_;
  std::optional<Frame> reference_;
  std::optional<Frame> last_compared_;
  std::vector<TypedKey> keys_;
  size_t next_key_ = 0;
  Clock::time_point next_key_at_;
  Clock::time_point last_key_at_;
  Clock::time_point last_paint_;
  bool dirty_ = false;  // pixels changed since the last comparison
  bool connect_attempted_ = false;
  bool size_mismatch_ = false;  // the last compared frame and the reference PNG differ in size
};

ProbeSession::~ProbeSession() { close(); }

void ProbeSession::close() {
  if (!context_) return;
  if (connect_attempted_) freerdp_disconnect(context_->instance);
  sleep_shortcut_.reset();
  relay_.stop();
  report_.bytes_received = relay_.bytes_received();
  report_.bytes_sent = relay_.bytes_sent();
  freerdp_client_context_free(context_);
  context_ = nullptr;
}

ProbeReport ProbeSession::run() {
  // FreeRDP otherwise benchmarks its pixel primitives (~300 ms of CPU) on first use, inside the
  // connection; the SIMD set is what that benchmark picks on x86-64 anyway.
  primitives_set_hints(PRIMITIVES_ONLY_CPU);
  primitives_get();
  start_ = Clock::now();
  deadline_ = start_ + milliseconds(opt_.timeout_ms);
  if (auto r = prepare(); !r) {
    report_.error = r.error().str();
  } else if (auto c = connect(); !c) {
    report_.error = c.error().str();
  } else {
    drive();
    if (!opt_.out_png.empty() && context_->gdi) {
      auto w = write_png(last_compared_ ? *last_compared_ : grab_frame(), opt_.out_png);
      if (!w && !report_.error) report_.error = w.error().str();
    }
    if (report_.success()) signal_ready();
    if (report_.success() && opt_.hold_ms > 0) hold();
  }
  close();
  return report_;
}

Result<void> ProbeSession::prepare() {
  if (!opt_.expect_png.empty()) {
    auto ref = read_png(opt_.expect_png);
    if (!ref) return tl::unexpected(ref.error());
    reference_ = std::move(*ref);
  }
  auto keys = plan_typing(opt_.type_text, opt_.type_unicode);
  if (!keys) return tl::unexpected(keys.error());
  keys_ = std::move(*keys);
  return create_context();
}

Result<void> ProbeSession::create_context() {
  RDP_CLIENT_ENTRY_POINTS ep;
  std::memset(&ep, 0, sizeof(ep));
  ep.Size = sizeof(RDP_CLIENT_ENTRY_POINTS_V1);
  ep.Version = RDP_CLIENT_INTERFACE_VERSION;
  ep.ContextSize = sizeof(ProbeContext);
  ep.ClientNew = client_new;
  context_ = freerdp_client_context_new(&ep);
  if (!context_) return fail("freerdp_client_context_new failed");
  reinterpret_cast<ProbeContext*>(context_)->session = this;
  return {};
}

BOOL ProbeSession::client_new(freerdp* instance, rdpContext*) {
  instance->PreConnect = on_pre_connect;
  instance->PostConnect = on_post_connect;
  instance->PostDisconnect = on_post_disconnect;
  instance->Authenticate = on_authenticate;  // never prompt: there is nobody to ask
  instance->VerifyCertificateEx = on_verify_certificate;
  instance->VerifyChangedCertificateEx = on_verify_changed_certificate;
  return TRUE;
}

Result<void> ProbeSession::apply_settings(int fd) {
  rdpSettings* s = context_->settings;
  // "|" + port = an already connected socket (libfreerdp/core/tcp.c, freerdp_tcp_connect).
  bool ok = freerdp_settings_set_string(s, FreeRDP_ServerHostname, "|") &&
            freerdp_settings_set_uint32(s, FreeRDP_ServerPort, static_cast<UINT32>(fd));
  if (!opt_.user.empty())
    ok = ok && freerdp_settings_set_string(s, FreeRDP_Username, opt_.user.c_str());
  if (!opt_.password.empty()) {
    ok = ok && freerdp_settings_set_string(s, FreeRDP_Password, opt_.password.c_str());
  }
  if (!opt_.cookie.empty()) {
    // 2.11 has no setter for this BYTE* field; freerdp_settings_free() frees it.
    free(s->LoadBalanceInfo);
    s->LoadBalanceInfo = reinterpret_cast<BYTE*>(strdup(opt_.cookie.c_str()));
    s->LoadBalanceInfoLength = static_cast<UINT32>(opt_.cookie.size());
  }
  ok = ok && freerdp_settings_set_bool(s, FreeRDP_RdpSecurity, FALSE) &&
       freerdp_settings_set_bool(s, FreeRDP_NlaSecurity, FALSE) &&
       freerdp_settings_set_bool(s, FreeRDP_ExtSecurity, FALSE) &&
       freerdp_settings_set_bool(s, FreeRDP_TlsSecurity, TRUE) &&
       freerdp_settings_set_bool(s, FreeRDP_NegotiateSecurityLayer, TRUE) &&
       freerdp_settings_set_bool(s, FreeRDP_IgnoreCertificate, TRUE) &&
       freerdp_settings_set_bool(s, FreeRDP_AutoReconnectionEnabled, FALSE) &&
       freerdp_settings_set_bool(s, FreeRDP_SoftwareGdi, TRUE) &&
       // Otherwise https_proxy from the environment would reroute the connection.
       freerdp_settings_set_uint32(s, FreeRDP_ProxyType, PROXY_TYPE_IGNORE) &&
       freerdp_settings_set_uint32(s, FreeRDP_DesktopWidth, static_cast<UINT32>(opt_.width)) &&
       freerdp_settings_set_uint32(s, FreeRDP_DesktopHeight, static_cast<UINT32>(opt_.height)) &&
       freerdp_settings_set_uint32(s, FreeRDP_ColorDepth, static_cast<UINT32>(opt_.bpp)) &&
       freerdp_settings_set_uint32(s, FreeRDP_TcpAckTimeout,
                                   static_cast<UINT32>(std::max(opt_.timeout_ms, 100)));
  if (!ok || (s->LoadBalanceInfo == nullptr && !opt_.cookie.empty())) {
    return fail("setting FreeRDP options failed");
  }
  apply_codec_settings(s);
  return {};
}

void ProbeSession::apply_codec_settings(rdpSettings* s) {
  // The probe never loads the dynamic channels GFX needs, so GFX/H.264 are always off.
  freerdp_settings_set_bool(s, FreeRDP_SupportGraphicsPipeline, FALSE);
  freerdp_settings_set_bool(s, FreeRDP_GfxH264, FALSE);
  freerdp_settings_set_bool(s, FreeRDP_GfxAVC444, FALSE);
  if (opt_.lossless) {
    // What /network:modem sets, and no surface-bits codecs: the server falls back to planar
    // (32 bpp) or interleaved (< 32 bpp) bitmaps, both lossless.
    freerdp_set_connection_type(s, CONNECTION_TYPE_MODEM);
    freerdp_settings_set_bool(s, FreeRDP_RemoteFxCodec, FALSE);
    freerdp_settings_set_bool(s, FreeRDP_NSCodec, FALSE);
  } else {
    freerdp_settings_set_bool(s, FreeRDP_RemoteFxCodec, TRUE);
    freerdp_settings_set_bool(s, FreeRDP_NSCodec, TRUE);
  }
}

Result<void> ProbeSession::connect() {
  auto target = parse_target(opt_.target);
  if (!target) return tl::unexpected(target.error());
  auto remaining = std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now());
  auto sock = connect_target(*target, std::max(remaining, milliseconds(1)));
  if (!sock) return tl::unexpected(sock.error());
  auto fd = relay_.start(std::move(*sock));
  if (!fd) return tl::unexpected(fd.error());
  if (auto r = apply_settings(*fd); !r) {
    ::close(*fd);
    return r;
  }
  freerdp* instance = context_->instance;
  connect_attempted_ = true;
  // Also covers the reactivation loop (activation.c) that a server-side resize runs in pump().
  if (!opt_.stock_sleep) sleep_shortcut_.emplace(&relay_);
  uint64_t sleeps_before = SleepShortcut::sleep_count();
  uint64_t shortcuts_before = SleepShortcut::shortcut_count();
  BOOL ok;
  {
    // A blocking TLS handshake does not look at the abort event, so also cut the relay.
    Watchdog dog(deadline_, [this, instance] {
      freerdp_abort_connect(instance);
      relay_.interrupt();
    });
    ok = freerdp_connect(instance);
  }
  report_.connect_sleeps = SleepShortcut::sleep_count() - sleeps_before;
  report_.connect_shortcuts = SleepShortcut::shortcut_count() - shortcuts_before;
  if (!ok) {
    UINT32 err = freerdp_get_last_error(context_);
    std::string why = Clock::now() >= deadline_ ? "timeout" : freerdp_get_last_error_string(err);
    return fail("freerdp_connect: " + why + " (" + freerdp_get_last_error_name(err) + ")");
  }
  report_.connected = true;
  report_.connected_ms = ms_since_start(Clock::now());
  return {};
}

BOOL ProbeSession::on_pre_connect(freerdp* instance) {
  rdpSettings* s = instance->settings;
  s->OsMajorType = OSMAJORTYPE_UNIX;
  s->OsMinorType = OSMINORTYPE_NATIVE_XSERVER;
  return TRUE;  // no channels: the probe needs none
}

BOOL ProbeSession::on_post_connect(freerdp* instance) {
  if (!gdi_init(instance, PIXEL_FORMAT_BGRX32)) return FALSE;
  // Without these the fast-path update code fails with -4 and drops the connection.
  instance->update->BeginPaint = on_begin_paint;
  instance->update->EndPaint = on_end_paint;
  instance->update->DesktopResize = on_desktop_resize;
  return TRUE;
}

void ProbeSession::on_post_disconnect(freerdp* instance) { gdi_free(instance); }

BOOL ProbeSession::on_begin_paint(rdpContext* context) {
  context->gdi->primary->hdc->hwnd->invalid->null = TRUE;
  return TRUE;
}

BOOL ProbeSession::on_end_paint(rdpContext* context) {
  if (context->gdi->primary->hdc->hwnd->invalid->null) return TRUE;  // nothing drawn
  ProbeSession* self = from(context);
  self->last_paint_ = Clock::now();
  self->dirty_ = true;
  ++self->report_.frames;
  if (!self->report_.first_frame_ms) {
    self->report_.first_frame_ms = self->ms_since_start(self->last_paint_);
  }
  return TRUE;
}

BOOL ProbeSession::on_desktop_resize(rdpContext* context) {
  return gdi_resize(context->gdi, context->settings->DesktopWidth,
                    context->settings->DesktopHeight);
}

Frame ProbeSession::grab_frame() const {
  const rdpGdi* gdi = context_->gdi;
  return frame_from_bgrx(gdi->primary_buffer, static_cast<int>(gdi->width),
                         static_cast<int>(gdi->height), static_cast<int>(gdi->stride));
}

// Runs FreeRDP's event handling once, waiting at most max_wait. False when the connection ended.
bool ProbeSession::pump(Clock::duration max_wait) {
  HANDLE handles[MAXIMUM_WAIT_OBJECTS];
  DWORD n = freerdp_get_event_handles(context_, handles, ARRAYSIZE(handles));
  if (n == 0) {
    report_.error = "freerdp_get_event_handles failed";
    return false;
  }
  auto wait_ms = std::chrono::duration_cast<milliseconds>(max_wait).count();
  if (WaitForMultipleObjects(n, handles, FALSE,
                             static_cast<DWORD>(std::max<int64_t>(wait_ms, 0))) == WAIT_FAILED) {
    report_.error = "WaitForMultipleObjects failed";
    return false;
  }
  if (!freerdp_check_event_handles(context_) || freerdp_shall_disconnect(context_->instance)) {
    UINT32 err = freerdp_get_last_error(context_);
    report_.error = std::string("connection closed: ") + freerdp_get_last_error_string(err);
    return false;
  }
  return true;
}

void ProbeSession::drive() {
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline_) {
      finish_at_deadline();
      break;
    }
    if (step(now)) break;
    if (!pump(std::min<Clock::duration>(deadline_ - now, milliseconds(20)))) break;
  }
  report_.width = static_cast<int>(context_->gdi->width);
  report_.height = static_cast<int>(context_->gdi->height);
  if (size_mismatch_ && !report_.error) {
    report_.error = "frame is " + std::to_string(report_.width) + "x" +
                    std::to_string(report_.height) + ", reference PNG is " +
                    std::to_string(reference_->width) + "x" + std::to_string(reference_->height);
  }
}

// One decision after each round of events. True when the probe is done.
bool ProbeSession::step(Clock::time_point now) {
  if (!report_.first_frame_ms) return false;
  if (next_key_ < keys_.size()) {
    return now >= next_key_at_ && !send_next_key(now);
  }
  bool settled = now - quiet_since() >= milliseconds(opt_.settle_ms);
  if (!opt_.wants_compare()) return opt_.out_png.empty() || settled;
  if (!dirty_ || !(opt_.wait_match || settled)) return false;
  evaluate();
  return *report_.match || !opt_.wait_match;
}

bool ProbeSession::send_next_key(Clock::time_point now) {
  const TypedKey& k = keys_[next_key_++];
  rdpInput* input = context_->input;
  bool ok = true;
  if (k.unicode) {
    // FreeRDP refuses (FALSE) when the server did not announce Unicode input.
    ok = freerdp_input_send_unicode_keyboard_event(input, 0, k.code) &&
         freerdp_input_send_unicode_keyboard_event(input, KBD_FLAGS_RELEASE, k.code);
  } else {
    if (k.shift) ok = freerdp_input_send_keyboard_event_ex(input, TRUE, kScancodeLeftShift);
    ok = ok && freerdp_input_send_keyboard_event_ex(input, TRUE, k.code) &&
         freerdp_input_send_keyboard_event_ex(input, FALSE, k.code);
    if (k.shift) ok = ok && freerdp_input_send_keyboard_event_ex(input, FALSE, kScancodeLeftShift);
  }
  if (!ok) {
    report_.error = k.unicode ? "key event refused: the server does not accept Unicode input"
                              : "key event refused";
    return false;
  }
  ++report_.keys_sent;
  if (!report_.first_key_ms) report_.first_key_ms = ms_since_start(now);
  report_.last_key_ms = ms_since_start(now);
  last_key_at_ = now;
  next_key_at_ = now + milliseconds(opt_.type_interval_ms);
  dirty_ = false;  // frames painted before this key do not count as an answer to it
  return true;
}

void ProbeSession::evaluate() {
  Frame f = grab_frame();
  CompareResult r =
      reference_ ? compare_frames(f, *reference_) : compare_to_pattern(f, *opt_.expect_pattern);
  report_.match = r.match();
  report_.mismatched_pixels = r.mismatched_pixels;
  report_.first_mismatch = r.first;
  size_mismatch_ = r.size_mismatch;
  // The frame that matched was complete at its last paint, not when we got round to comparing.
  if (r.match() && !report_.match_ms) report_.match_ms = ms_since_start(last_paint_);
  last_compared_ = std::move(f);
  dirty_ = false;
}

void ProbeSession::finish_at_deadline() {
  if (!report_.first_frame_ms) {
    report_.error = "timeout: no frame received";
    return;
  }
  if (next_key_ < keys_.size()) {
    report_.error = "timeout while typing";
    return;
  }
  if (!opt_.wants_compare()) return;  // a frame arrived; --out may just not have settled
  bool fresh = dirty_;
  if (dirty_ || !report_.match) evaluate();  // report how far off the final frame is
  if (!fresh && !keys_.empty()) {
    // Only a frame painted after the last key can answer the typing.
    report_.match = false;
    report_.match_ms.reset();
    report_.error = "timeout: no update after the last key";
  } else if (!*report_.match) {
    report_.error = "timeout: frame does not match";
  }
}

void ProbeSession::signal_ready() {
  if (opt_.ready_fd < 0) return;
  ssize_t n = ::write(opt_.ready_fd, "ready\n", 6);
  (void)n;  // a reader that went away is not the probe's failure
  ::close(opt_.ready_fd);
}

void ProbeSession::hold() {
  auto end = Clock::now() + milliseconds(opt_.hold_ms);
  for (auto now = Clock::now(); now < end; now = Clock::now()) {
    if (!pump(std::min<Clock::duration>(end - now, milliseconds(200)))) {
      report_.error = "connection closed during --hold-ms: " + report_.error.value_or("");
      return;
    }
  }
}

}  // namespace

ProbeReport run_probe(const ProbeOptions& options) {
  ProbeSession session(options);
  return session.run();
}

}  // namespace appvirt::probe
