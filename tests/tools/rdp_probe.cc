// rdp-probe: a headless RDP client for tests and benchmarks. It connects (Unix socket or TCP,
// TLS security, any certificate), waits for frames, can type, compares every pixel with the
// test pattern or a PNG, and prints one JSON object on stdout. Exit 0 on success, 1 on failure,
// 2 on a usage error.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "tests/tools/probe_client.h"

int main(int argc, char** argv) {
  int exit_code = 0;
  auto options = appvirt::probe::parse_probe_options(argc, argv, &exit_code);
  if (!options) return exit_code;
  // A server that hangs up must show up as an error in the report, not kill the probe.
  std::signal(SIGPIPE, SIG_IGN);
  bool level_given = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--log-level", 11) == 0) level_given = true;
  }
  appvirt::probe::configure_freerdp_logging(*options, level_given);
  appvirt::probe::ProbeReport report = appvirt::probe::run_probe(*options);
  std::cout << appvirt::probe::to_json(report).dump() << std::endl;
  return report.success() ? 0 : 1;
}
