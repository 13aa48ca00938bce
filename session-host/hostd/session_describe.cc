// A session as the control API shows it: the stored fields plus what only the live host knows.
// The broker turns `clients` into the running/disconnected state users and admins see, and shows
// `usage` on the admin pages. Both are best effort: a missing activity report or cgroup gives null.
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

nlohmann::json SessionManager::describe(const Session& s) const {
  nlohmann::json j = session_to_api(s);
  j["clients"] = nullptr;
  j["usage"] = nullptr;
  if (s.state != SessionState::running) return j;
  // The endpoint's report, or for a VM the guest agent's relay (the same source as the timeouts).
  if (auto it = sessions_.find(s.id); it != sessions_.end()) {
    if (auto activity = current_activity(*it->second)) j["clients"] = activity->clients;
  }
  // A VM's usage is QEMU's cgroup.
  if (auto u = deps_.cgroups.usage(s.is_vm() ? s.vm_cgroup() : s.session_cgroup())) {
    j["usage"] = {{"memory_bytes", u->memory_bytes}, {"pids", u->pids}, {"cpu_usec", u->cpu_usec}};
  }
  return j;
}

}  // namespace appvirt::hostd
