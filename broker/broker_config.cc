#include "broker/broker_config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <climits>
#include <set>

#include "common/config.h"
#include "common/tls_cert.h"
#include "policies/policy_file.h"

namespace appvirt::broker {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

seconds get_seconds(ConfigReader& r, std::string_view key, seconds def, int64_t min, int64_t max) {
  return seconds(r.get_int(key, def.count(), min, max));
}

milliseconds get_ms(ConfigReader& r, std::string_view key, milliseconds def, int64_t min,
                    int64_t max) {
  return milliseconds(r.get_int(key, def.count(), min, max));
}

std::string default_gateway() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof(buf) - 1) < 0 || !buf[0]) return "localhost:3389";
  return std::string(buf) + ":3389";
}

void read_general(ConfigReader& r, BrokerConfig& c) {
  c.log_level = r.get_string("log_level", c.log_level);
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
  if (!levels.count(c.log_level)) {
    r.add_issue("log_level", "must be one of trace, debug, info, warn, error");
  }
  c.state_dir = r.get_absolute_path("state_dir", c.state_dir);
  c.database = r.get_absolute_path("database", c.state_dir / "broker.db");
  c.gateway_address = r.get_string("gateway_address", default_gateway());
  if (c.gateway_address.empty() ||
      c.gateway_address.find_first_of(" \t\r\n") != std::string::npos) {
    r.add_issue("gateway_address", "must be a host or host:port without spaces");
  }
  c.pam_service = r.get_string("pam_service", c.pam_service);
  if (c.pam_service.empty() || c.pam_service.find('/') != std::string::npos) {
    r.add_issue("pam_service", "must be a PAM service name (a file name in /etc/pam.d)");
  }
  c.admin_group = r.get_string("admin_group", c.admin_group);
  c.auth_threads = static_cast<int>(r.get_int("auth_threads", c.auth_threads, 1, 64));
  c.catalog_file = r.get_absolute_path("catalog_file", {});
  c.policy_file = r.get_absolute_path("policy_file", {});
}

