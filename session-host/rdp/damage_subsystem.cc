#include "session-host/rdp/damage_subsystem.h"

#include <X11/Xlib.h>
#include <spdlog/spdlog.h>
#include <winpr/collections.h>
#include <winpr/synch.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "common/log.h"
#include "session-host/rdp/damage_region.h"
#include "session-host/rdp/x_damage_source.h"
#include "session-host/rdp/x_test_input.h"

namespace appvirt::rdp {
namespace {

using namespace std::chrono_literals;
constexpr auto kMinFrameInterval = 33ms;  // ≤ 30 frames per second
constexpr int kMaxCursorSize = 96;        // the largest pointer every RDP client accepts

class DamageCapture;

// FreeRDP allocates nothing for the subsystem: New returns this, and FreeRDP casts the
// pointer to rdpShadowSubsystem*, so `common` must come first.
struct DamageSubsystem {
  rdpShadowSubsystem common;
  DamageCapture* capture;
};

DamageCapture* capture_of(rdpShadowSubsystem* s) {
  return reinterpret_cast<DamageSubsystem*>(s)->capture;
}

void fill_single_monitor(MONITOR_DEF* m, int width, int height) {
  m->left = 0;
  m->top = 0;
  m->right = width;
  m->bottom = height;
  m->flags = 1;  // primary
}

// The capture thread: one loop that waits for X events or messages and sends paced frames.
class DamageCapture {
 public:
  explicit DamageCapture(rdpShadowSubsystem* s) : ss_(s) {}
  ~DamageCapture() { uninit(); }

  Result<void> init() {
    auto source = XDamageSource::open();
    if (!source) return tl::unexpected(source.error());
    source_ = std::move(*source);
    auto input = XTestInput::open();
    if (!input) return tl::unexpected(input.error());
    input_ = std::move(*input);
    x_event_ = CreateFileDescriptorEvent(nullptr, FALSE, FALSE, source_->fd(), WINPR_FD_READ);
    if (!x_event_) return fail("CreateFileDescriptorEvent(X connection) failed");
    set_monitors();
    spdlog::info("rdp-capture-init mode=damage width={} height={} max_fps={}", source_->width(),
                 source_->height(), 1000 / kMinFrameInterval.count());
    return {};
  }

