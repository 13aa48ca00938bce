#pragma once
// The one mapping from a resolved policy to the container limits hostd applies (the "limits"
// object of POST /v1/sessions and PUT /v1/users/{user}/limits, docs/session-host.md), so the
// broker and hostd cannot disagree about it.
#include <nlohmann/json.hpp>

#include "policies/policy.h"

namespace appvirt::policies {

// {"memory_max":bytes,"cpu_weight":N,"cpu_max_percent":N,"pids_max":N}. An unlimited field is
// left out, which hostd reads as "the host's configured default" (limits.* in hostd.toml), so a
// host can still cap what a policy leaves open.
nlohmann::json container_limits_json(const EffectivePolicy& p);

}  // namespace appvirt::policies
