#include "broker/host_registry.h"

namespace appvirt::broker {

bool host_supports(const HostRecord& h, Isolation isolation) {
  std::string want = to_string(isolation);
  std::size_t i = 0;
  while (i <= h.isolation.size()) {
    std::size_t j = h.isolation.find(',', i);
    if (j == std::string::npos) j = h.isolation.size();
    if (h.isolation.compare(i, j - i, want) == 0 && j - i == want.size()) return true;
    i = j + 1;
  }
  return false;
}

void HostRegistry::add_configured(HostRecord h) {
  h.configured = true;
  std::string name = h.name;
  hosts_[name] = HostState{std::move(h), false, 0, {}, "not probed yet", -1, 0};
}

void HostRegistry::restore(HostRecord h) {
  if (h.configured || hosts_.count(h.name)) return;  // configured ones come from the config
  std::string name = h.name;
  hosts_[name] = HostState{std::move(h), false, 0, {}, "no report since broker start", -1, 0};
}

Result<const HostState*> HostRegistry::register_host(HostRecord h, Clock::time_point now) {
  auto it = hosts_.find(h.name);
  if (it != hosts_.end() && it->second.record.configured) {
    return fail("host " + h.name + " is configured in broker.toml and cannot be registered");
  }
  h.configured = false;
  std::string name = h.name;
  HostState& st = hosts_[name];
  int sessions = st.reported_sessions;
  st = HostState{std::move(h), true, sessions, now, "", -1, st.vm_sessions};
  return &st;
}

bool HostRegistry::report(const std::string& name, int sessions, std::string load_json,
                          Clock::time_point now) {
  auto it = hosts_.find(name);
  if (it == hosts_.end() || it->second.record.configured) return false;
  HostState& st = it->second;
  st.up = true;
  st.reported_sessions = sessions;
  st.last_seen = now;
  st.last_error.clear();
  st.record.load_json = std::move(load_json);
  return true;
}

void HostRegistry::probe_ok(const std::string& name, int sessions, Clock::time_point now) {
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return;
  it->second.up = true;
  it->second.reported_sessions = sessions;
  it->second.last_seen = now;
  it->second.last_error.clear();
}

void HostRegistry::probe_failed(const std::string& name, const std::string& error) {
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return;
  it->second.up = false;
  it->second.last_error = error;
}

void HostRegistry::vm_report(const std::string& name, const std::string& isolation,
                             int vm_capacity, int vm_sessions) {
  auto it = hosts_.find(name);
  if (it == hosts_.end() || isolation.empty()) return;  // a hostd that says nothing about VMs
  it->second.record.isolation = isolation;
  it->second.vm_capacity = vm_capacity;
  it->second.vm_sessions = vm_sessions;
}

void HostRegistry::placed(const std::string& name, Isolation isolation) {
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return;
  if (isolation == Isolation::vm) ++it->second.vm_sessions;
}

std::vector<std::string> HostRegistry::expire(Clock::time_point now) {
  std::vector<std::string> down;
  for (auto& [name, st] : hosts_) {
    if (st.record.configured || !st.up) continue;
    if (now - st.last_seen > report_timeout_) {
      st.up = false;
      st.last_error = "no load report for more than " +
                      std::to_string(report_timeout_.count()) + " s";
      down.push_back(name);
    }
  }
  return down;
}

const HostState* HostRegistry::find(const std::string& name) const {
  auto it = hosts_.find(name);
  return it == hosts_.end() ? nullptr : &it->second;
}

std::vector<const HostState*> HostRegistry::all() const {
  std::vector<const HostState*> out;
  for (const auto& [name, st] : hosts_) out.push_back(&st);
  return out;
}

std::optional<HostRecord> HostRegistry::pick(
    Isolation isolation, const std::map<std::string, int>& broker_sessions) const {
  const HostState* best = nullptr;
  double best_load = 0;
  for (const auto& [name, st] : hosts_) {
    // Only hosts the broker can reach: today that is hostd over its Unix socket.
    if (!st.up || st.record.socket.empty() || st.record.capacity <= 0) continue;
    if (!host_supports(st.record, isolation)) continue;
    auto it = broker_sessions.find(name);
    int sessions = std::max(st.reported_sessions, it == broker_sessions.end() ? 0 : it->second);
    int used = std::max(0, sessions - st.vm_sessions);  // container sessions
    int cap = st.record.capacity;
    if (isolation == Isolation::vm && st.vm_capacity >= 0) {
      used = st.vm_sessions;
      cap = st.vm_capacity;
    }
    if (cap <= 0 || used >= cap) continue;
    double load = static_cast<double>(used) / cap;
    if (!best || load < best_load) {
      best = &st;
      best_load = load;
    }
  }
  if (!best) return std::nullopt;
  return best->record;
}

}  // namespace appvirt::broker
