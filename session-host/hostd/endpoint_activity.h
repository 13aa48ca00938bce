#pragma once
// Idle and disconnect timeouts: the endpoint's activity report (written by appvirt-rdp,
// contract in docs/session-host.md) and the pure decision whether a session has timed out.
// The session manager's polling of it lives in session_timeouts.cc.
#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace appvirt::hostd {

// <runtime_dir>/s/<sid>/status.json. Times are CLOCK_MONOTONIC milliseconds.
struct EndpointActivity {
  int clients = 0;
  int64_t since_ms = 0;       // when `clients` last changed (or the endpoint started)
  int64_t last_input_ms = 0;  // 0 = no input yet
};

// Reads and validates the report. The file belongs to the (unprivileged) rdp user, so it is
// read defensively: no symlinks, regular files only, never blocking, at most 4 KiB.
Result<EndpointActivity> read_endpoint_activity(const std::string& path);

struct SessionTimeouts {
  int64_t idle_s = 0;        // 0 = never: end after this long connected without input
  int64_t disconnect_s = 0;  // 0 = never: end after this long without a connected client
  bool any() const { return idle_s > 0 || disconnect_s > 0; }
};

struct TimeoutVerdict {
  std::string reason;  // "idle-timeout", "disconnect-timeout", or empty: keep running
  int64_t next_check_ms = 0;  // when the verdict could change at the earliest (if nothing else does)
};

// Idle counts only while a client is connected (idle since the later of the connect and the
// last input); a session without a client is governed by the disconnect timeout alone.
TimeoutVerdict timeout_verdict(const EndpointActivity& a, const SessionTimeouts& t, int64_t now_ms);

}  // namespace appvirt::hostd
