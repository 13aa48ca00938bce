#include "policies/resolver.h"

#include <algorithm>
#include <optional>
#include <set>

#include "policies/policy_fields.h"

namespace appvirt::policies {

namespace {

struct MatchedGroup {
  std::string name;
  std::string path;  // "groups.NAME", the source name
  const GroupRule* rule;
};

// The user's groups that have a rule, priority high to low, then by name for a stable order.
std::vector<MatchedGroup> matched_groups(const PolicySet& set,
                                         const std::vector<std::string>& groups) {
  std::vector<MatchedGroup> out;
  for (const std::string& g : std::set<std::string>(groups.begin(), groups.end())) {
    auto it = set.groups.find(g);
    if (it != set.groups.end()) out.push_back({g, rule_path("groups", g), &it->second});
  }
  std::stable_sort(out.begin(), out.end(), [](const MatchedGroup& a, const MatchedGroup& b) {
    return a.rule->priority > b.rule->priority;
  });
  return out;
}

std::string join_sources(const std::vector<std::string>& sources) {
  std::string out;
  for (const auto& s : sources) out += (out.empty() ? "" : " & ") + s;
  return out;
}

// Step 2 of the precedence for one field: the groups of the highest priority that set it, met.
// Returns the sources, empty when no matched group sets the field.
template <class T>
std::vector<std::string> resolve_from_groups(const FieldSpec<T>& spec,
                                             const std::vector<MatchedGroup>& groups, T& value) {
  std::vector<std::string> sources;
  std::optional<int64_t> priority;
  for (const MatchedGroup& g : groups) {
    const std::optional<T>& v = g.rule->rule.*(spec.in_rule);
    if (!v) continue;
    if (priority && g.rule->priority != *priority) break;
    if (!priority) {
      priority = g.rule->priority;
      value = *v;
      sources = {g.path};
      continue;
    }
    T met = spec.meet(value, *v);
    if (met == value) continue;  // what we hold is already at least as strict
    if (met == *v) {
      sources = {g.path};
    } else {
      sources.push_back(g.path);
    }
    value = std::move(met);
  }
  return sources;
}

template <class T>
void resolve_field(const FieldSpec<T>& spec, const PolicySet& set, const Rule* user_rule,
                   const std::string& user_path, const std::vector<MatchedGroup>& groups,
                   Resolution& out) {
  T& value = out.policy.*(spec.in_effective);
  std::string& source = out.sources[static_cast<size_t>(spec.field)];
  if (user_rule && user_rule->*(spec.in_rule)) {
    value = *(user_rule->*(spec.in_rule));
    source = user_path;
    return;
  }
  if (auto from_groups = resolve_from_groups(spec, groups, value); !from_groups.empty()) {
    source = join_sources(from_groups);
    return;
  }
  if (const auto& d = set.defaults.*(spec.in_rule)) {
    value = *d;
    source = kSourceDefaults;
    return;
  }
  value = builtin_defaults().*(spec.in_effective);
  source = kSourceBuiltin;
}

}  // namespace

Resolution resolve(const PolicySet& set, std::string_view user,
                   const std::vector<std::string>& groups) {
  Resolution out;
  out.user = std::string(user);
  std::vector<MatchedGroup> matched = matched_groups(set, groups);
  for (const auto& g : matched) out.groups.push_back(g.name);
  auto u = set.users.find(out.user);
  const Rule* user_rule = u == set.users.end() ? nullptr : &u->second;
  std::string user_path = rule_path("users", out.user);
  for_each_field(
      [&](const auto& spec) { resolve_field(spec, set, user_rule, user_path, matched, out); });
  return out;
}

}  // namespace appvirt::policies
