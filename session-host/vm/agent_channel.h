#pragma once
// The host end of the guest agent's virtio-serial port "appvirt.agent" (deploy/vm/guest-agent):
// one JSON object per line. QEMU's socket chardev serves one client at a time, so a session has
// one channel: VmSession::wait_ready's during boot, handed on to hostd's reader afterwards
// (VmSession::take_agent), or a new one after a hostd restart (connect). Blocking calls.
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::vm {

// {"event":"activity",...}: appvirt-rdp's activity report relayed by the agent. Ages, not times:
// the guest's monotonic clock means nothing on the host, which stamps the ages on receipt.
struct AgentActivity {
  int clients = 0;
  int64_t since_age_ms = 0;   // how long ago `clients` last changed
  int64_t input_age_ms = -1;  // how long ago the last input came; -1 = none yet
};
// The "event" name of a message from the guest; "" when there is none or it is no string (the
// guest is not trusted: json::value() would throw on {"event":0}).
std::string agent_event(const nlohmann::json& msg);
// Validates an "activity" event (the guest is not trusted: bounded non-negative integers).
Result<AgentActivity> parse_agent_activity(const nlohmann::json& event);

class AgentChannel {
 public:
  AgentChannel(AgentChannel&&) = default;
  AgentChannel& operator=(AgentChannel&&) = default;
  // Connects to QEMU's agent socket, retrying while it does not exist yet or refuses.
  static Result<AgentChannel> connect(const std::string& socket_path,
                                      std::chrono::milliseconds timeout);

  // The next JSON object from the guest (other lines are noise and skipped); nullopt when none
  // came within the timeout; an error when the channel closed (QEMU exited) or broke.
  Result<std::optional<nlohmann::json>> next(std::chrono::milliseconds timeout);

 private:
  explicit AgentChannel(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  std::string buffer_;
};

}  // namespace appvirt::vm
