#pragma once
// The ordered start of appvirt-rdp and its serve-until-SIGTERM loop (main stays short).
#include "session-host/rdp/options.h"

namespace appvirt::rdp {

// Runs the endpoint; returns the process exit code (0 after a clean SIGTERM/SIGINT shutdown).
int run_endpoint(const RdpOptions& options);

}  // namespace appvirt::rdp
