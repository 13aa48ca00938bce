#include "session-host/rdp/x_damage_source.h"

#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/Xdamage.h>
#include <X11/extensions/Xfixes.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace appvirt::rdp {
namespace {

Display* dpy(void* d) { return static_cast<Display*>(d); }

// Xlib's default error handler exits the process. A request that fails here (XGetImage of a
// rectangle that a concurrent RandR shrink just cut off: BadMatch) must only lose that grab;
// the next damage or resize event repairs the picture. Process-wide, like any Xlib handler.
int log_x_error(Display* display, XErrorEvent* event) {
  char text[128] = {};
  XGetErrorText(display, event->error_code, text, sizeof text);
  spdlog::warn("rdp-x-error error={} request={} minor={}", text, event->request_code,
               event->minor_code);
  return 0;
}

}  // namespace

Result<std::unique_ptr<XDamageSource>> XDamageSource::open() {
  std::unique_ptr<XDamageSource> s(new XDamageSource());
  s->display_ = XOpenDisplay(nullptr);
  if (!s->display_) return fail("XOpenDisplay failed (capture connection)");
  if (auto ok = s->init(); !ok) return tl::unexpected(ok.error());
  return s;
}

Result<void> XDamageSource::init() {
  Display* d = dpy(display_);
  XSetErrorHandler(log_x_error);
  const int screen = DefaultScreen(d);
  root_ = RootWindow(d, screen);
  const int depth = DefaultDepth(d, screen);
  if (depth != 24 && depth != 32)
    return fail("X root depth " + std::to_string(depth) + " unsupported (24 or 32)");
  int error_base = 0, major = 0, minor = 0;
  if (!XDamageQueryExtension(d, &damage_event_base_, &error_base) ||
      !XDamageQueryVersion(d, &major, &minor) || major < 1) {
    return fail("X server lacks the DAMAGE extension (1.0 or later)");
  }
  if (!XFixesQueryExtension(d, &xfixes_event_base_, &error_base) ||
      !XFixesQueryVersion(d, &major, &minor) || major < 2) {
    return fail("X server lacks the XFIXES extension (2.0 or later)");
  }
  // NonEmpty: one DamageNotify when the region goes from empty to non-empty, however much is
  // drawn after it, until take_damage() empties it. An idle screen sends nothing at all.
  damage_ = XDamageCreate(d, root_, XDamageReportNonEmpty);
  region_ = XFixesCreateRegion(d, nullptr, 0);
  XFixesSelectCursorInput(d, root_, XFixesDisplayCursorNotifyMask);
  XSelectInput(d, root_, StructureNotifyMask);  // ConfigureNotify: RandR resized the screen
  refresh_size();
  XSync(d, False);
  if (!damage_ || !region_) return fail("XDamageCreate/XFixesCreateRegion failed");
  return {};
}

XDamageSource::~XDamageSource() {
  if (!display_) return;
  Display* d = dpy(display_);
  if (region_) XFixesDestroyRegion(d, region_);
  if (damage_) XDamageDestroy(d, damage_);
  XCloseDisplay(d);
}

int XDamageSource::fd() const { return ConnectionNumber(dpy(display_)); }

XDamageSource::Events XDamageSource::drain_events() {
  Display* d = dpy(display_);
  Events ev;
  while (XPending(d) > 0) {
    XEvent e;
    XNextEvent(d, &e);
    if (e.type == damage_event_base_ + XDamageNotify) {
      ev.damaged = true;
    } else if (e.type == xfixes_event_base_ + XFixesCursorNotify) {
      ev.cursor_changed = true;
    } else if (e.type == ConfigureNotify && e.xconfigure.window == root_) {
      ev.resized = true;
    }
  }
  return ev;
}

std::vector<Rect> XDamageSource::take_damage() {
  Display* d = dpy(display_);
  XDamageSubtract(d, damage_, None, region_);  // region_ := damage; damage := empty
  int count = 0;
  XRectangle* rects = XFixesFetchRegion(d, region_, &count);
  std::vector<Rect> out;
  out.reserve(static_cast<size_t>(count > 0 ? count : 0));
  for (int i = 0; i < count; ++i)
    out.push_back({rects[i].x, rects[i].y, rects[i].width, rects[i].height});
  if (rects) XFree(rects);
  return out;
}

Result<void> XDamageSource::grab(const Rect& r, uint8_t* dst, int dst_stride) {
  Display* d = dpy(display_);
  XImage* img = XGetImage(d, root_, r.x, r.y, static_cast<unsigned>(r.w),
                          static_cast<unsigned>(r.h), AllPlanes, ZPixmap);
  if (!img) return fail("XGetImage failed");
  Result<void> result;
  if (img->bits_per_pixel != 32 || img->byte_order != LSBFirst) {
    result = fail("XGetImage: " + std::to_string(img->bits_per_pixel) +
                  " bpp image, expected 32 bpp little-endian");
  } else {
    const size_t row_bytes = static_cast<size_t>(r.w) * 4;
    for (int y = 0; y < r.h; ++y) {
      std::memcpy(dst + static_cast<size_t>(r.y + y) * dst_stride + static_cast<size_t>(r.x) * 4,
                  img->data + static_cast<size_t>(y) * img->bytes_per_line, row_bytes);
    }
  }
  XDestroyImage(img);
  return result;
}

std::optional<CursorImage> XDamageSource::cursor() {
  XFixesCursorImage* ci = XFixesGetCursorImage(dpy(display_));
  if (!ci) return std::nullopt;
  CursorImage c{ci->width, ci->height, ci->xhot, ci->yhot, {}};
  const size_t n = static_cast<size_t>(ci->width) * ci->height;
  c.argb.resize(n);
  // XFixes hands the pixels out as unsigned long (8 bytes on 64-bit), one ARGB value each.
  for (size_t i = 0; i < n; ++i) c.argb[i] = static_cast<uint32_t>(ci->pixels[i]);
  XFree(ci);
  return c;
}

bool XDamageSource::refresh_size() {
  XWindowAttributes attr;
  if (!XGetWindowAttributes(dpy(display_), root_, &attr)) return false;
  const bool changed = attr.width != width_ || attr.height != height_;
  width_ = attr.width;
  height_ = attr.height;
  return changed;
}

}  // namespace appvirt::rdp
