#pragma once
// Resource limits of a user's container, as the API, the config file and the sandbox helper
// carry them. Every field is optional: absent means "the configured default", and when that is
// absent too, unlimited.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/result.h"

namespace appvirt::hostd {

struct Limits {
  std::optional<uint64_t> memory_max;      // bytes
  std::optional<int64_t> cpu_weight;       // cgroup v2 scale 1..10000, 100 = default
  std::optional<int64_t> cpu_max_percent;  // percent of one core, 200 = two cores
  std::optional<int64_t> pids_max;

  bool operator==(const Limits&) const = default;
};

inline constexpr uint64_t kMinMemoryMax = 16ull << 20;
inline constexpr uint64_t kMaxMemoryMax = 1ull << 40;

// Parses {"memory_max":..,"cpu_weight":..,"cpu_max_percent":..,"pids_max":..}; unknown keys,
// wrong types and out-of-range values are errors naming the key.
Result<Limits> limits_from_json(const nlohmann::json& j);
nlohmann::json limits_to_json(const Limits& l);

// Field by field: the requested value where set, else the default.
Limits merge_limits(const Limits& requested, const Limits& defaults);

// The cgroup limits of a VM session's QEMU (docs/vm.md): memory is QEMU's ceiling (the guest's
// RAM plus QEMU's overhead), cpu weight and cpu max are the session's, and pids is a fixed cap
// on QEMU's own threads — a policy's pids_max counts processes inside the guest, which the host
// neither sees nor needs to bound.
inline constexpr int64_t kVmQemuPidsMax = 256;
Limits vm_qemu_limits(const Limits& session, uint64_t qemu_memory_mib);

}  // namespace appvirt::hostd
