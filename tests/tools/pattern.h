#pragma once
// The deterministic test pattern shared by appvirt-testpattern (draws it) and rdp-probe (checks
// it). Pixels are 0x00RRGGBB. The pattern depends only on (x, y, variant), never on the screen
// size, so both sides agree whatever size the display has.
//
// Layout: 32x32 blocks whose colour is a hash of (block x, block y, variant) over all 24 bits (so
// a lossy codec or a colour-depth reduction changes low bits and is caught); a 1-px black grid on
// block borders and a diagonal in the inverted block colour inside each block (so a shift by one
// pixel anywhere is caught); a 24x24 corner marker of nested squares at the top left (so a flipped
// or offset frame is caught).
#include <cstdint>

namespace appvirt::testpattern {

inline constexpr int kBlock = 32;
inline constexpr int kMarker = 24;

// A 32-bit integer mixer (the "lowbias32" finalizer): neighbouring inputs give unrelated outputs.
constexpr uint32_t mix32(uint32_t v) {
  v ^= v >> 16;
  v *= 0x7feb352dU;
  v ^= v >> 15;
  v *= 0x846ca68bU;
  v ^= v >> 16;
  return v;
}

constexpr uint32_t block_colour(int bx, int by, int variant) {
  // The constant keeps block (0, 0) of variant 0 from hashing 0 to black.
  uint32_t h =
      mix32(0x5bd1e995U ^ static_cast<uint32_t>(bx) * 0x9e3779b1U ^
            static_cast<uint32_t>(by) * 0x85ebca77U ^ static_cast<uint32_t>(variant) * 0xc2b2ae3dU);
  return h & 0xffffffU;
}

// Nested squares, 4 px wide each, from the outside in: white, red, green, blue, black, yellow.
constexpr uint32_t marker_pixel(int x, int y) {
  constexpr uint32_t kRings[] = {0xffffff, 0xff0000, 0x00ff00, 0x0000ff, 0x000000, 0xffff00};
  int dx = x < kMarker - 1 - x ? x : kMarker - 1 - x;
  int dy = y < kMarker - 1 - y ? y : kMarker - 1 - y;
  int d = dx < dy ? dx : dy;
  return kRings[d / 4];
}

constexpr uint32_t pattern_pixel(int x, int y, int variant) {
  if (x < 0 || y < 0) return 0;
  if (x < kMarker && y < kMarker) return marker_pixel(x, y);
  int ix = x % kBlock;
  int iy = y % kBlock;
  if (ix == 0 || iy == 0) return 0x000000;
  uint32_t c = block_colour(x / kBlock, y / kBlock, variant);
  if (ix == iy) return ~c & 0xffffffU;
  return c;
}

constexpr uint32_t pattern_pixel(int x, int y) { return pattern_pixel(x, y, 0); }

}  // namespace appvirt::testpattern
