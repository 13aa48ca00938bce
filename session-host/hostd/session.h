#pragma once
// A session as hostd keeps, persists and reports it.
#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "session-host/hostd/limits.h"
#include "session-host/hostd/process.h"

namespace appvirt::hostd {

enum class SessionState { starting, running, ended };
const char* to_string(SessionState s);

struct Session {
  std::string id;
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string app_id;
  std::vector<std::string> command;
  Limits limits;
  int width = 0;
  int height = 0;
  int display = 0;
  SessionState state = SessionState::starting;
  std::string end_reason;            // empty while not ended
  std::optional<int> exit_status;    // wait status of the app, when hostd reaped it
  ProcRef app, xvfb, rdp;
  std::string endpoint_unix;
  int tcp_port = 0;
  int64_t created_at = 0;
  int64_t ended_at = 0;
  int64_t idle_timeout_s = 0;        // 0 = none (endpoint_activity.h)
  int64_t disconnect_timeout_s = 0;  // 0 = none
  // "container" or "vm". A VM session has no display or container on the host: QEMU (vm) runs
  // it, in the cgroup vm_cgroup(), reached on 127.0.0.1:tcp_port (docs/vm.md).
  std::string isolation = "container";
  nlohmann::json vm;  // appvirt::vm::record_to_json once QEMU runs; null before and for containers
  bool is_vm() const { return isolation == "vm"; }

  std::string session_cgroup() const;  // appvirt/u-<user>/s-<id>
  std::string rdp_cgroup() const;      // appvirt/rdp/s-<id>
  std::string vm_cgroup() const;       // appvirt/vm/s-<id> (QEMU of a VM session)
};

std::string user_cgroup(const std::string& user);  // appvirt/u-<user>

// The persisted form (everything, without the secret).
nlohmann::json session_to_state(const Session& s);
Result<Session> session_from_state(const nlohmann::json& j);

// What GET /v1/sessions/{id} returns.
nlohmann::json session_to_api(const Session& s);

// A user's container as persisted in containers/<user>.json.
struct ContainerRecord {
  std::string user;
  uid_t uid = 0;
  ProcRef init;
  Limits limits;
};
nlohmann::json container_to_state(const ContainerRecord& c);
Result<ContainerRecord> container_from_state(const nlohmann::json& j);

}  // namespace appvirt::hostd
