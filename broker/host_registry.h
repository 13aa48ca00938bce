#pragma once
// The hosts the broker may place sessions on: configured ones (hostd on this machine, probed by
// the broker) and registered ones (hostd instances that announce themselves and then send load
// reports). A host is up while it answers probes or keeps reporting; a host that has been silent
// longer than the report timeout is down and gets no new sessions. Placement picks the up host
// with the lowest session load relative to its capacity.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/catalog.h"
#include "broker/store.h"
#include "common/result.h"

namespace appvirt::broker {

struct HostState {
  HostRecord record;
  bool up = false;
  int reported_sessions = 0;  // what the host last said it runs
  std::chrono::steady_clock::time_point last_seen{};
  std::string last_error;  // why it is down, for the admin API
  // VM sessions (docs/vm.md): counted apart from `capacity`, which bounds container sessions.
  int vm_capacity = -1;  // -1: the host never said (registered hosts); hostd still refuses over it
  int vm_sessions = 0;   // last report, plus VMs placed since
};

class HostRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  explicit HostRegistry(std::chrono::seconds report_timeout) : report_timeout_(report_timeout) {}

  // A host from broker.toml. It starts down until its first probe answers.
  void add_configured(HostRecord h);
  // A host known from the store (registered before a restart): down until it reports again.
  void restore(HostRecord h);
  // A host announcing itself. Fails for a name that belongs to a configured host.
  Result<const HostState*> register_host(HostRecord h, Clock::time_point now);
  // A load report; false for an unknown host (it must register first).
  bool report(const std::string& name, int sessions, std::string load_json, Clock::time_point now);
  // Results of the broker's own probes of configured hosts.
  void probe_ok(const std::string& name, int sessions, Clock::time_point now);
  void probe_failed(const std::string& name, const std::string& error);
  // What a host's health says about VM sessions: its isolation list replaces the configured
  // one ("" leaves it), and its VM capacity and count bound VM placement.
  void vm_report(const std::string& name, const std::string& isolation, int vm_capacity,
                 int vm_sessions);
  // A session was just placed on the host (counted until the next report or probe).
  void placed(const std::string& name, Isolation isolation);
  // Marks registered hosts that stopped reporting as down; returns the names that went down.
  std::vector<std::string> expire(Clock::time_point now);

  const HostState* find(const std::string& name) const;
  std::vector<const HostState*> all() const;

  // The host for a new session of the given isolation; broker_sessions counts the live sessions
  // the broker itself placed per host (the larger of that and the host's report is used).
  // Containers fill `capacity` (VM sessions not counted); VMs fill `vm_capacity`.
  std::optional<HostRecord> pick(Isolation isolation,
                                 const std::map<std::string, int>& broker_sessions) const;

 private:
  std::chrono::seconds report_timeout_;
  std::map<std::string, HostState> hosts_;
};

// True when a host's isolation list ("container", "vm", "container,vm") includes isolation.
bool host_supports(const HostRecord& h, Isolation isolation);

}  // namespace appvirt::broker
