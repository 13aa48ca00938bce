#include "gateway/gateway_config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <set>

#include "common/config.h"
#include "common/tls_cert.h"

namespace appvirt::gateway {

namespace {

namespace fs = std::filesystem;

milliseconds get_ms(ConfigReader& r, std::string_view key, milliseconds def, int64_t min,
                    int64_t max) {
  return milliseconds(r.get_int(key, def.count(), min, max));
}

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof(buf) - 1) < 0 || !buf[0]) return "localhost";
  return buf;
}

void read_general(ConfigReader& r, GatewayConfig& c) {
  c.log_level = r.get_string("log_level", c.log_level);
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
  if (!levels.count(c.log_level)) {
    r.add_issue("log_level", "must be one of trace, debug, info, warn, error");
  }
  std::string prefer = r.get_string("endpoints.prefer", "unix");
  if (prefer == "unix") {
    c.prefer = EndpointPreference::kUnix;
  } else if (prefer == "tcp") {
    c.prefer = EndpointPreference::kTcp;
  } else {
    r.add_issue("endpoints.prefer", "must be \"unix\" or \"tcp\"");
  }
  std::string mode = r.get_string("relay.mode", "splice");
  if (mode == "splice") {
    c.relay_mode = RelayMode::kSplice;
  } else if (mode == "copy") {
    c.relay_mode = RelayMode::kCopy;
  } else {
    r.add_issue("relay.mode", "must be \"splice\" or \"copy\"");
  }
}

void read_listen_and_limits(ConfigReader& r, GatewayConfig& c) {
  c.listen.address = r.get_string("listen.address", c.listen.address);
  in6_addr scratch{};
  if (::inet_pton(AF_INET, c.listen.address.c_str(), &scratch) != 1 &&
      ::inet_pton(AF_INET6, c.listen.address.c_str(), &scratch) != 1) {
    r.add_issue("listen.address", "must be a numeric IPv4 or IPv6 address");
  }
  c.listen.port = static_cast<uint16_t>(r.get_int("listen.port", c.listen.port, 0, 65535));
  LimitsConfig& l = c.limits;
  l.max_connections = static_cast<size_t>(
      r.get_int("limits.max_connections", static_cast<int64_t>(l.max_connections), 1, 1'000'000));
  l.max_pre_routing = static_cast<size_t>(
      r.get_int("limits.max_pre_routing", static_cast<int64_t>(l.max_pre_routing), 1, 1'000'000));
  if (l.max_pre_routing > l.max_connections) {
    r.add_issue("limits.max_pre_routing", "must not exceed limits.max_connections");
  }
  l.first_pdu_timeout = get_ms(r, "limits.first_pdu_timeout_ms", l.first_pdu_timeout, 100, 60'000);
  l.connect_timeout = get_ms(r, "limits.connect_timeout_ms", l.connect_timeout, 100, 60'000);
}

void read_broker(ConfigReader& r, BrokerConfig& b) {
  auto url = r.get_optional_string("broker.url");
  if (!url) {
    r.add_issue("broker.url", "required (https://host:port of the broker)");
  } else if (auto parsed = parse_https_url(*url); !parsed) {
    r.add_issue("broker.url", parsed.error().message);
  } else {
    b.host = parsed->first;
    b.port = parsed->second;
  }
  // "required" only when the key is absent: a present but bad value has its own issue.
  auto required_path = [&](std::string_view key, std::string_view what) {
    if (!r.root().at_path(key).node()) r.add_issue(key, std::string("required (") + std::string(what) + ")");
    return r.get_absolute_path(key, {});
  };
  b.ca_file = required_path("broker.ca_file", "the broker's certificate or its CA, PEM");
  b.secret_file = required_path("broker.secret_file", "the internal API secret");
  b.server_name = r.get_string("broker.server_name", "");
  b.timeout = get_ms(r, "broker.timeout_ms", b.timeout, 100, 120'000);
  b.logon_timeout = get_ms(r, "broker.logon_timeout_ms", b.logon_timeout, 100, 600'000);
}

void read_logon(ConfigReader& r, LogonConfig& l) {
  l.enabled = r.get_bool("logon.enabled", l.enabled);
  l.cert_file = r.get_absolute_path("logon.cert_file", l.cert_file);
  l.key_file = r.get_absolute_path("logon.key_file", l.key_file);
  l.cert_common_name = r.get_string("logon.cert_common_name", host_name());
  if (l.cert_common_name.empty()) r.add_issue("logon.cert_common_name", "must not be empty");
  l.max_sessions = static_cast<size_t>(
      r.get_int("logon.max_sessions", static_cast<int64_t>(l.max_sessions), 1, 10'000));
  l.timeout = get_ms(r, "logon.timeout_ms", l.timeout, 1000, 600'000);
}

}  // namespace

Result<std::pair<std::string, uint16_t>> parse_https_url(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) return fail("must start with https://");
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@ ") != std::string_view::npos) {
    return fail("must be https://host[:port] without a path");
  }
  std::string_view host = rest, port_text;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("unterminated [IPv6] address");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return fail("junk after ]");
    if (!after.empty()) port_text = after.substr(1);
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
  }
  if (host.empty()) return fail("host missing");
  uint16_t port = 443;
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return fail("port must be 1..65535");
    }
    port = static_cast<uint16_t>(value);
  }
  return std::make_pair(std::string(host), port);
}

Result<GatewayConfig> parse_gateway_config(std::string_view text, const std::string& file_name) {
  auto reader = ConfigReader::parse(text, file_name);
  if (!reader) return tl::unexpected(reader.error());
  GatewayConfig c;
  read_general(*reader, c);
  read_listen_and_limits(*reader, c);
  read_broker(*reader, c.broker);
  read_logon(*reader, c.logon);
  reader->check_unknown_keys();
  if (!reader->ok()) {
    std::string report = reader->report();
    if (!report.empty() && report.back() == '\n') report.pop_back();
    return fail(report);
  }
  return c;
}

Result<GatewayConfig> load_gateway_config(const std::filesystem::path& file) {
  auto text = read_small_file(file);
  if (!text) return tl::unexpected(text.error());
  return parse_gateway_config(*text, file.string());
}

}  // namespace appvirt::gateway
