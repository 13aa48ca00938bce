#pragma once
// The step both front ends share: the TOML reader (policy_file.h) and the JSON reader
// (policy_json.h) only check the outer structure and hand over every rule as raw key/value pairs
// (values as JSON, with the TOML line where there is one); this builder validates names, keys and
// values, so a file and an admin API body are held to exactly the same rules.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "policies/policy.h"

namespace appvirt::policies {

struct RawValue {
  std::string key;
  nlohmann::json value;
  int line = 0;
};

struct RawRule {
  std::string name;  // group or user name; empty for defaults
  int line = 0;      // the table's line (0 when unknown)
  std::vector<RawValue> values;
};

struct RawPolicySet {
  std::optional<RawRule> defaults;
  std::vector<RawRule> groups;
  std::vector<RawRule> users;
};

using PolicySetResult = tl::expected<PolicySet, PolicyIssues>;

// Validates raw into a PolicySet. `issues` holds what the front end already found (they are
// reported together, so an admin fixes everything in one pass); every new issue carries `file`.
PolicySetResult build_policy_set(const RawPolicySet& raw, const std::string& file,
                                 PolicyIssues issues);

}  // namespace appvirt::policies
