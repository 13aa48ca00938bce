#pragma once
// Resolution: which value of each field applies to a user, and which rule set it.
//
// Per field, the first of these that sets the field wins:
//   1. [users.NAME] of the user;
//   2. the [groups.NAME] rules of the user's groups, highest priority first. When several groups
//      of that same highest priority set the field, the user gets the most restrictive value
//      they all allow (their "meet", policy_values.h): the smaller limit, the shorter timeout,
//      the intersection of app lists, the clipboard directions all allow, vm over container...
//      A group that does not set a field never hides lower-priority groups for that field;
//   3. [defaults];
//   4. the built-in default (builtin_defaults()).
// docs/policies.md states the same rules with examples; resolver_test.cc checks each of them.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"

namespace appvirt::policies {

inline constexpr std::string_view kSourceDefaults = "defaults";
inline constexpr std::string_view kSourceBuiltin = "builtin";

struct Resolution {
  std::string user;
  // The user's groups that have a rule, in precedence order (priority high to low, then name).
  std::vector<std::string> groups;
  EffectivePolicy policy;
  // Per field (index = Field): "users.alice", "groups.staff", "defaults" or "builtin"; when tied
  // groups together produced a value none of them set alone: "groups.a & groups.b".
  std::array<std::string, kFieldCount> sources;

  const std::string& source(Field f) const { return sources[static_cast<size_t>(f)]; }
};

// groups: every group the user belongs to (names; order and duplicates do not matter).
Resolution resolve(const PolicySet& set, std::string_view user,
                   const std::vector<std::string>& groups);

}  // namespace appvirt::policies
