#pragma once
// appvirt-gateway's process level: wire the config into the broker client, the logon front and
// the server, run until SIGTERM/SIGINT, shut down cleanly.
#include "common/result.h"
#include "gateway/gateway_config.h"

namespace appvirt::gateway {

// Checks what --check-config promises: the file parses and validates, the broker secret and
// pinned certificate load, and the logon certificate (if present) is a usable RSA pair.
Result<void> check_gateway(const GatewayConfig& config);

// Runs the daemon; returns the process exit code (0 after a signal, 1 when it cannot start).
int run_gateway(const GatewayConfig& config);

}  // namespace appvirt::gateway
