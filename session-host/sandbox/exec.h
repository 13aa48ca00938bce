#pragma once
// `appvirt-sandbox exec`: start one process inside a running container.
//
//   check the init (a container init, start time matches) -> open its namespace fds
//   -> open the log on the host -> create + join the session's cgroup -> setns cgroup, ipc,
//   uts, net, pid, mnt -> fork (the pid namespace applies to children only) -> that child forks
//   the real process and exits, so the process is reparented to the container's pid 1 -> the
//   process: setsid, stdio, report its pid, drop_privileges (same function as the init),
//   chdir, execve.
// The helper learns the process's host pid from the kernel (SCM_CREDENTIALS of its report),
// replies once execve succeeded (the report socket is close-on-exec) and exits.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "session-host/sandbox/cgroup.h"
#include "session-host/sandbox/request.h"
#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox {

struct NamespaceFd {
  std::string name;  // "mnt", "pid", ... as in /proc/<pid>/ns/
  int type;          // CLONE_NEW*
  UniqueFd fd;
};

// Namespaces joined, in setns order (mnt last: /proc/<init> paths are not needed after it).
const std::vector<std::pair<std::string, int>>& container_namespaces();

// Refuses a pid that is not in another pid namespace than ours (never exec into the host) or
// whose start time differs from the request's.
Result<> check_container_init(Sys& sys, const ExecRequest& req);
// The container's cgroup ("appvirt/u-alice") from /proc/<init>/cgroup: the parent of the
// init's own group.
Result<std::string> container_cgroup_of(Sys& sys, pid_t init_pid, CgroupVersion version);
// A session's group must lie below the container's group (and not be the init's), so no
// process started in a container escapes the user's limits.
Result<> check_session_cgroup(Sys& sys, const ExecRequest& req, CgroupVersion version);
Result<std::vector<NamespaceFd>> open_namespaces(Sys& sys, pid_t init_pid);
Result<> join_namespaces(Sys& sys, const std::vector<NamespaceFd>& ns);

// The whole exec; returns the host pid of the started process.
Result<pid_t> exec_in_container(Sys& sys, CgroupDriver& cgroups, const ExecRequest& req);

}  // namespace appvirt::sandbox
