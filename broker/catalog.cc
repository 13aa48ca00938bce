#include "broker/catalog.h"

#include <algorithm>
#include <set>

namespace appvirt::broker {

namespace {

const std::set<std::string> kAppKeys = {"id",     "name",   "command",   "icon",
                                        "users",  "groups", "isolation", "limits"};
const std::set<std::string> kLimitKeys = {"memory_max", "cpu_weight", "cpu_max_percent",
                                          "pids_max"};

void check_app_keys(ConfigReader& r, const toml::table& t, const std::string& prefix) {
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    if (!kAppKeys.count(key)) {
      r.add_issue(prefix + "." + key, "unknown key");
    } else if (key == "limits") {
      const toml::table* lt = v.as_table();
      if (!lt) {
        r.add_issue(prefix + ".limits", "must be a table");
        continue;
      }
      for (const auto& [lk, lv] : *lt) {
        if (!kLimitKeys.count(std::string(lk.str()))) {
          r.add_issue(prefix + ".limits." + std::string(lk.str()), "unknown key");
        }
      }
    }
  }
}

AppLimits read_limits(ConfigReader& r, const std::string& p) {
  AppLimits l;
  l.memory_max = r.get_optional_size(p + ".memory_max", 16ull << 20, 1ull << 40);
  l.cpu_weight = r.get_optional_int(p + ".cpu_weight", 1, 10000);
  l.cpu_max_percent = r.get_optional_int(p + ".cpu_max_percent", 1, 100000);
  l.pids_max = r.get_optional_int(p + ".pids_max", 8, 4194304);
  return l;
}

App read_app(ConfigReader& r, const std::string& p) {
  App a;
  a.id = r.get_string(p + ".id", "");
  if (!is_valid_app_id(a.id)) {
    r.add_issue(p + ".id", "required: 1-64 characters [a-z0-9._-], starting with a letter or digit");
  }
  a.name = r.get_string(p + ".name", a.id);
  a.command = r.get_string_array(p + ".command", {});
  if (a.command.empty() || a.command[0].empty() || a.command[0][0] != '/') {
    r.add_issue(p + ".command", "required: an argv array whose first element is an absolute path");
  }
  a.icon = r.get_string(p + ".icon", "");
  a.users = r.get_string_array(p + ".users", {});
  a.groups = r.get_string_array(p + ".groups", {});
  if (a.users.empty() && a.groups.empty()) {
    r.add_issue(p + ".users", "an app needs users or groups (users = [\"*\"] for everyone)");
  }
  std::string iso = r.get_string(p + ".isolation", "container");
  if (iso == "vm") {
    a.isolation = Isolation::vm;
  } else if (iso != "container") {
    r.add_issue(p + ".isolation", "must be \"container\" or \"vm\"");
  }
  a.limits = read_limits(r, p + ".limits");
  return a;
}

}  // namespace

const char* to_string(Isolation i) { return i == Isolation::vm ? "vm" : "container"; }

bool is_valid_app_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(id[0])) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

Catalog::Catalog(std::vector<App> apps) : apps_(std::move(apps)) {}

const App* Catalog::find(std::string_view id) const {
  for (const App& a : apps_) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

std::vector<const App*> Catalog::entitled(const std::string& user,
                                          const std::vector<std::string>& groups) const {
  std::vector<const App*> out;
  for (const App& a : apps_) {
    if (is_entitled(a, user, groups)) out.push_back(&a);
  }
  return out;
}

bool is_entitled(const App& app, const std::string& user, const std::vector<std::string>& groups) {
  for (const auto& u : app.users) {
    if (u == "*" || u == user) return true;
  }
  for (const auto& g : app.groups) {
    if (std::find(groups.begin(), groups.end(), g) != groups.end()) return true;
  }
  return false;
}

std::vector<App> read_apps(ConfigReader& r) {
  std::vector<App> out;
  const toml::node* node = r.root().get("apps");
  if (!node) return out;
  const toml::array* arr = node->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    r.add_issue("apps", "must be an array of tables ([[apps]])");
    return out;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    std::string p = "apps[" + std::to_string(i) + "]";
    check_app_keys(r, *arr->get(i)->as_table(), p);
    App a = read_app(r, p);
    if (!a.id.empty() && !seen.insert(a.id).second) r.add_issue(p + ".id", "duplicate app id");
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<App>> load_catalog_file(const std::string& path) {
  auto reader = ConfigReader::load(path);
  if (!reader) return tl::unexpected(reader.error());
  std::vector<App> apps = read_apps(*reader);
  reader->check_unknown_keys({"apps"});
  if (!reader->ok()) {
    std::string report = reader->report();
    if (!report.empty() && report.back() == '\n') report.pop_back();
    return fail(report);
  }
  return apps;
}

}  // namespace appvirt::broker