void read_listen(ConfigReader& r, ListenConfig& l) {
  l.address = r.get_string("listen.address", l.address);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, l.address.c_str(), buf) != 1 &&
      ::inet_pton(AF_INET6, l.address.c_str(), buf) != 1) {
    r.add_issue("listen.address", "must be an IPv4 or IPv6 address literal");
  }
  l.port = static_cast<uint16_t>(r.get_int("listen.port", l.port, 0, 65535));
  l.tls_cert = r.get_absolute_path("listen.tls_cert", {});
  l.tls_key = r.get_absolute_path("listen.tls_key", {});
  if (l.tls_cert.empty() != l.tls_key.empty()) {
    r.add_issue(l.tls_cert.empty() ? "listen.tls_key" : "listen.tls_cert",
                "listen.tls_cert and listen.tls_key go together");
  }
  l.max_connections = static_cast<std::size_t>(
      r.get_int("listen.max_connections", static_cast<int64_t>(l.max_connections), 1, 100000));
  l.max_body_bytes = static_cast<std::size_t>(
      r.get_int("listen.max_body_bytes", static_cast<int64_t>(l.max_body_bytes), 256, 16 << 20));
  l.max_header_bytes = static_cast<std::size_t>(r.get_int(
      "listen.max_header_bytes", static_cast<int64_t>(l.max_header_bytes), 1024, 1 << 20));
  l.handshake_timeout = get_ms(r, "listen.handshake_timeout_ms", l.handshake_timeout, 100, 600'000);
  l.header_timeout = get_ms(r, "listen.header_timeout_ms", l.header_timeout, 100, 600'000);
  l.body_timeout = get_ms(r, "listen.body_timeout_ms", l.body_timeout, 100, 600'000);
}

void read_sessions(ConfigReader& r, BrokerConfig& c) {
  c.web_session_ttl = get_seconds(r, "web.session_ttl_seconds", c.web_session_ttl, 60, 30 * 86400);
  c.web_session_idle = get_seconds(r, "web.idle_timeout_seconds", c.web_session_idle, 60, 30 * 86400);
  c.web_root = r.get_absolute_path("web.root", APPVIRT_WEB_ROOT);
  c.launch_token_ttl = get_seconds(r, "launch.token_ttl_seconds", c.launch_token_ttl, 5, 600);
  c.default_width = static_cast<int>(r.get_int("launch.width", c.default_width, 64, 8192));
  c.default_height = static_cast<int>(r.get_int("launch.height", c.default_height, 64, 8192));
  c.hostd_timeout = get_ms(r, "launch.hostd_timeout_ms", c.hostd_timeout, 1000, 600'000);
  LockoutConfig& l = c.lockout;
  l.max_failures_per_user =
      static_cast<int>(r.get_int("lockout.max_failures_per_user", l.max_failures_per_user, 1, 1000));
  l.max_failures_per_address = static_cast<int>(
      r.get_int("lockout.max_failures_per_address", l.max_failures_per_address, 1, 100000));
  l.window = get_seconds(r, "lockout.window_seconds", l.window, 1, 86400);
  l.lockout = get_seconds(r, "lockout.lockout_seconds", l.lockout, 1, 86400);
}

void read_internal(ConfigReader& r, BrokerConfig& c) {
  c.gateway_secret_file = r.get_absolute_path("internal.gateway_secret_file", {});
  c.host_secret_file = r.get_absolute_path("internal.host_secret_file", {});
  c.host_report_timeout =
      get_seconds(r, "internal.host_report_timeout_seconds", c.host_report_timeout, 2, 3600);
  c.host_poll_interval =
      get_ms(r, "internal.host_poll_interval_ms", c.host_poll_interval, 100, 600'000);
}

void read_hosts(ConfigReader& r, BrokerConfig& c) {
  const toml::node* node = r.root().get("hosts");
  if (!node) return;
  const toml::array* arr = node->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    r.add_issue("hosts", "must be an array of tables ([[hosts]])");
    return;
  }
  static const std::set<std::string> known = {"name", "socket", "capacity"};
  std::set<std::string> names;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    std::string p = "hosts[" + std::to_string(i) + "]";
    for (const auto& [k, v] : *arr->get(i)->as_table()) {
      if (!known.count(std::string(k.str()))) r.add_issue(p + "." + std::string(k.str()), "unknown key");
    }
    HostConfig h;
    h.name = r.get_string(p + ".name", "");
    if (h.name.empty() || h.name.size() > 64) r.add_issue(p + ".name", "required, 1-64 characters");
    if (!h.name.empty() && !names.insert(h.name).second) r.add_issue(p + ".name", "duplicate host name");
    h.socket = r.get_absolute_path(p + ".socket", "/run/appvirt/hostd.sock").string();
    h.capacity = static_cast<int>(r.get_int(p + ".capacity", h.capacity, 0, 100000));
    c.hosts.push_back(std::move(h));
  }
}

Result<void> finish(ConfigReader& r) {
  if (r.ok()) return {};
  std::string report = r.report();
  if (!report.empty() && report.back() == '\n') report.pop_back();
  return fail(report);
}

}  // namespace

Result<BrokerConfig> parse_broker_config(std::string_view text, const std::string& file_name) {
  auto reader = ConfigReader::parse(text, file_name);
  if (!reader) return tl::unexpected(reader.error());
  BrokerConfig c;
  read_general(*reader, c);
  read_listen(*reader, c.listen);
  read_sessions(*reader, c);
  read_internal(*reader, c);
  read_hosts(*reader, c);
  c.apps = read_apps(*reader);
  reader->check_unknown_keys({"apps", "hosts"});
  if (auto r = finish(*reader); !r) return tl::unexpected(r.error());
  return c;
}

Result<BrokerConfig> load_broker_config(const std::filesystem::path& file) {
  auto text = read_small_file(file);
  if (!text) return tl::unexpected(text.error());
  auto c = parse_broker_config(*text, file.string());
  if (!c) return c;
  if (!c->policy_file.empty()) {
    auto set = policies::load_policy_file(c->policy_file);
    if (!set) {
      std::string report = set.error().report();
      if (!report.empty() && report.back() == '\n') report.pop_back();
      return fail(report);
    }
    c->policies = std::move(*set);
  }
  if (c->catalog_file.empty()) return c;
  auto more = load_catalog_file(c->catalog_file.string());
  if (!more) return tl::unexpected(more.error());
  for (App& a : *more) {
    for (const App& have : c->apps) {
      if (have.id == a.id) {
        return fail(c->catalog_file.string() + ": apps: duplicate app id " + a.id + " (also in " +
                    file.string() + ")");
      }
    }
    c->apps.push_back(std::move(a));
  }
  return c;
}

}  // namespace appvirt::broker
