#include "session-host/sandbox/request.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>

namespace appvirt::sandbox {
namespace {

using nlohmann::json;

// Reads the fields of one JSON object, remembering which ones were used so unknown keys (a
// typo in hostd, a newer hostd) are reported instead of silently ignored.
class Fields {
 public:
  Fields(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  bool has(const std::string& key) const { return obj_.contains(key); }

  Result<uint64_t> number(const std::string& key, uint64_t min, uint64_t max) {
    used_.insert(key);
    if (!obj_.contains(key)) return fail(name(key) + " is missing");
    const json& v = obj_.at(key);
    if (!v.is_number_integer()) {
      return fail(name(key) + " must be an integer, got " + v.dump());
    }
    // The parser stores every non-negative integer as unsigned: what is left is negative.
    if (!v.is_number_unsigned()) return out_of_range(key, v.dump(), min, max);
    uint64_t n = v.get<uint64_t>();
    if (n < min || n > max) return out_of_range(key, v.dump(), min, max);
    return n;
  }

  Result<std::string> string(const std::string& key) {
    used_.insert(key);
    if (!obj_.contains(key)) return fail(name(key) + " is missing");
    const json& v = obj_.at(key);
    if (!v.is_string()) return fail(name(key) + " must be a string, got " + v.dump());
    return v.get<std::string>();
  }

  Result<std::vector<std::string>> strings(const std::string& key) {
    used_.insert(key);
    if (!obj_.contains(key)) return fail(name(key) + " is missing");
    const json& v = obj_.at(key);
    if (!v.is_array()) return fail(name(key) + " must be an array of strings");
    std::vector<std::string> out;
    for (const json& e : v) {
      if (!e.is_string()) return fail(name(key) + " must be an array of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  const json* object(const std::string& key) {
    used_.insert(key);
    return obj_.contains(key) ? &obj_.at(key) : nullptr;
  }

  Result<> no_unknown() const {
    for (const auto& [key, value] : obj_.items()) {
      if (!used_.count(key)) return fail("unknown field " + name(key));
    }
    return {};
  }

  std::string name(const std::string& key) const { return where_ + key; }

 private:
  tl::unexpected<Error> out_of_range(const std::string& key, const std::string& got, uint64_t min,
                                     uint64_t max) const {
    return fail(name(key) + " = " + got + " is out of range [" + std::to_string(min) + ", " +
                std::to_string(max) + "]");
  }

  const json& obj_;
  std::string where_;
  std::set<std::string> used_;
};

Result<json> parse_object(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse with exceptions only to get the position for the message.
    try {
      json again = json::parse(text);
      (void)again;
    } catch (const json::parse_error& e) {
      return fail(std::string("request is not valid JSON: ") + e.what());
    }
    return fail("request is not valid JSON");
  }
  if (!j.is_object()) return fail("request must be a JSON object");
  return j;
}

// Absolute, normalised path: no "." or ".." components, no "//", no trailing "/".
Result<std::string> absolute_path(Fields& f, const std::string& key) {
  auto p = f.string(key);
  if (!p) return p;
  bool ok = p->size() > 1 && p->front() == '/' && p->back() != '/' &&
            p->find("//") == std::string::npos && p->find("/./") == std::string::npos &&
            p->find("/../") == std::string::npos && !p->ends_with("/..") && !p->ends_with("/.") &&
            p->find('\0') == std::string::npos && p->find(',') == std::string::npos;
  if (!ok) return fail(f.name(key) + " must be a normalised absolute path, got \"" + *p + "\"");
  return p;
}

Result<Identity> parse_identity(Fields& f) {
  constexpr uint64_t kMaxId = std::numeric_limits<uint32_t>::max() - 1;  // -1 means "unchanged"
  Identity id;
  // uid/gid 0 would hand the user root inside (and root's files on the host through the home).
  auto uid = f.number("uid", 1, kMaxId);
  if (!uid) return tl::unexpected(uid.error());
  auto gid = f.number("gid", 1, kMaxId);
  if (!gid) return tl::unexpected(gid.error());
  id.uid = static_cast<uid_t>(*uid);
  id.gid = static_cast<gid_t>(*gid);
  const json* groups = f.object("groups");
  if (groups == nullptr) return fail(f.name("groups") + " is missing");
  if (!groups->is_array()) return fail(f.name("groups") + " must be an array of gids");
  for (const json& g : *groups) {
    if (!g.is_number_unsigned() || g.get<uint64_t>() < 1 || g.get<uint64_t>() > kMaxId) {
      return fail(f.name("groups") + " has a bad gid " + g.dump() + " (must be 1.." +
                  std::to_string(kMaxId) + ")");
    }
    id.groups.push_back(static_cast<gid_t>(g.get<uint64_t>()));
  }
  return id;
}

Result<> check_user_name(const std::string& user) {
  bool ok = !user.empty() && user.size() <= 32 &&
            (std::islower(static_cast<unsigned char>(user[0])) || user[0] == '_') &&
            std::all_of(user.begin(), user.end(), [](char c) {
              return std::islower(static_cast<unsigned char>(c)) ||
                     std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                     c == '.';
            });
  if (!ok) return fail("user \"" + user + "\" is not a valid user name");
  return {};
}

Result<> check_hostname(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
  if (!ok) return fail("hostname \"" + name + "\" is not a valid host name");
  return {};
}

Result<> parse_create_paths(Fields& f, CreateRequest& req) {
  auto home = absolute_path(f, "home");
  if (!home) return tl::unexpected(home.error());
  auto runtime = absolute_path(f, "runtime_dir");
  if (!runtime) return tl::unexpected(runtime.error());
  auto cgroup = f.string("cgroup");
  if (!cgroup) return tl::unexpected(cgroup.error());
  if (auto r = validate_cgroup_path(*cgroup); !r) return r;
  req.home = *home;
  req.runtime_dir = *runtime;
  req.cgroup = *cgroup;
  if (f.has("log_file")) {
    auto log = absolute_path(f, "log_file");
    if (!log) return tl::unexpected(log.error());
    req.log_file = *log;
  }
  return {};
}

Result<> parse_create_options(Fields& f, CreateRequest& req) {
  if (f.has("hostname")) {
    auto h = f.string("hostname");
    if (!h) return tl::unexpected(h.error());
    if (auto r = check_hostname(*h); !r) return r;
    req.hostname = *h;
  }
  if (f.has("network")) {
    auto n = f.string("network");
    if (!n) return tl::unexpected(n.error());
    if (*n != "loopback") return fail("network \"" + *n + "\" is not supported (loopback)");
    req.network = *n;
  }
  if (const json* limits = f.object("limits")) {
    auto l = limits_from_json(*limits);
    if (!l) return tl::unexpected(l.error());
    req.limits = *l;
  }
  return {};
}

Result<> parse_exec_command(Fields& f, ExecRequest& req) {
  auto argv = f.strings("argv");
  if (!argv) return tl::unexpected(argv.error());
  if (argv->empty() || argv->front().empty() || argv->front()[0] != '/') {
    return fail("argv must be non-empty and argv[0] an absolute path");
  }
  req.argv = *argv;
  if (f.has("env")) {
    auto env = f.strings("env");
    if (!env) return tl::unexpected(env.error());
    for (const std::string& e : *env) {
      if (e.find('=') == std::string::npos || e.front() == '=') {
        return fail("env entry \"" + e + "\" is not NAME=value");
      }
    }
    req.env = *env;
  }
  if (f.has("cwd")) {
    auto cwd = f.string("cwd");
    if (!cwd) return tl::unexpected(cwd.error());
    if (cwd->empty() || cwd->front() != '/') return fail("cwd must be an absolute path");
    req.cwd = *cwd;
  }
  return {};
}

}  // namespace

Result<Limits> limits_from_json(const json& j) {
  if (!j.is_object()) return fail("limits must be an object");
  Fields f(j, "limits.");
  Limits l;
  struct Spec {
    const char* key;
    uint64_t min, max;
  };
  // Floors keep a group usable: the init alone needs a few MiB and one pid.
  for (const Spec& s : {Spec{"memory_max", 4ull << 20, 1ull << 50}, Spec{"cpu_weight", 1, 10000},
                        Spec{"cpu_max_percent", 1, 100000}, Spec{"pids_max", 2, 4194304}}) {
    if (!f.has(s.key)) continue;
    auto n = f.number(s.key, s.min, s.max);
    if (!n) return tl::unexpected(n.error());
    std::string key = s.key;
    if (key == "memory_max") l.memory_max = *n;
    if (key == "cpu_weight") l.cpu_weight = static_cast<uint32_t>(*n);
    if (key == "cpu_max_percent") l.cpu_max_percent = static_cast<uint32_t>(*n);
    if (key == "pids_max") l.pids_max = *n;
  }
  if (auto r = f.no_unknown(); !r) return tl::unexpected(r.error());
  return l;
}

json limits_to_json(const Limits& l) {
  json j = json::object();
  if (l.memory_max) j["memory_max"] = *l.memory_max;
  if (l.cpu_weight) j["cpu_weight"] = *l.cpu_weight;
  if (l.cpu_max_percent) j["cpu_max_percent"] = *l.cpu_max_percent;
  if (l.pids_max) j["pids_max"] = *l.pids_max;
  return j;
}

Result<CreateRequest> parse_create_request(std::string_view text) {
  auto j = parse_object(text);
  if (!j) return tl::unexpected(j.error());
  Fields f(*j, "");
  CreateRequest req;
  auto user = f.string("user");
  if (!user) return tl::unexpected(user.error());
  if (auto r = check_user_name(*user); !r) return tl::unexpected(r.error());
  req.user = *user;
  auto id = parse_identity(f);
  if (!id) return tl::unexpected(id.error());
  req.id = *id;
  if (auto r = parse_create_paths(f, req); !r) return tl::unexpected(r.error());
  if (auto r = parse_create_options(f, req); !r) return tl::unexpected(r.error());
  if (auto r = f.no_unknown(); !r) return tl::unexpected(r.error());
  return req;
}

Result<ExecRequest> parse_exec_request(std::string_view text) {
  auto j = parse_object(text);
  if (!j) return tl::unexpected(j.error());
  Fields f(*j, "");
  ExecRequest req;
  auto init = f.number("init_pid", 2, 4194304);
  if (!init) return tl::unexpected(init.error());
  req.init_pid = static_cast<pid_t>(*init);
  if (f.has("init_start_time")) {
    auto st = f.number("init_start_time", 0, std::numeric_limits<uint64_t>::max());
    if (!st) return tl::unexpected(st.error());
    req.init_start_time = *st;
  }
  auto id = parse_identity(f);
  if (!id) return tl::unexpected(id.error());
  req.id = *id;
  auto cgroup = f.string("cgroup");
  if (!cgroup) return tl::unexpected(cgroup.error());
  if (auto r = validate_cgroup_path(*cgroup); !r) return tl::unexpected(r.error());
  req.cgroup = *cgroup;
  if (auto r = parse_exec_command(f, req); !r) return tl::unexpected(r.error());
  if (f.has("log_file")) {
    auto log = absolute_path(f, "log_file");
    if (!log) return tl::unexpected(log.error());
    req.log_file = *log;
  }
  if (auto r = f.no_unknown(); !r) return tl::unexpected(r.error());
  return req;
}

std::string reply_ok(json fields) {
  json j = {{"ok", true}};
  for (auto& [key, value] : fields.items()) j[key] = value;
  return j.dump();
}

std::string reply_error(const Error& error) {
  return json{{"ok", false}, {"error", error.str()}}.dump();
}

}  // namespace appvirt::sandbox
