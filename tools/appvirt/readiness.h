#pragma once
// "Is it up yet?" checks for the daemons `appvirt up` starts. Each is one bounded attempt; the
// supervisor repeats them until a deadline.
#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace appvirt::up {

using std::chrono::milliseconds;

// hostd: GET /v1/health on its control socket answers 200 {"ok":true,...}.
Result<void> check_hostd(const std::string& socket_path, milliseconds timeout);

// broker: GET /healthz over HTTPS answers 200 {"ok":true,...}, with the server certificate
// verified against `pinned_cert` (the self-signed one the gateway will pin, too).
Result<void> check_broker(const std::string& address, uint16_t port, const std::string& pinned_cert,
                          milliseconds timeout);

// gateway: its stdout (in the log file) has the line {"listening":true,"port":N}.
Result<void> check_gateway(const std::string& log_file, uint16_t port);

// The status code of a raw HTTP/1.x response ("HTTP/1.1 200 OK..."), 0 when malformed.
unsigned http_status(const std::string& response);

}  // namespace appvirt::up
