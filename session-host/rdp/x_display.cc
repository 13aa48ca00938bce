#include "session-host/rdp/x_display.h"

#include <X11/Xlib.h>

#include <cstdlib>
#include <utility>

namespace appvirt::rdp {

Result<XDisplayHold> XDisplayHold::open() {
  if (!XInitThreads()) return fail("XInitThreads failed");
  Display* display = XOpenDisplay(nullptr);
  if (!display) {
    const char* name = std::getenv("DISPLAY");
    return fail(std::string("XOpenDisplay(") + (name ? name : "") +
                ") failed: no X socket in --x11-dir, or --xauthority has no valid cookie");
  }
  XDisplayHold hold;
  hold.display_ = display;
  return hold;
}

XDisplayHold::XDisplayHold(XDisplayHold&& o) noexcept
    : display_(std::exchange(o.display_, nullptr)) {}

XDisplayHold& XDisplayHold::operator=(XDisplayHold&& o) noexcept {
  std::swap(display_, o.display_);
  return *this;
}

XDisplayHold::~XDisplayHold() {
  if (display_) XCloseDisplay(static_cast<Display*>(display_));
}

}  // namespace appvirt::rdp
