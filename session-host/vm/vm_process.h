#pragma once
// Processes of VM sessions: QEMU and the helpers it needs, started so that they outlive the
// daemon (own session, no parent-death signal), watched through pidfds (no pid-reuse races).
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::vm {

using std::chrono::milliseconds;

// posix_spawn (safe in a multithreaded daemon) with setsid, stdin /dev/null, stdout+stderr
// appended to log_file (or /dev/null when empty).
Result<pid_t> spawn_detached(const std::vector<std::string>& argv, const std::string& log_file);

// Runs a short command to completion within the timeout (killed after it); returns its exit
// code (kExitUnknown if someone else reaped it), or an error naming the command.
// run_command's result when another thread reaped the command (its status is lost).
constexpr int kExitUnknown = -1;
Result<int> run_command(const std::vector<std::string>& argv, const std::string& log_file,
                        milliseconds timeout);

// Field 22 of /proc/<pid>/stat: tells a live process from a later one with the same pid.
std::optional<unsigned long long> proc_start_time(pid_t pid);

Result<UniqueFd> open_pidfd(pid_t pid);

// True when the pidfd became readable (the process exited) within the timeout.
bool wait_pidfd_readable(int pidfd, milliseconds timeout);

// Waits until the process behind pidfd has exited (true) or the timeout passed (false); reaps
// it when it is our child (an adopted process is reaped by whoever its parent is).
bool wait_pidfd_exit(int pidfd, pid_t pid, milliseconds timeout);

}  // namespace appvirt::vm
