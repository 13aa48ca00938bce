#pragma once
// What one rdp-probe run observed; printed as one JSON object.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/tools/frame.h"

namespace appvirt::probe {

struct ProbeReport {
  bool connected = false;
  std::optional<int64_t> connected_ms;    // start of the attempt to the active state
  std::optional<int64_t> first_frame_ms;  // start of the attempt to the first EndPaint
  std::optional<int64_t> match_ms;        // start of the attempt to the first matching frame
  std::optional<bool> match;              // null when no comparison was asked for
  uint64_t mismatched_pixels = 0;         // of the last compared frame
  std::optional<Mismatch> first_mismatch;
  uint64_t bytes_received = 0;  // wire bytes from the server (counted by ByteRelay)
  uint64_t bytes_sent = 0;      // wire bytes to the server
  int width = 0;                // final desktop size (the server may change the requested one)
  int height = 0;
  uint64_t frames = 0;  // EndPaint calls that changed pixels
  uint64_t keys_sent = 0;
  std::optional<int64_t> first_key_ms;
  std::optional<int64_t> last_key_ms;
  uint64_t connect_sleeps = 0;     // Sleep() calls inside FreeRDP's connect loop
  uint64_t connect_shortcuts = 0;  // of those, cut short by server data (0 with --stock-sleep)
  std::optional<std::string> error;

  bool success() const {
    return connected && first_frame_ms.has_value() && match.value_or(true) && !error.has_value();
  }
};

nlohmann::json to_json(const ProbeReport& r);

}  // namespace appvirt::probe
