#pragma once
// ASCII to PC/AT set-1 scancodes of a US keyboard, for typing through RDP keyboard events
// (the shadow server's X11 input has no Unicode key events; scancodes go through XTest).
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace appvirt::probe {

struct KeyStroke {
  uint8_t scancode = 0;
  bool shift = false;
};

inline constexpr uint8_t kScancodeLeftShift = 0x2a;

// Letters, digits, punctuation, space, '\n' (Enter), '\t' and '\b'; nullopt for anything else.
std::optional<KeyStroke> ascii_to_key(char c);

// One character to type: a scancode (with shift) or a Unicode code point (BMP only, as the RDP
// Unicode keyboard event carries 16 bits).
struct TypedKey {
  bool unicode = false;
  uint16_t code = 0;
  bool shift = false;
};

// Turns UTF-8 text into key events; fails on characters the chosen mode cannot send.
Result<std::vector<TypedKey>> plan_typing(std::string_view utf8, bool unicode);

}  // namespace appvirt::probe
