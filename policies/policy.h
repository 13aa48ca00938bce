#pragma once
// The policy model: what an admin may decide per user and per group, as rules in which every field
// is optional, and the fully resolved EffectivePolicy a daemon acts on. The file format
// (policy_file.h), the admin API's JSON (policy_json.h) and the resolver (resolver.h) all work on
// these structs; docs/policies.md describes the fields, their ranges and the precedence.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace appvirt::policies {

enum class Isolation { container, vm };
// Direction of clipboard transfer: to_client = copy out of the published app into the user's
// machine; to_server = paste from the user's machine into the app.
enum class Clipboard { none, to_client, to_server, both };
// Network of the user's sandbox: none = no interface at all, loopback = only `lo` (the default and
// what hostd implements today), full = outbound access through the host.
enum class Network { none, loopback, full };

const char* to_string(Isolation v);
const char* to_string(Clipboard v);
const char* to_string(Network v);
std::optional<Isolation> isolation_from_string(std::string_view s);
std::optional<Clipboard> clipboard_from_string(std::string_view s);
std::optional<Network> network_from_string(std::string_view s);

// A resource bound that may be "unlimited" (nullopt).
struct Limit {
  std::optional<uint64_t> value;

  static Limit unlimited() { return {}; }
  static Limit of(uint64_t v) { return {v}; }
  bool is_unlimited() const { return !value.has_value(); }
  bool operator==(const Limit&) const = default;
};

struct ScreenSize {
  int width = 0;
  int height = 0;
  bool operator==(const ScreenSize&) const = default;
};

// Entitled application ids. `all` ("*" in files) means every app the catalog lets the user see;
// otherwise only the listed ids, and only if the catalog lets the user see them too.
struct AppList {
  bool all = false;
  std::set<std::string> ids;

  static AppList everything() { return {true, {}}; }
  bool allows(std::string_view app_id) const;
  bool operator==(const AppList&) const = default;
};

// One rule: [defaults], [groups.NAME] or [users.NAME]. Unset fields fall through to the next rule
// in precedence order (docs/policies.md).
struct Rule {
  std::optional<Isolation> isolation;
  std::optional<int64_t> cpu_weight;    // cgroup v2 scale 1..10000, 100 = an even share
  std::optional<Limit> cpu_max;         // percent of one core
  std::optional<Limit> memory_max;      // bytes
  std::optional<Limit> pids_max;        // processes + threads
  std::optional<int64_t> max_sessions;  // concurrent sessions of the user, all hosts together
  std::optional<std::chrono::seconds> idle_timeout;        // 0 = never
  std::optional<std::chrono::seconds> disconnect_timeout;  // 0 = never
  std::optional<AppList> apps;
  std::optional<Clipboard> clipboard;
  std::optional<bool> drive_redirection;
  std::optional<Network> network;
  std::optional<ScreenSize> max_resolution;
  // isolation "container" only: a VM session when every container host is full.
  std::optional<bool> overflow_to_vm;

  bool operator==(const Rule&) const = default;
};

struct GroupRule {
  // Between groups of one user, the higher priority wins field by field; see resolver.h for ties.
  int64_t priority = 0;
  Rule rule;
  bool operator==(const GroupRule&) const = default;
};

// Everything one policy file (or one admin API version) holds.
struct PolicySet {
  Rule defaults;
  std::map<std::string, GroupRule> groups;  // key: group name, matched exactly
  std::map<std::string, Rule> users;        // key: user name, matched exactly
  bool operator==(const PolicySet&) const = default;
};

// A resolved policy: every field has a value.
struct EffectivePolicy {
  Isolation isolation = Isolation::container;
  int64_t cpu_weight = 100;
  Limit cpu_max;
  Limit memory_max;
  Limit pids_max;
  int64_t max_sessions = 10;
  std::chrono::seconds idle_timeout{0};
  std::chrono::seconds disconnect_timeout{3600};
  AppList apps = AppList::everything();
  Clipboard clipboard = Clipboard::both;
  bool drive_redirection = false;
  Network network = Network::loopback;
  ScreenSize max_resolution{3840, 2160};
  bool overflow_to_vm = false;

  // The requested screen size capped to max_resolution, dimension by dimension.
  ScreenSize clamp(ScreenSize requested) const;
  bool clipboard_to_client() const;
  bool clipboard_to_server() const;
  bool operator==(const EffectivePolicy&) const = default;
};

// The values a field takes when no rule sets it (the "builtin" source). Documented in
// docs/policies.md; change both together.
EffectivePolicy builtin_defaults();

// The fields, in the order of the documentation and of every listing.
enum class Field {
  isolation,
  cpu_weight,
  cpu_max,
  memory_max,
  pids_max,
  max_sessions,
  idle_timeout,
  disconnect_timeout,
  apps,
  clipboard,
  drive_redirection,
  network,
  max_resolution,
  overflow_to_vm,
};
inline constexpr size_t kFieldCount = 14;
const char* field_name(Field f);
std::optional<Field> field_from_name(std::string_view name);

// User and group names: 1..256 characters of [A-Za-z0-9._@$\-], not starting with '-'
// (covers local names, "first.last", "user@REALM" and Samba's "host$").
bool is_valid_principal_name(std::string_view name);

// App ids: 1..64 characters [a-z0-9._-], starting with a letter or digit (the catalog's rule,
// broker/catalog.h; kept here too because daemons → libraries, never the other way).
bool is_valid_app_id(std::string_view id);

// "groups.staff" / "users.alice"; a name outside TOML's bare-key characters is quoted:
// users."john.doe". Used for rule sources and in every error path; an empty kind gives just the
// (quoted if needed) name.
std::string rule_path(std::string_view kind, std::string_view name);

// A validation problem. From a file: file and line set ("policies.toml:12: groups.staff.memory_max:
// must be ..."); from JSON: file empty, line 0 ("groups.staff.memory_max: must be ...").
struct PolicyIssue {
  std::string file;
  int line = 0;
  std::string key;  // dotted path of the offending key; empty for a syntax error
  std::string message;
  std::string str() const;
};

struct PolicyIssues {
  std::vector<PolicyIssue> items;
  // One issue per line.
  std::string report() const;
};

}  // namespace appvirt::policies
