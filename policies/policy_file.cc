#include "policies/policy_file.h"

#include <toml++/toml.h>
#include <cstring>
#include <fstream>
#include <sstream>

#include "policies/policy_fields.h"

namespace appvirt::policies {

using nlohmann::json;

namespace {

int line_of(const toml::key& k, const toml::node& n) {
  if (k.source().begin.line > 0) return static_cast<int>(k.source().begin.line);
  return static_cast<int>(n.source().begin.line);
}

// TOML value → JSON value, so the builder's checks apply unchanged. Dates and times become their
// TOML text (every field then rejects them with the value shown); tables become objects.
json to_json(const toml::node& n) {
  if (auto s = n.as_string()) return s->get();
  if (auto i = n.as_integer()) return i->get();
  if (auto f = n.as_floating_point()) return f->get();
  if (auto b = n.as_boolean()) return b->get();
  if (auto a = n.as_array()) {
    json out = json::array();
    for (const toml::node& el : *a) out.push_back(to_json(el));
    return out;
  }
  if (auto t = n.as_table()) {
    json out = json::object();
    for (const auto& [k, v] : *t) out[std::string(k.str())] = to_json(v);
    return out;
  }
  std::ostringstream os;
  n.visit([&](const auto& v) { os << v; });
  return os.str();
}

RawRule raw_rule(std::string name, int line, const toml::table& t) {
  RawRule r{std::move(name), line, {}};
  for (const auto& [k, v] : t)
    r.values.push_back({std::string(k.str()), to_json(v), line_of(k, v)});
  return r;
}

class FileReader {
 public:
  explicit FileReader(const std::string& file) : file_(file) {}

  PolicySetResult read(const toml::table& root) {
    for (const auto& [k, v] : root) {
      std::string key(k.str());
      if (key == "defaults") {
        if (const toml::table* t = table_or_issue(k, v, "defaults")) {
          raw_.defaults = raw_rule("", line_of(k, v), *t);
        }
      } else if (key == "groups" || key == "users") {
        read_named_rules(k, v, key, key == "groups" ? raw_.groups : raw_.users);
      } else {
        add(line_of(k, v), rule_path("", key), "unknown key (expected defaults, groups or users)");
      }
    }
    return build_policy_set(raw_, file_, std::move(issues_));
  }

 private:
  void add(int line, std::string key, std::string message) {
    issues_.items.push_back({file_, line, std::move(key), std::move(message)});
  }

  const toml::table* table_or_issue(const toml::key& k, const toml::node& v,
                                    const std::string& path) {
    const toml::table* t = v.as_table();
    if (!t) add(line_of(k, v), path, "must be a table ([" + path + "])");
    return t;
  }

  // [groups.NAME] / [users.NAME]: each entry under `kind` must itself be a table.
  void read_named_rules(const toml::key& k, const toml::node& v, const std::string& kind,
                        std::vector<RawRule>& out) {
    const toml::table* t = table_or_issue(k, v, kind);
    if (!t) return;
    for (const auto& [name_key, rule] : *t) {
      std::string name(name_key.str());
      std::string path = rule_path(kind, name);
      if (const toml::table* rt = table_or_issue(name_key, rule, path)) {
        out.push_back(raw_rule(name, line_of(name_key, rule), *rt));
      }
    }
  }

  const std::string& file_;
  RawPolicySet raw_;
  PolicyIssues issues_;
};

void insert_json(toml::table& t, const std::string& key, const json& v) {
  if (v.is_string()) {
    t.insert_or_assign(key, v.get<std::string>());
  } else if (v.is_boolean()) {
    t.insert_or_assign(key, v.get<bool>());
  } else if (v.is_number_integer()) {
    t.insert_or_assign(key, v.get<int64_t>());
  } else if (v.is_array()) {
    toml::array a;
    for (const json& el : v) a.push_back(el.get<std::string>());  // only app ids are arrays
    t.insert_or_assign(key, std::move(a));
  }
}

toml::table rule_table(const Rule& rule) {
  toml::table t;
  for_each_field([&](const auto& spec) {
    if (const auto& v = rule.*(spec.in_rule)) {
      insert_json(t, std::string(spec.name()), spec.write(*v));
    }
  });
  return t;
}

}  // namespace

PolicySetResult parse_policy_toml(std::string_view text, const std::string& file_name) {
  toml::table root;
  try {
    root = toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    PolicyIssues issues;
    issues.items.push_back({file_name, static_cast<int>(e.source().begin.line), "",
                            "TOML syntax error: " + std::string(e.description())});
    return tl::unexpected(std::move(issues));
  }
  return FileReader(file_name).read(root);
}

PolicySetResult load_policy_file(const std::filesystem::path& file) {
  auto failure = [&](std::string message) {
    PolicyIssues issues;
    issues.items.push_back({file.string(), 0, "", std::move(message)});
    return tl::unexpected(std::move(issues));
  };
  // An ifstream opens a directory and then reads nothing: that must not pass as an empty policy.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return failure("cannot read: is a directory");
  std::ifstream in(file);
  if (!in) return failure(std::string("cannot open: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return failure("cannot read");
  return parse_policy_toml(ss.str(), file.string());
}

std::string policy_set_to_toml(const PolicySet& set) {
  toml::table root;
  root.insert_or_assign("defaults", rule_table(set.defaults));
  toml::table groups, users;
  for (const auto& [name, g] : set.groups) {
    toml::table t = rule_table(g.rule);
    t.insert_or_assign("priority", g.priority);
    groups.insert_or_assign(name, std::move(t));
  }
  for (const auto& [name, u] : set.users) users.insert_or_assign(name, rule_table(u));
  if (!groups.empty()) root.insert_or_assign("groups", std::move(groups));
  if (!users.empty()) root.insert_or_assign("users", std::move(users));
  std::ostringstream os;
  os << root << "\n";
  return os.str();
}

}  // namespace appvirt::policies
