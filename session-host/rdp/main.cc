// appvirt-rdp: one RDP endpoint per session display. See docs/session-host.md.
#include "session-host/rdp/endpoint.h"
#include "session-host/rdp/options.h"

int main(int argc, char** argv) {
  appvirt::rdp::RdpOptions options;
  if (auto code = appvirt::rdp::parse_options(argc, argv, options)) return *code;
  return appvirt::rdp::run_endpoint(options);
}
