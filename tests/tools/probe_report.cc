#include "tests/tools/probe_report.h"

#include <cstdio>

namespace appvirt::probe {

namespace {

template <class T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string hex_colour(uint32_t c) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "#%06x", c & 0xffffffU);
  return buf;
}

}  // namespace

nlohmann::json to_json(const ProbeReport& r) {
  nlohmann::json j;
  j["connected"] = r.connected;
  j["connected_ms"] = or_null(r.connected_ms);
  j["first_frame_ms"] = or_null(r.first_frame_ms);
  j["match_ms"] = or_null(r.match_ms);
  j["match"] = or_null(r.match);
  j["mismatched_pixels"] = r.mismatched_pixels;
  j["first_mismatch"] = nullptr;
  if (r.first_mismatch) {
    const Mismatch& m = *r.first_mismatch;
    j["first_mismatch"] = {
        {"x", m.x}, {"y", m.y}, {"got", hex_colour(m.got)}, {"want", hex_colour(m.want)}};
  }
  j["bytes_received"] = r.bytes_received;
  j["bytes_sent"] = r.bytes_sent;
  j["width"] = r.width;
  j["height"] = r.height;
  j["frames"] = r.frames;
  j["keys_sent"] = r.keys_sent;
  j["first_key_ms"] = or_null(r.first_key_ms);
  j["last_key_ms"] = or_null(r.last_key_ms);
  j["connect_sleeps"] = r.connect_sleeps;
  j["connect_shortcuts"] = r.connect_shortcuts;
  j["error"] = or_null(r.error);
  return j;
}

}  // namespace appvirt::probe