  void uninit() {
    stop();
    if (x_event_) CloseHandle(x_event_);
    x_event_ = nullptr;
    input_.reset();
    source_.reset();
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  void stop() {
    if (!thread_.joinable()) return;
    MessageQueue_PostQuit(ss_->MsgPipe->In, 0);
    thread_.join();
  }

  XTestInput& input() { return *input_; }

 private:
  void set_monitors() {
    ss_->numMonitors = 1;
    fill_single_monitor(&ss_->monitors[0], source_->width(), source_->height());
    fill_single_monitor(&ss_->virtualScreen, source_->width(), source_->height());
  }

  bool has_clients() const { return ArrayList_Count(ss_->server->clients) > 0; }
  bool frame_wanted() const { return (damaged_ || full_ || refresh_) && has_clients(); }

  void run() {
    HANDLE events[2] = {MessageQueue_Event(ss_->MsgPipe->In), x_event_};
    for (;;) {
      handle_x_events();
      DWORD timeout = INFINITE;
      if (frame_wanted()) {
        auto wait = pacer_.wait_before_frame(FramePacer::Clock::now());
        if (wait.count() == 0) {
          send_frame();
          continue;  // the grab may have queued X events: drain them before sleeping
        }
        timeout = static_cast<DWORD>(wait.count());
      }
      if (WaitForMultipleObjects(2, events, FALSE, timeout) == WAIT_FAILED) {
        spdlog::error("rdp-capture-failed error=WaitForMultipleObjects");
        return;
      }
      if (!handle_messages()) return;
    }
  }

  // False on WMQ_QUIT.
  bool handle_messages() {
    wMessage message;
    while (MessageQueue_Peek(ss_->MsgPipe->In, &message, TRUE)) {
      if (message.id == WMQ_QUIT) return false;
      // A client (re)connected or asked for a refresh: it gets the whole screen from its own
      // invalid region; the surface must be current first. Its cursor too.
      if (message.id == SHADOW_MSG_IN_REFRESH_REQUEST_ID) {
        refresh_ = true;
        cursor_ = true;
      }
      if (message.Free) message.Free(&message);
    }
    return true;
  }

  void handle_x_events() {
    XDamageSource::Events ev = source_->drain_events();
    if (ev.damaged) damaged_ = true;
    if (ev.cursor_changed) cursor_ = true;
    if (ev.resized && source_->refresh_size()) resize();
    if (cursor_ && has_clients()) send_cursor();
  }

  void resize() {
    spdlog::info("rdp-capture-resize width={} height={}", source_->width(), source_->height());
    set_monitors();
    shadow_screen_resize(ss_->server->screen);  // reallocates the surface at the new size
    full_ = true;
  }

  std::vector<Rect> grab_rects() {
    const Rect screen{0, 0, ss_->server->surface->width, ss_->server->surface->height};
    std::vector<Rect> damage = source_->take_damage();  // always: resets the server's region
    if (full_) return {screen};
    return coalesce_damage(std::move(damage), screen);
  }

  void send_frame() {
    rdpShadowSurface* surface = ss_->server->surface;
    std::vector<Rect> rects = grab_rects();
    damaged_ = full_ = refresh_ = false;
    EnterCriticalSection(&surface->lock);
    for (const Rect& r : rects) {
      if (auto ok = source_->grab(r, surface->data, surface->scanline); !ok) {
        spdlog::warn("rdp-capture-grab-failed x={} y={} w={} h={} error={}", r.x, r.y, r.w, r.h,
                     log_quote(ok.error().str()));
        full_ = true;  // the whole screen again next frame (e.g. a resize is under way)
        continue;
      }
      RECTANGLE_16 r16{static_cast<UINT16>(r.x), static_cast<UINT16>(r.y),
                       static_cast<UINT16>(r.right()), static_cast<UINT16>(r.bottom())};
      region16_union_rect(&surface->invalidRegion, &surface->invalidRegion, &r16);
    }
    LeaveCriticalSection(&surface->lock);
    // Wakes every client thread and waits until each has encoded its part: the surface must
    // not change under them, which it cannot, since only this thread writes it.
    shadow_subsystem_frame_update(ss_);
    EnterCriticalSection(&surface->lock);
    region16_clear(&surface->invalidRegion);
    LeaveCriticalSection(&surface->lock);
    pacer_.frame_sent(FramePacer::Clock::now());
  }

  void send_cursor() {
    cursor_ = false;
    auto c = source_->cursor();
    if (!c || c->width <= 0 || c->height <= 0 || c->width > kMaxCursorSize ||
        c->height > kMaxCursorSize) {
      return;
    }
    auto* msg = static_cast<SHADOW_MSG_OUT_POINTER_ALPHA_UPDATE*>(
        std::calloc(1, sizeof(SHADOW_MSG_OUT_POINTER_ALPHA_UPDATE)));
    if (!msg) return;
    msg->xHot = static_cast<UINT32>(c->xhot);
    msg->yHot = static_cast<UINT32>(c->yhot);
    msg->width = static_cast<UINT32>(c->width);
    msg->height = static_cast<UINT32>(c->height);
    // XFixes pixels are premultiplied ARGB words: in memory B, G, R, A, as FreeRDP expects.
    if (shadow_subsystem_pointer_convert_alpha_pointer_data(
            reinterpret_cast<BYTE*>(c->argb.data()), TRUE, msg->width, msg->height, msg) < 0) {
      std::free(msg);
      return;
    }
    msg->common.Free = &free_pointer_message;
    shadow_client_boardcast_msg(ss_->server, nullptr, SHADOW_MSG_OUT_POINTER_ALPHA_UPDATE_ID,
                                &msg->common, nullptr);
  }

  static void free_pointer_message(UINT32, SHADOW_MSG_OUT* out) {
    auto* msg = reinterpret_cast<SHADOW_MSG_OUT_POINTER_ALPHA_UPDATE*>(out);
    std::free(msg->xorMaskData);
    std::free(msg->andMaskData);
    std::free(msg);
  }

  rdpShadowSubsystem* ss_;
  std::unique_ptr<XDamageSource> source_;
  std::unique_ptr<XTestInput> input_;
  HANDLE x_event_ = nullptr;
  std::thread thread_;
  FramePacer pacer_{kMinFrameInterval};
  bool damaged_ = false;
  bool full_ = true;  // nothing grabbed yet: the first frame takes the whole screen
  bool refresh_ = false;
  bool cursor_ = true;
};

// --- FreeRDP entry points and input callbacks (C ABI; nothing may throw out of them) ---

rdpShadowSubsystem* subsystem_new() {
  auto* s = static_cast<DamageSubsystem*>(std::calloc(1, sizeof(DamageSubsystem)));
  if (!s) return nullptr;
  s->common.KeyboardEvent = [](rdpShadowSubsystem* ss, rdpShadowClient*, UINT16 flags,
                               UINT16 code) -> BOOL {
    capture_of(ss)->input().keyboard(flags, code);
    return TRUE;
  };
  // Like the built-in subsystem: Unicode key input and synchronize events are not injected.
  s->common.UnicodeKeyboardEvent = [](rdpShadowSubsystem*, rdpShadowClient*, UINT16,
                                      UINT16) -> BOOL { return TRUE; };
  s->common.SynchronizeEvent = [](rdpShadowSubsystem*, rdpShadowClient*, UINT32) -> BOOL {
    return TRUE;
  };
  s->common.MouseEvent = [](rdpShadowSubsystem* ss, rdpShadowClient*, UINT16 flags, UINT16 x,
                            UINT16 y) -> BOOL {
    rdpShadowSurface* surface = ss->server->surface;
    capture_of(ss)->input().mouse(flags, x + surface->x, y + surface->y);
    return TRUE;
  };
  s->common.ExtendedMouseEvent = [](rdpShadowSubsystem* ss, rdpShadowClient*, UINT16 flags,
                                    UINT16 x, UINT16 y) -> BOOL {
    rdpShadowSurface* surface = ss->server->surface;
    capture_of(ss)->input().extended_mouse(flags, x + surface->x, y + surface->y);
    return TRUE;
  };
  return &s->common;
}

int subsystem_init(rdpShadowSubsystem* ss) {
  try {
    auto capture = std::make_unique<DamageCapture>(ss);
    if (auto ok = capture->init(); !ok) {
      spdlog::error("rdp-capture-init-failed error={}", log_quote(ok.error().str()));
      return -1;
    }
    reinterpret_cast<DamageSubsystem*>(ss)->capture = capture.release();
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("rdp-capture-init-failed error={}", log_quote(e.what()));
    return -1;
  }
}

int subsystem_uninit(rdpShadowSubsystem* ss) {
  auto* s = reinterpret_cast<DamageSubsystem*>(ss);
  delete s->capture;
  s->capture = nullptr;
  return 1;
}

int subsystem_start(rdpShadowSubsystem* ss) {
  try {
    capture_of(ss)->start();
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("rdp-capture-start-failed error={}", log_quote(e.what()));
    return -1;
  }
}

int subsystem_stop(rdpShadowSubsystem* ss) {
  if (DamageCapture* c = capture_of(ss)) c->stop();
  return 1;
}

void subsystem_free(rdpShadowSubsystem* ss) {
  if (!ss) return;
  subsystem_uninit(ss);
  std::free(reinterpret_cast<DamageSubsystem*>(ss));
}

// Called by FreeRDP only for its `/monitors` option, before any subsystem exists.
UINT32 enum_monitors(MONITOR_DEF* monitors, UINT32 max_monitors) {
  if (max_monitors < 1) return 0;
  Display* d = XOpenDisplay(nullptr);
  if (!d) return 0;
  fill_single_monitor(&monitors[0], DisplayWidth(d, DefaultScreen(d)),
                      DisplayHeight(d, DefaultScreen(d)));
  XCloseDisplay(d);
  return 1;
}

}  // namespace

int damage_subsystem_entry(RDP_SHADOW_ENTRY_POINTS* ep) {
  if (!ep) return -1;
  ep->New = subsystem_new;
  ep->Free = subsystem_free;
  ep->Init = subsystem_init;
  ep->Uninit = subsystem_uninit;
  ep->Start = subsystem_start;
  ep->Stop = subsystem_stop;
  ep->EnumMonitors = enum_monitors;
  return 1;
}

}  // namespace appvirt::rdp
