#pragma once
// A captured RDP frame (0x00RRGGBB pixels) and the exact comparisons rdp-probe runs on it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::probe {

struct Frame {
  int width = 0;
  int height = 0;
  std::vector<uint32_t> pixels;  // row-major, 0x00RRGGBB

  uint32_t at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

// Copies a BGRX32 buffer (FreeRDP's PIXEL_FORMAT_BGRX32: bytes B, G, R, X) into a Frame.
Frame frame_from_bgrx(const uint8_t* data, int width, int height, int stride);

struct Mismatch {
  int x = 0;
  int y = 0;
  uint32_t got = 0;
  uint32_t want = 0;
};

struct CompareResult {
  uint64_t mismatched_pixels = 0;
  std::optional<Mismatch> first;  // in row-major order
  bool size_mismatch = false;     // reference and frame differ in size: every pixel counts
  bool match() const { return mismatched_pixels == 0 && !size_mismatch; }
};

CompareResult compare_to_pattern(const Frame& frame, int variant);
CompareResult compare_frames(const Frame& frame, const Frame& reference);

// PNG files are 8-bit RGB; read_png accepts any PNG libpng can convert to RGB.
Result<void> write_png(const Frame& frame, const std::string& path);
Result<Frame> read_png(const std::string& path);

}  // namespace appvirt::probe
