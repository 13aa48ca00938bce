#pragma once
// What a real RDP client shows: a screenshot of the client's own Xvfb (XGetImage of the root
// window, i.e. what `xwd -root` would save) and a tolerant search for the test pattern in it.
// xfreerdp may decode lossily (GFX/H.264 by default) and places its window where it likes, so the
// check finds the pattern's corner marker first and then compares the centre of every 32x32
// block with its exact colour, allowing codec noise but not another variant or a blank screen.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::e2e {

struct Screenshot {
  int width = 0;
  int height = 0;
  std::vector<uint32_t> pixels;  // 0x00RRGGBB, row-major
  uint32_t at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

// The whole root window of `display`, using the X cookie in `xauthority`.
Result<Screenshot> grab_screen(const std::string& display, const std::string& xauthority);

struct PatternMatch {
  bool marker_found = false;
  int x = 0, y = 0;          // where the pattern's origin is on the client screen
  int blocks_checked = 0;    // block centres compared
  int blocks_matching = 0;   // of those, within the tolerance
  bool visible() const { return marker_found && blocks_checked >= 100 &&
                                blocks_matching * 10 >= blocks_checked * 9; }
  std::string str() const;
};

// Looks for `variant` of the test pattern (tests/tools/pattern.h) anywhere on the screenshot;
// `session_width/height` bound the area the remote desktop can cover.
PatternMatch find_pattern(const Screenshot& shot, int variant, int session_width,
                          int session_height);

// Grabs the screen every 250 ms until the pattern is visible or the timeout; the last result.
PatternMatch wait_for_pattern(const std::string& display, const std::string& xauthority,
                              int variant, int session_width, int session_height,
                              std::chrono::milliseconds timeout);

}  // namespace appvirt::e2e
