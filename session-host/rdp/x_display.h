#pragma once
// One X connection that appvirt-rdp holds for its whole life. FreeRDP's X11 subsystem opens and
// closes a probe connection before opening its real one; if that probe was the server's only
// client, an Xvfb started without -noreset resets in between and drops the real connection.
// Holding a connection also turns "display unreachable" into one clear error before FreeRDP runs.
// Kept apart so that Xlib's macros (None, Status, Bool, ...) stay out of the other files.
#include <string>

#include "common/result.h"

namespace appvirt::rdp {

class XDisplayHold {
 public:
  // XInitThreads (must come before any other Xlib call: FreeRDP uses Xlib from several
  // threads) and XOpenDisplay($DISPLAY).
  static Result<XDisplayHold> open();
  XDisplayHold(XDisplayHold&& o) noexcept;
  XDisplayHold& operator=(XDisplayHold&& o) noexcept;
  ~XDisplayHold();

 private:
  XDisplayHold() = default;
  void* display_ = nullptr;  // Display*
};

}  // namespace appvirt::rdp
