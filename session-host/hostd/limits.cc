#include "session-host/hostd/limits.h"

#include <string>

#include "common/config.h"

namespace appvirt::hostd {

namespace {

Result<int64_t> bounded_int(const nlohmann::json& v, const char* key, int64_t min, int64_t max) {
  if (!v.is_number_integer()) return fail(std::string("limits.") + key + ": must be an integer");
  int64_t x = v.get<int64_t>();
  if (x < min || x > max) {
    return fail(std::string("limits.") + key + ": must be between " + std::to_string(min) +
                " and " + std::to_string(max));
  }
  return x;
}

Result<uint64_t> memory_value(const nlohmann::json& v) {
  std::optional<uint64_t> bytes;
  if (v.is_number_unsigned()) bytes = v.get<uint64_t>();
  if (v.is_string()) bytes = parse_size(v.get<std::string>());
  if (!bytes) return fail("limits.memory_max: must be a byte count or a size such as \"512M\"");
  if (*bytes < kMinMemoryMax || *bytes > kMaxMemoryMax) {
    return fail("limits.memory_max: must be between 16 MiB and 1 TiB");
  }
  return *bytes;
}

}  // namespace

Result<Limits> limits_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail("limits: must be an object");
  Limits l;
  for (const auto& [key, v] : j.items()) {
    if (v.is_null()) continue;
    if (key == "memory_max") {
      auto m = memory_value(v);
      if (!m) return tl::unexpected(m.error());
      l.memory_max = *m;
    } else if (key == "cpu_weight") {
      auto x = bounded_int(v, "cpu_weight", 1, 10000);
      if (!x) return tl::unexpected(x.error());
      l.cpu_weight = *x;
    } else if (key == "cpu_max_percent") {
      auto x = bounded_int(v, "cpu_max_percent", 1, 100000);
      if (!x) return tl::unexpected(x.error());
      l.cpu_max_percent = *x;
    } else if (key == "pids_max") {
      auto x = bounded_int(v, "pids_max", 8, 4194304);
      if (!x) return tl::unexpected(x.error());
      l.pids_max = *x;
    } else {
      return fail("limits." + key + ": unknown key");
    }
  }
  return l;
}

nlohmann::json limits_to_json(const Limits& l) {
  nlohmann::json j = nlohmann::json::object();
  if (l.memory_max) j["memory_max"] = *l.memory_max;
  if (l.cpu_weight) j["cpu_weight"] = *l.cpu_weight;
  if (l.cpu_max_percent) j["cpu_max_percent"] = *l.cpu_max_percent;
  if (l.pids_max) j["pids_max"] = *l.pids_max;
  return j;
}

Limits merge_limits(const Limits& requested, const Limits& defaults) {
  Limits out = defaults;
  if (requested.memory_max) out.memory_max = requested.memory_max;
  if (requested.cpu_weight) out.cpu_weight = requested.cpu_weight;
  if (requested.cpu_max_percent) out.cpu_max_percent = requested.cpu_max_percent;
  if (requested.pids_max) out.pids_max = requested.pids_max;
  return out;
}

Limits vm_qemu_limits(const Limits& session, uint64_t qemu_memory_mib) {
  Limits l;
  l.memory_max = qemu_memory_mib << 20;
  l.cpu_weight = session.cpu_weight;
  l.cpu_max_percent = session.cpu_max_percent;
  l.pids_max = kVmQemuPidsMax;
  return l;
}

}  // namespace appvirt::hostd
