#include "policies/container_limits.h"

namespace appvirt::policies {

nlohmann::json container_limits_json(const EffectivePolicy& p) {
  nlohmann::json out = nlohmann::json::object();
  if (p.memory_max.value) out["memory_max"] = *p.memory_max.value;
  out["cpu_weight"] = p.cpu_weight;
  if (p.cpu_max.value) out["cpu_max_percent"] = *p.cpu_max.value;
  if (p.pids_max.value) out["pids_max"] = *p.pids_max.value;
  return out;
}

}  // namespace appvirt::policies
