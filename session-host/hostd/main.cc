// appvirt-hostd: the per-host session agent. Parses flags and config, then runs the Daemon.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "common/log.h"
#include "session-host/hostd/hostd.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"appvirt-hostd: per-host session agent (containers, displays, RDP endpoints)"};
  std::string config_path = "/etc/appvirt/hostd.toml";
  bool check_only = false;
  bool terminate_on_exit = false;
  app.add_option("--config", config_path, "config file (TOML)");
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  app.add_flag("--terminate-sessions-on-exit", terminate_on_exit,
               "end all sessions on SIGTERM/SIGINT (all-in-one use) instead of leaving them");
  CLI11_PARSE(app, argc, argv);

  std::error_code ec;
  fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  // Without --config, a missing default file means "all defaults" (a fresh install).
  bool use_defaults = app.count("--config") == 0 && !fs::exists(config_path);
  auto config = use_defaults ? appvirt::hostd::parse_hostd_config("", "(defaults)", exe_dir)
                             : appvirt::hostd::load_hostd_config(config_path, exe_dir);
  if (!config) {
    std::cerr << "appvirt-hostd: " << config.error().str() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << config_path << ": ok\n";
    return 0;
  }
  appvirt::init_logging("hostd", config->log_level);
  if (::geteuid() != 0) {
    spdlog::error("hostd must run as root");
    return 1;
  }
  appvirt::hostd::Daemon daemon(std::move(*config), terminate_on_exit);
  return daemon.run();
}
