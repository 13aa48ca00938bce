#pragma once
// One VM session: a linked clone of the golden image, QEMU running it, the guest agent's
// readiness report, and power-off with cleanup. hostd persists record() and re-adopts the
// VM after a restart with adopt(). Blocking calls, each bounded by a timeout.
#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "session-host/vm/agent_channel.h"
#include "session-host/vm/qemu_command.h"
#include "session-host/vm/vm_spec.h"

namespace appvirt::vm {

using std::chrono::milliseconds;

// What hostd persists to find the VM again: paths follow from session_dir (vm_paths).
struct VmRecord {
  std::string session_id;
  pid_t pid = -1;
  unsigned long long start_time = 0;  // /proc/<pid>/stat field 22
  std::string session_dir;
  int host_port = 0;
  Accel accel = Accel::kTcg;
};
nlohmann::json record_to_json(const VmRecord& r);
Result<VmRecord> record_from_json(const nlohmann::json& j);

class VmSession {
 public:
  VmSession(VmSession&&) = default;
  VmSession& operator=(VmSession&&) = default;
  // Creates session_dir (must not exist), the overlay and the fw_cfg files, starts QEMU and
  // waits (bounded) for its QMP socket. On failure nothing is left behind.
  static Result<VmSession> start(const VmSpec& spec, milliseconds timeout = milliseconds(15000));
  // Finds a VM of a previous hostd: the pid must still be the same QEMU (start time).
  static Result<VmSession> adopt(const VmRecord& record);

  // Waits for the guest agent's {"event":"ready",...}; an error names the failed guest step,
  // or says QEMU exited or the time ran out.
  Result<nlohmann::json> wait_ready(milliseconds timeout);
  // The agent channel wait_ready opened, for a reader of the events after ready (activity);
  // empty if none is open. QEMU serves one client at a time: take it, do not open another.
  std::optional<AgentChannel> take_agent();
  bool running() const;
  // QMP system_powerdown, up to `grace` for the guest to power off, then QMP quit, then
  // SIGKILL; then removes session_dir (overlay included). Safe to call twice.
  Result<void> power_off(milliseconds grace);

  const VmRecord& record() const { return record_; }
  const VmPaths& paths() const { return paths_; }

 private:
  VmSession(VmRecord record, UniqueFd pidfd);
  bool wait_exit(milliseconds timeout);
  void kill_now();

  VmRecord record_;
  VmPaths paths_;
  UniqueFd pidfd_;
  std::optional<AgentChannel> agent_;
};

// Last `max_bytes` of a log file (error messages).
std::string tail_file(const std::string& path, size_t max_bytes = 2000);

}  // namespace appvirt::vm
