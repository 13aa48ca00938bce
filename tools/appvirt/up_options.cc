#include "tools/appvirt/up_options.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <regex>
#include <vector>

namespace appvirt::up {

void add_up_flags(CLI::App& cmd, UpOptions& opts, std::string& demo_spec) {
  cmd.add_option("--state-dir", opts.state_dir, "generated configs, secrets, databases and logs")
      ->capture_default_str();
  cmd.add_option("--runtime-dir", opts.runtime_dir, "hostd's control socket and session runtime dirs")
      ->capture_default_str();
  cmd.add_option("--http-port", opts.http_port, "broker HTTPS port (portal and API)")
      ->capture_default_str()->check(CLI::Range(1, 65535));
  cmd.add_option("--rdp-port", opts.rdp_port, "gateway RDP port")
      ->capture_default_str()->check(CLI::Range(1, 65535));
  cmd.add_option("--bind", opts.bind, "listen address of broker and gateway (numeric)")
      ->capture_default_str();
  cmd.add_option("--public-host", opts.public_host,
                 "host name or address clients use (default: the bind address, or this machine's "
                 "first non-loopback IPv4 address)");
  cmd.add_option("--demo-user", demo_spec,
                 "USER:PASSWORD of the demo user (created with useradd/chpasswd if missing)")
      ->default_str("demo:demo-password");
  cmd.add_flag_function("--no-demo-user", [&opts](int64_t) { opts.demo = false; },
               "no demo user; apps are entitled to members of group appvirt-users");
  cmd.add_option("--pam-service", opts.pam_service, "PAM service the broker signs users in with")
      ->capture_default_str();
  cmd.add_option("--log-level", opts.log_level, "log level of appvirt up and the daemons")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  cmd.add_option("--web-root", opts.web_root,
                 "portal files the broker serves (default: <prefix>/share/appvirt/web-portal)");
  cmd.add_option("--bin-dir", opts.bin_dir,
                 "directory with appvirt-hostd, -broker, -gateway, -sandbox, -rdp, -testpattern "
                 "(default: next to this executable)");
  cmd.add_option("--hostd-bin", opts.bins.hostd, "appvirt-hostd (overrides --bin-dir)");
  cmd.add_option("--broker-bin", opts.bins.broker, "appvirt-broker (overrides --bin-dir)");
  cmd.add_option("--gateway-bin", opts.bins.gateway, "appvirt-gateway (overrides --bin-dir)");
  cmd.add_option("--sandbox-bin", opts.bins.sandbox, "appvirt-sandbox (overrides --bin-dir)");
  cmd.add_option("--rdp-bin", opts.bins.rdp, "appvirt-rdp (overrides --bin-dir)");
  cmd.add_option("--testpattern-bin", opts.bins.testpattern,
                 "appvirt-testpattern, published to the demo user (overrides --bin-dir)");
}

namespace {

void check_demo_spec(UpOptions& opts, const std::string& spec, std::vector<std::string>& issues) {
  if (spec.empty()) return;
  auto colon = spec.find(':');
  if (colon == std::string::npos) {
    issues.push_back("--demo-user: expected USER:PASSWORD");
    return;
  }
  opts.demo_user = spec.substr(0, colon);
  opts.demo_password = spec.substr(colon + 1);
}

// Names useradd accepts on Debian by default, and that are safe in TOML and in shell lines.
void check_demo_user(const UpOptions& opts, std::vector<std::string>& issues) {
  static const std::regex kName("[a-z_][a-z0-9_-]{0,31}");
  if (!std::regex_match(opts.demo_user, kName)) {
    issues.push_back("--demo-user: user name must match [a-z_][a-z0-9_-]{0,31}");
  }
  if (opts.demo_password.size() < 8 || opts.demo_password.size() > 128) {
    issues.push_back("--demo-user: password must have 8 to 128 characters");
  }
  for (unsigned char c : opts.demo_password) {
    if (c < 0x20 || c == 0x7f) {
      issues.push_back("--demo-user: password must not contain control characters");
      break;
    }
  }
}

fs::path own_directory() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : exe.parent_path();
}

// Installed layout (cmake --install): daemons in <prefix>/bin, helpers in <prefix>/lib/appvirt.
void resolve_binary(fs::path& path, const fs::path& dir, const char* name, bool needed,
                    std::vector<std::string>& issues) {
  if (path.empty()) {
    path = dir / name;
    fs::path helper = dir.parent_path() / "lib" / "appvirt" / name;
    if (::access(path.c_str(), X_OK) != 0 && ::access(helper.c_str(), X_OK) == 0) path = helper;
  }
  // hostd.toml wants absolute paths, and the daemons do not run in our working directory.
  std::error_code ec;
  path = fs::absolute(path, ec).lexically_normal();
  if (!needed) return;
  if (::access(path.c_str(), X_OK) != 0) {
    issues.push_back(std::string(name) + ": " + path.string() + " is not an executable file" +
                     " (use --bin-dir or --" + std::string(name).substr(8) + "-bin)");
  }
}

}  // namespace

