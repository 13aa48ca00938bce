#pragma once
// Creating a user's container: the ordered driver (nsjail's containProc is the model).
//
//   parent (host side, root)              child (clone: new pid/mnt/ipc/uts/net ns)
//   prepare runtime dirs
//   cgroup create + limits, <cgroup>/init
//   clone ------------------------------> wait for "go"
//   put child in <cgroup>/init
//   send "go" ---------------------------> unshare cgroup ns (its cgroup is now its root)
//                                          setsid, hostname, mounts private, rootfs, /proc,
//                                          pivot_root, lo up, drop privileges, seccomp (last)
//   wait for "ok" / "error:..." <--------- report
//   reply init pid + start time            reaper loop as pid 1 of the container (init.h)
#include <sched.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/result.h"
#include "session-host/sandbox/cgroup.h"
#include "session-host/sandbox/request.h"
#include "session-host/sandbox/rootfs.h"
#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox {

// Namespaces the container init is cloned into. The cgroup namespace is unshared by the child
// once the parent has moved it into its cgroup, so the container sees its own group as "/".
constexpr unsigned long kContainerCloneFlags =
    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;

// How long the parent waits for the child to finish its setup.
constexpr int kChildSetupTimeoutMs = 15000;

struct ContainerPlan {
  CreateRequest req;
  RootfsPlan rootfs;
  std::string init_cgroup;  // <cgroup>/init: v2 keeps processes in leaves only
};

struct CreatedContainer {
  pid_t init_pid = 0;            // host pid of the container's pid 1
  uint64_t init_start_time = 0;  // field 22 of /proc/<pid>/stat
};

Result<ContainerPlan> plan_container(const CreateRequest& req);

// Parent-side steps, in order.
Result<> prepare_runtime_dirs(Sys& sys, const ContainerPlan& plan);
Result<> setup_cgroup(CgroupDriver& cgroups, const ContainerPlan& plan);
Result<> release_child(Sys& sys, CgroupDriver& cgroups, const ContainerPlan& plan, pid_t child,
                       int sync_fd);
Result<> await_child(Sys& sys, int sync_fd);

// Child-side steps after the parent's "go", up to and including seccomp. Returns when the
// container is locked down; the caller then reports and becomes the init.
Result<> run_child_steps(Sys& sys, const ContainerPlan& plan, int sync_fd);

// The whole create: returns in the parent only (the child becomes the container init and
// never returns). On failure nothing is left: child killed, cgroups removed.
Result<CreatedContainer> create_container(Sys& sys, CgroupDriver& cgroups,
                                          const ContainerPlan& plan);

// Field 22 of /proc/<pid>/stat: start time in clock ticks after boot.
Result<uint64_t> process_start_time(Sys& sys, pid_t pid);

}  // namespace appvirt::sandbox
