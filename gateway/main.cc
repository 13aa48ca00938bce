// appvirt-gateway: the one RDP entry point. See docs/gateway.md.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/log.h"
#include "gateway/daemon.h"

int main(int argc, char** argv) {
  CLI::App app{
      "appvirt-gateway: the RDP entry point. Routes clients by the launch token in their X.224 "
      "cookie (Cookie: msts=<token>) to their session's endpoint, and logs plain RDP clients on "
      "through the broker, redirecting them back with a fresh token."};
  std::string config_path = "/etc/appvirt/gateway.toml";
  std::string log_level;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "TOML config file")->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the config (and the files it names), then exit");
  app.add_option("--log-level", log_level, "overrides log_level: trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  auto config = appvirt::gateway::load_gateway_config(config_path);
  if (!config) {
    std::cerr << config.error().str() << "\n";
    return 2;
  }
  if (!log_level.empty()) config->log_level = log_level;
  if (check_only) {
    if (auto ok = appvirt::gateway::check_gateway(*config); !ok) {
      std::cerr << config_path << ": " << ok.error().str() << "\n";
      return 2;
    }
    std::cout << config_path << ": ok\n";
    return 0;
  }
  appvirt::init_logging("gateway", config->log_level);
  return appvirt::gateway::run_gateway(*config);
}
