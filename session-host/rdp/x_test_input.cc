#include "session-host/rdp/x_test_input.h"

#include <X11/Xlib.h>
#include <X11/extensions/XTest.h>
#include <freerdp/input.h>
#include <winpr/input.h>

namespace appvirt::rdp {
namespace {

Display* dpy(void* d) { return static_cast<Display*>(d); }

// Runs `body` with the server grab that XTest injection uses (XTestGrabControl keeps a client's
// grab from swallowing the synthetic event), then flushes so the event reaches Xvfb now.
template <class F>
void injected(Display* d, F body) {
  XTestGrabControl(d, True);
  body();
  XTestGrabControl(d, False);
  XFlush(d);
}

}  // namespace

Result<std::unique_ptr<XTestInput>> XTestInput::open() {
  std::unique_ptr<XTestInput> in(new XTestInput());
  Display* d = XOpenDisplay(nullptr);
  if (!d) return fail("XOpenDisplay failed (input connection)");
  in->display_ = d;
  int event_base = 0, error_base = 0, major = 0, minor = 0;
  if (!XTestQueryExtension(d, &event_base, &error_base, &major, &minor)) {
    return fail("X server lacks the XTEST extension");
  }
  return in;
}

XTestInput::~XTestInput() {
  if (display_) XCloseDisplay(dpy(display_));
}

void XTestInput::keyboard(uint16_t flags, uint16_t code) {
  const bool extended = (flags & KBD_FLAGS_EXTENDED) != 0;
  DWORD scancode = code;
  if (extended) scancode |= KBDEXT;
  DWORD vkcode = GetVirtualKeyCodeFromVirtualScanCode(scancode, 4);
  if (extended) vkcode |= KBDEXT;
  const DWORD keycode = GetKeycodeFromVirtualKeyCode(vkcode, KEYCODE_TYPE_EVDEV);
  if (keycode == 0) return;
  std::lock_guard lock(mu_);
  Display* d = dpy(display_);
  injected(d, [&] {
    if (flags & KBD_FLAGS_DOWN) {
      XTestFakeKeyEvent(d, keycode, True, CurrentTime);
    } else if (flags & KBD_FLAGS_RELEASE) {
      XTestFakeKeyEvent(d, keycode, False, CurrentTime);
    }
  });
}

void XTestInput::mouse(uint16_t flags, int x, int y) {
  std::lock_guard lock(mu_);
  Display* d = dpy(display_);
  injected(d, [&] {
    if (flags & PTR_FLAGS_WHEEL) {
      const unsigned button = (flags & PTR_FLAGS_WHEEL_NEGATIVE) ? 5 : 4;
      XTestFakeButtonEvent(d, button, True, CurrentTime);
      XTestFakeButtonEvent(d, button, False, CurrentTime);
      return;
    }
    if (flags & PTR_FLAGS_MOVE) XTestFakeMotionEvent(d, 0, x, y, CurrentTime);
    unsigned button = 0;
    if (flags & PTR_FLAGS_BUTTON1) {
      button = 1;
    } else if (flags & PTR_FLAGS_BUTTON2) {
      button = 3;
    } else if (flags & PTR_FLAGS_BUTTON3) {
      button = 2;
    }
    if (button)
      XTestFakeButtonEvent(d, button, (flags & PTR_FLAGS_DOWN) ? True : False, CurrentTime);
  });
}

void XTestInput::extended_mouse(uint16_t flags, int x, int y) {
  std::lock_guard lock(mu_);
  Display* d = dpy(display_);
  injected(d, [&] {
    XTestFakeMotionEvent(d, 0, x, y, CurrentTime);
    unsigned button = 0;
    if (flags & PTR_XFLAGS_BUTTON1) {
      button = 8;
    } else if (flags & PTR_XFLAGS_BUTTON2) {
      button = 9;
    }
    if (button)
      XTestFakeButtonEvent(d, button, (flags & PTR_XFLAGS_DOWN) ? True : False, CurrentTime);
  });
}

}  // namespace appvirt::rdp
