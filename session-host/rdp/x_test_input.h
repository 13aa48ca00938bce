#pragma once
// Keyboard and mouse injection into the session display through XTEST, with the same mapping
// as FreeRDP 2.11's X11 shadow subsystem (RDP scancode → virtual key → evdev keycode; RDP mouse
// buttons 1/2/3 → X buttons 1/3/2, wheel → 4/5, extended buttons → 8/9). Its own X connection:
// called from the shadow client threads, never blocks the capture thread's connection.
#include <cstdint>
#include <memory>
#include <mutex>

#include "common/result.h"

namespace appvirt::rdp {

class XTestInput {
 public:
  static Result<std::unique_ptr<XTestInput>> open();
  ~XTestInput();
  XTestInput(const XTestInput&) = delete;
  XTestInput& operator=(const XTestInput&) = delete;

  // Flags and codes as in the RDP input PDUs (KBD_FLAGS_*, PTR_FLAGS_*, PTR_XFLAGS_*).
  void keyboard(uint16_t flags, uint16_t code);
  void mouse(uint16_t flags, int x, int y);
  void extended_mouse(uint16_t flags, int x, int y);

 private:
  XTestInput() = default;
  std::mutex mu_;            // several clients may type at once
  void* display_ = nullptr;  // Display*
};

}  // namespace appvirt::rdp
