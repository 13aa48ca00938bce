#pragma once
// The control API of hostd (docs/session-host.md, docs/hostd.md) as routes of the shared HTTP
// server: request bodies are parsed and validated here, the work is done by SessionManager.
#include "common/http_server.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

// Parses and validates a POST /v1/sessions body; unknown fields are errors.
Result<LaunchRequest> launch_request_from_json(const nlohmann::json& j);
// Parses a PUT /v1/users/{user}/timeouts body: idle_timeout_s, disconnect_timeout_s (absent = 0).
Result<SessionTimeouts> timeouts_from_json(const nlohmann::json& j);

http::Router make_control_router(SessionManager& sessions);

}  // namespace appvirt::hostd