Result<void> finish_up_options(UpOptions& opts, const std::string& demo_spec) {
  std::vector<std::string> issues;
  if (opts.demo) {
    check_demo_spec(opts, demo_spec, issues);
    check_demo_user(opts, issues);
  }
  in6_addr any{};
  if (::inet_pton(AF_INET, opts.bind.c_str(), &any) != 1 &&
      ::inet_pton(AF_INET6, opts.bind.c_str(), &any) != 1) {
    issues.push_back("--bind: not a numeric IPv4 or IPv6 address: " + opts.bind);
  }
  if (opts.http_port == opts.rdp_port) issues.push_back("--http-port and --rdp-port are equal");
  if (!opts.state_dir.is_absolute()) issues.push_back("--state-dir: must be an absolute path");
  if (!opts.runtime_dir.is_absolute()) issues.push_back("--runtime-dir: must be an absolute path");
  std::error_code ec;
  fs::path dir = opts.bin_dir.empty() ? own_directory() : fs::absolute(opts.bin_dir, ec);
  dir = dir.lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "bin/" → "bin", so ../lib/appvirt works
  Binaries& b = opts.bins;
  resolve_binary(b.hostd, dir, "appvirt-hostd", true, issues);
  resolve_binary(b.broker, dir, "appvirt-broker", true, issues);
  resolve_binary(b.gateway, dir, "appvirt-gateway", true, issues);
  resolve_binary(b.sandbox, dir, "appvirt-sandbox", true, issues);
  resolve_binary(b.rdp, dir, "appvirt-rdp", true, issues);
  resolve_binary(b.testpattern, dir, "appvirt-testpattern", opts.demo, issues);
  if (opts.public_host.empty()) opts.public_host = default_public_host(opts.bind);
  fs::path portal = dir.parent_path() / "share" / "appvirt" / "web-portal";
  if (opts.web_root.empty() && fs::is_directory(portal, ec)) opts.web_root = portal;
  if (issues.empty()) return {};
  std::string all;
  for (const auto& i : issues) all += (all.empty() ? "" : "\n") + i;
  return fail(all);
}

std::string default_public_host(const std::string& bind) {
  if (bind != "0.0.0.0" && bind != "::") return bind;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "127.0.0.1";
  std::string found = "127.0.0.1";
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_LOOPBACK) || !(a->ifa_flags & IFF_UP)) continue;
    char buf[INET_ADDRSTRLEN] = {};
    auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf))) {
      found = buf;
      break;
    }
  }
  ::freeifaddrs(list);
  return found;
}

std::string host_port(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string local_address(const std::string& bind) {
  if (bind == "0.0.0.0") return "127.0.0.1";
  if (bind == "::") return "::1";
  return bind;
}

}  // namespace appvirt::up
