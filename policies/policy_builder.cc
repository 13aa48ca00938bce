#include "policies/policy_builder.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

#include "policies/policy_fields.h"

namespace appvirt::policies {

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "memory-max", "Memory_Max" or "max_session": slips worth naming in the error.
std::string suggestion_for(std::string_view key) {
  std::string k = lowercase(key);
  std::replace(k.begin(), k.end(), '-', '_');
  std::string best;
  size_t best_distance = 3;  // suggest only close matches
  auto consider = [&](std::string_view name) {
    size_t d = edit_distance(k, name);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(name);
    }
  };
  consider("priority");
  for (size_t i = 0; i < kFieldCount; ++i) consider(field_name(static_cast<Field>(i)));
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

// Sets rule's field named v.key from v.value. False when no field has that name; a value that
// fails validation leaves the field unset and fills `error`.
bool read_field(const RawValue& v, Rule& rule, std::string& error) {
  bool known = false;
  for_each_field([&](const auto& spec) {
    if (known || spec.name() != v.key) return;
    known = true;
    auto value = spec.read(v.value);
    if (value) {
      rule.*(spec.in_rule) = std::move(*value);
    } else {
      error = value.error();
    }
  });
  return known;
}

class Builder {
 public:
  Builder(const std::string& file, PolicyIssues& issues) : file_(file), issues_(issues) {}

  void add(int line, std::string key, std::string message) {
    issues_.items.push_back({file_, line, std::move(key), std::move(message)});
  }

  // priority is null for rules that take none (defaults, users).
  Rule read_rule(const RawRule& raw, const std::string& path, int64_t* priority) {
    Rule rule;
    for (const RawValue& v : raw.values) {
      std::string key = rule_path(path, v.key);
      if (v.value.is_null()) continue;  // JSON null: the field is not set
      if (v.key == "priority") {
        read_priority_value(v, key, priority);
        continue;
      }
      std::string error;
      if (!read_field(v, rule, error)) {
        add(v.line, key, "unknown key" + suggestion_for(v.key));
      } else if (!error.empty()) {
        add(v.line, key, error);
      }
    }
    return rule;
  }

  // Names must be valid, unique, and not differ from another only in letter case: user and group
  // names are matched exactly, so "Staff" next to "staff" is almost always a typo.
  void check_names(const std::vector<RawRule>& rules, std::string_view kind) {
    std::map<std::string, std::string> seen;  // lowercase -> name as written
    for (const RawRule& r : rules) {
      std::string path = rule_path(kind, r.name);
      if (!is_valid_principal_name(r.name)) {
        add(r.line, path,
            "is not a valid name (1-256 characters of A-Z a-z 0-9 . _ @ $ \\ -, not starting "
            "with -)");
      }
      auto [it, fresh] = seen.emplace(lowercase(r.name), r.name);
      if (fresh) continue;
      if (it->second == r.name) {
        add(r.line, path, "is defined twice");
      } else {
        add(r.line, path,
            "differs only in letter case from " + rule_path(kind, it->second) +
                " (names are matched exactly; use one spelling)");
      }
    }
  }

 private:
  void read_priority_value(const RawValue& v, const std::string& key, int64_t* priority) {
    if (!priority) {
      add(v.line, key, "unknown key (priority is only for [groups.NAME])");
      return;
    }
    auto p = read_priority(v.value);
    if (p) {
      *priority = *p;
    } else {
      add(v.line, key, p.error());
    }
  }

  const std::string& file_;
  PolicyIssues& issues_;
};

}  // namespace

PolicySetResult build_policy_set(const RawPolicySet& raw, const std::string& file,
                                 PolicyIssues issues) {
  Builder b(file, issues);
  PolicySet set;
  if (raw.defaults) set.defaults = b.read_rule(*raw.defaults, "defaults", nullptr);
  b.check_names(raw.groups, "groups");
  for (const RawRule& g : raw.groups) {
    GroupRule rule;
    rule.rule = b.read_rule(g, rule_path("groups", g.name), &rule.priority);
    set.groups.emplace(g.name, std::move(rule));
  }
  b.check_names(raw.users, "users");
  for (const RawRule& u : raw.users) {
    set.users.emplace(u.name, b.read_rule(u, rule_path("users", u.name), nullptr));
  }
  if (issues.items.empty()) return set;
  // In a file, report in line order; JSON issues all have line 0 and keep their order.
  std::stable_sort(issues.items.begin(), issues.items.end(),
                   [](const PolicyIssue& a, const PolicyIssue& b) { return a.line < b.line; });
  return tl::unexpected(std::move(issues));
}

}  // namespace appvirt::policies
