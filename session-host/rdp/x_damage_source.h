#pragma once
// The session display seen through XDamage: which parts of the root window changed, their
// pixels (XGetImage of just those rectangles), the cursor image (XFixes) and the screen size.
// One X connection, used only by the capture thread. Xlib stays inside the .cc.
//
// Why XGetImage and not MIT-SHM: Xvfb runs in the user's container, which has its own SysV IPC
// namespace, so a SysV segment of appvirt-rdp cannot be attached by Xvfb (docs/decisions.md).
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/result.h"
#include "session-host/rdp/damage_region.h"

namespace appvirt::rdp {

struct CursorImage {
  int width = 0;
  int height = 0;
  int xhot = 0;
  int yhot = 0;
  std::vector<uint32_t> argb;  // premultiplied ARGB, row-major, width*height
};

class XDamageSource {
 public:
  // XOpenDisplay($DISPLAY); needs a 24/32-bit TrueColor root, DAMAGE and XFIXES.
  static Result<std::unique_ptr<XDamageSource>> open();
  ~XDamageSource();
  XDamageSource(const XDamageSource&) = delete;
  XDamageSource& operator=(const XDamageSource&) = delete;

  int fd() const;  // readable when the X server sent something
  int width() const { return width_; }
  int height() const { return height_; }

  struct Events {
    bool damaged = false;
    bool resized = false;
    bool cursor_changed = false;
  };
  // Handles everything Xlib has queued or can read without blocking.
  Events drain_events();
  // The damage accumulated in the server since the last call, which it resets (so the next
  // drawing raises a new DamageNotify). Taken before the pixels are read: drawing that lands in
  // between is reported again and grabbed by the next frame, never lost.
  std::vector<Rect> take_damage();
  // Copies the pixels of `r` (inside the screen) into a BGRX32 buffer at the same position.
  Result<void> grab(const Rect& r, uint8_t* dst, int dst_stride);
  std::optional<CursorImage> cursor();
  // Re-reads the root window's size; true when it changed.
  bool refresh_size();

 private:
  XDamageSource() = default;
  Result<void> init();

  void* display_ = nullptr;   // Display*
  unsigned long root_ = 0;    // Window
  unsigned long damage_ = 0;  // Damage
  unsigned long region_ = 0;  // XserverRegion, scratch for take_damage
  int damage_event_base_ = 0;
  int xfixes_event_base_ = 0;
  int width_ = 0;
  int height_ = 0;
};

}  // namespace appvirt::rdp
