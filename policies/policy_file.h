#pragma once
// The policy file: TOML with [defaults], [groups.NAME] and [users.NAME] tables (docs/policies.md).
// Every problem is reported as "file:line: key: message" and all of them are collected before
// giving up; unknown keys, wrong types and out-of-range values are errors.
#include <filesystem>
#include <string>
#include <string_view>

#include "policies/policy.h"
#include "policies/policy_builder.h"

namespace appvirt::policies {

PolicySetResult parse_policy_toml(std::string_view text, const std::string& file_name);
PolicySetResult load_policy_file(const std::filesystem::path& file);

// The set as a policy file that parse_policy_toml reads back to an equal set (canonical values,
// keys sorted). Useful to export what the admin API holds.
std::string policy_set_to_toml(const PolicySet& set);

}  // namespace appvirt::policies
