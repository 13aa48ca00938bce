// appvirt: admin CLI. `appvirt up` starts hostd, broker and gateway on this machine with a
// generated all-in-one configuration and supervises them (docs/up.md).
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/log.h"
#include "tools/appvirt/up.h"

int main(int argc, char** argv) {
  CLI::App app{"appvirt: admin CLI of appvirt (application-session virtualization)"};
  app.require_subcommand(1);
  appvirt::up::UpOptions opts;
  std::string demo_spec;
  CLI::App* up = app.add_subcommand(
      "up", "start hostd, broker and gateway on this machine with a demo user and apps; runs "
            "until SIGTERM/SIGINT, then ends every session and stops them");
  appvirt::up::add_up_flags(*up, opts, demo_spec);
  CLI11_PARSE(app, argc, argv);

  if (auto r = appvirt::up::finish_up_options(opts, demo_spec); !r) {
    std::cerr << "appvirt up: " << r.error().message << "\n";
    return 2;
  }
  appvirt::init_logging("up", opts.log_level);
  return appvirt::up::run_up(std::move(opts));
}
