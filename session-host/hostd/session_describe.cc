// A session as the control API shows it: the stored fields plus what only the live host knows.
// The broker turns `clients` into the running/disconnected state users and admins see, and shows
// `usage` on the admin pages. Both are best effort: a missing activity report or cgroup gives null.
#include "session-host/hostd/endpoint_activity.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

nlohmann::json SessionManager::describe(const Session& s) const {
  nlohmann::json j = session_to_api(s);
  j["clients"] = nullptr;
  j["usage"] = nullptr;
  if (s.state != SessionState::running) return j;
  if (s.is_vm()) {  // the guest agent's relay; the usage is QEMU's
    auto it = sessions_.find(s.id);
    if (it != sessions_.end() && it->second->vm_activity) {
      j["clients"] = it->second->vm_activity->clients;
    }
  } else if (auto activity = read_endpoint_activity(activity_file(s))) {
    j["clients"] = activity->clients;
  }
  if (auto u = deps_.cgroups.usage(s.is_vm() ? s.vm_cgroup() : s.session_cgroup())) {
    j["usage"] = {{"memory_bytes", u->memory_bytes}, {"pids", u->pids}, {"cpu_usec", u->cpu_usec}};
  }
  return j;
}

}  // namespace appvirt::hostd
