#include "policies/policy_json.h"

#include "policies/policy_fields.h"

namespace appvirt::policies {

using nlohmann::json;

namespace {

RawRule raw_rule(std::string name, const json& obj) {
  RawRule r{std::move(name), 0, {}};
  for (const auto& [k, v] : obj.items()) r.values.push_back({k, v, 0});
  return r;
}

class JsonReader {
 public:
  PolicySetResult read(const json& j) {
    if (!j.is_object()) {
      add("", "the policy set must be a JSON object {\"defaults\",\"groups\",\"users\"}");
      return tl::unexpected(std::move(issues_));
    }
    for (const auto& [key, v] : j.items()) {
      if (v.is_null()) continue;
      if (key == "defaults") {
        if (object_or_issue(v, "defaults")) raw_.defaults = raw_rule("", v);
      } else if (key == "groups" || key == "users") {
        read_named_rules(v, key, key == "groups" ? raw_.groups : raw_.users);
      } else {
        add(rule_path("", key), "unknown key (expected defaults, groups or users)");
      }
    }
    return build_policy_set(raw_, "", std::move(issues_));
  }

 private:
  void add(std::string path, std::string message) {
    issues_.items.push_back({"", 0, std::move(path), std::move(message)});
  }

  bool object_or_issue(const json& v, const std::string& path) {
    if (v.is_object()) return true;
    add(path, "must be an object");
    return false;
  }

  void read_named_rules(const json& v, const std::string& kind, std::vector<RawRule>& out) {
    if (!object_or_issue(v, kind)) return;
    for (const auto& [name, rule] : v.items()) {
      if (rule.is_null())
        rule_null_issue(kind, name);
      else if (object_or_issue(rule, rule_path(kind, name)))
        out.push_back(raw_rule(name, rule));
    }
  }

  // A null rule would read as "no such rule"; say so rather than guess what the client meant.
  void rule_null_issue(const std::string& kind, const std::string& name) {
    add(rule_path(kind, name), "must be an object (omit the name to delete the rule)");
  }

  RawPolicySet raw_;
  PolicyIssues issues_;
};

}  // namespace

PolicySetResult policy_set_from_json(const json& j) { return JsonReader().read(j); }

PolicySetResult policy_set_from_json_text(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    PolicyIssues issues;
    issues.items.push_back({"", 0, "", "JSON syntax error"});
    return tl::unexpected(std::move(issues));
  }
  return policy_set_from_json(j);
}

json rule_to_json(const Rule& rule) {
  json out = json::object();
  for_each_field([&](const auto& spec) {
    if (const auto& v = rule.*(spec.in_rule)) out[std::string(spec.name())] = spec.write(*v);
  });
  return out;
}

json policy_set_to_json(const PolicySet& set) {
  json groups = json::object(), users = json::object();
  for (const auto& [name, g] : set.groups) {
    json r = rule_to_json(g.rule);
    r["priority"] = g.priority;
    groups[name] = std::move(r);
  }
  for (const auto& [name, u] : set.users) users[name] = rule_to_json(u);
  return {{"defaults", rule_to_json(set.defaults)}, {"groups", groups}, {"users", users}};
}

json effective_to_json(const EffectivePolicy& p) {
  json out = json::object();
  for_each_field([&](const auto& spec) {
    out[std::string(spec.name())] = spec.write(p.*(spec.in_effective));
  });
  return out;
}

json resolution_to_json(const Resolution& r) {
  json sources = json::object();
  for (size_t i = 0; i < kFieldCount; ++i)
    sources[field_name(static_cast<Field>(i))] = r.sources[i];
  return {{"user", r.user},
          {"groups", r.groups},
          {"policy", effective_to_json(r.policy)},
          {"sources", sources}};
}

json issues_to_json(const PolicyIssues& issues) {
  json out = json::array();
  for (const auto& i : issues.items) {
    json item = {{"path", i.key}, {"message", i.message}};
    if (i.line > 0) item["line"] = i.line;
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace appvirt::policies
