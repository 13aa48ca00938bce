// appvirt-broker: parses flags and config, then runs the Broker.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "broker/broker.h"
#include "common/log.h"

int main(int argc, char** argv) {
  CLI::App app{"appvirt-broker: sign-in, app catalog, placement and launch tokens (HTTPS API)"};
  std::string config_path = "/etc/appvirt/broker.toml";
  std::string port_file;
  bool check_only = false;
  app.add_option("--config", config_path, "config file (TOML)");
  app.add_flag("--check-config", check_only, "validate the config file (and catalog) and exit");
  app.add_option("--port-file", port_file, "write the bound HTTPS port to this file once listening");
  CLI11_PARSE(app, argc, argv);

  // Without --config, a missing default file means "all defaults" (a fresh install).
  bool use_defaults = app.count("--config") == 0 && !std::filesystem::exists(config_path);
  auto config = use_defaults ? appvirt::broker::parse_broker_config("", "(defaults)")
                             : appvirt::broker::load_broker_config(config_path);
  if (!config) {
    std::cerr << "appvirt-broker: " << config.error().str() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << (use_defaults ? "(defaults)" : config_path) << ": ok (" << config->apps.size()
              << " apps, " << config->hosts.size() << " hosts)\n";
    return 0;
  }
  appvirt::init_logging("broker", config->log_level);
  ::umask(0077);
  appvirt::broker::Broker broker(std::move(*config), port_file);
  return broker.run();
}
