#pragma once
// Starting and identifying processes. hostd spawns the sandbox helper and appvirt-rdp; the
// processes it watches are named by (pid, start time) so a reused pid is never mistaken for a
// session's process, also across a hostd restart.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::hostd {

// A process as persisted: pid plus field 22 of /proc/<pid>/stat (start time in clock ticks).
struct ProcRef {
  pid_t pid = 0;
  uint64_t start_time = 0;
  bool operator==(const ProcRef&) const = default;
};

struct SpawnOptions {
  std::vector<std::string> argv;         // argv[0] is the absolute path executed
  std::vector<std::string> env;          // the complete environment
  int stdin_fd = -1;                     // -1: /dev/null
  int stdout_fd = -1;                    // -1: /dev/null
  int stderr_fd = -1;                    // -1: /dev/null
  std::vector<int> extra_fds;            // become fds 3, 4, ... in the child
  // Already open cgroup.procs files: the child writes "0" to each before exec, so it runs in
  // its cgroup(s) from its first instruction of the new program.
  std::vector<int> cgroup_procs_fds;
};

// fork + exec. The child gets its own session (setsid: not in hostd's process group, so a
// signal to hostd's group does not reach it), default signal dispositions, an empty signal
// mask and only the fds named above. Fails if exec fails (the child reports errno on a pipe).
Result<pid_t> spawn_process(const SpawnOptions& options);

// Start time of pid, or nullopt when the process is gone or a zombie.
std::optional<uint64_t> proc_start_time(pid_t pid);

// True when pid is alive and still the process that was started at ref.start_time.
bool proc_alive(const ProcRef& ref);

// ProcRef of a process that was just started (nullopt if it already exited).
std::optional<ProcRef> proc_ref(pid_t pid);

// pidfd_open(2): a descriptor that becomes readable when the process exits.
Result<UniqueFd> pidfd_open(pid_t pid);

// Sends sig through a pidfd, so it cannot hit a reused pid.
Result<void> pidfd_kill(int pidfd, int sig);

}  // namespace appvirt::hostd
