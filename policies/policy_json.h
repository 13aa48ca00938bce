#pragma once
// The policy model as JSON, for the broker's admin API:
//   GET/PUT /api/v1/admin/policies       policy_set_to_json / policy_set_from_json
//   GET /api/v1/admin/policies/resolve   resolution_to_json
// The JSON form mirrors the file: {"defaults":{..},"groups":{"NAME":{..}},"users":{"NAME":{..}}},
// with the same keys, values and checks (a JSON null means "not set"). Errors name the JSON path,
// e.g. "groups.staff.memory_max: must be between 16M and 1T (got \"8M\")".
#include <nlohmann/json.hpp>
#include <string_view>

#include "policies/policy.h"
#include "policies/policy_builder.h"
#include "policies/resolver.h"

namespace appvirt::policies {

PolicySetResult policy_set_from_json(const nlohmann::json& j);
// Parses text first; malformed JSON is one issue "JSON syntax error: ...".
PolicySetResult policy_set_from_json_text(std::string_view text);
// Canonical form: only set fields, sizes as "2G", durations as "1h30m"/"never", apps sorted.
nlohmann::json policy_set_to_json(const PolicySet& set);
nlohmann::json rule_to_json(const Rule& rule);

// Every field, canonical values: {"isolation":"container","cpu_weight":100,...}.
nlohmann::json effective_to_json(const EffectivePolicy& p);
// {"user","groups":[matched groups in precedence
// order],"policy":{effective},"sources":{field:rule}}
nlohmann::json resolution_to_json(const Resolution& r);

// [{"path":"groups.staff.memory_max","message":"...","line":12?}] — line only for file issues —
// for a 400 reply that lists every reason.
nlohmann::json issues_to_json(const PolicyIssues& issues);

}  // namespace appvirt::policies
