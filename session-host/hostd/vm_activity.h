#pragma once
// Idle and disconnect timeouts of VM sessions: the guest agent relays appvirt-rdp's activity
// report as ages (deploy/vm/guest-agent); hostd stamps them with its own monotonic clock on
// receipt, which turns them into the EndpointActivity a container's endpoint writes.
#include <cstdint>

#include "session-host/hostd/endpoint_activity.h"
#include "session-host/vm/agent_channel.h"

namespace appvirt::hostd {

// The channel's delay makes the stamped times a little later than the real ones (the timeouts
// fire late by that much, never early). Ages beyond `now_ms` clamp to 0 (an early boot time).
EndpointActivity activity_from_agent(const vm::AgentActivity& a, int64_t now_ms);

}  // namespace appvirt::hostd
