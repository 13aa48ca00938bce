#pragma once
// The published applications and who may start them. Parsed from `[[apps]]` tables (in the
// broker config or a separate catalog file) into validated structs; entitlement is a pure
// function of an app and the user's name and groups, so it is unit tested without NSS.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"

namespace appvirt::broker {

enum class Isolation { container, vm };
const char* to_string(Isolation i);

struct AppLimits {
  std::optional<uint64_t> memory_max;
  std::optional<int64_t> cpu_weight;
  std::optional<int64_t> cpu_max_percent;
  std::optional<int64_t> pids_max;
  bool empty() const { return !memory_max && !cpu_weight && !cpu_max_percent && !pids_max; }
};

struct App {
  std::string id;                    // [a-z0-9][a-z0-9._-]*, used in URLs
  std::string name;                  // display name
  std::vector<std::string> command;  // argv; argv[0] absolute
  std::string icon;                  // URL or file name for the portal; may be empty
  std::vector<std::string> users;    // "*" = every authenticated user
  std::vector<std::string> groups;
  Isolation isolation = Isolation::container;
  AppLimits limits;                  // passed to hostd; empty = host defaults
};

class Catalog {
 public:
  Catalog() = default;
  explicit Catalog(std::vector<App> apps);

  const App* find(std::string_view id) const;
  const std::vector<App>& apps() const { return apps_; }
  // The apps user may start, in catalog order.
  std::vector<const App*> entitled(const std::string& user,
                                   const std::vector<std::string>& groups) const;

 private:
  std::vector<App> apps_;
};

bool is_entitled(const App& app, const std::string& user, const std::vector<std::string>& groups);

// Reads every `[[apps]]` entry of a config file (key prefix "apps"), recording problems on the
// reader with the file, line and key ("apps[2].command"). Checks unknown keys inside entries.
std::vector<App> read_apps(ConfigReader& reader);

// Loads a catalog file holding only `[[apps]]` tables.
Result<std::vector<App>> load_catalog_file(const std::string& path);

bool is_valid_app_id(std::string_view id);

}  // namespace appvirt::broker
