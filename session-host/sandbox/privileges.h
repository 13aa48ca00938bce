#pragma once
// Dropping from root to the container user: one function, used by the container init (create)
// and by every process started in the container (exec), so both end in the same state.
#include "common/result.h"
#include "session-host/sandbox/request.h"
#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox {

// In this order, each step needing what the previous one still allows:
//   setgroups -> setresgid (need CAP_SETGID) -> drop the bounding set (needs CAP_SETPCAP)
//   -> clear ambient -> setresuid (clears effective/permitted caps, needs CAP_SETUID)
//   -> capset(0) (inheritable too, explicitly) -> no_new_privs -> seccomp (last: the filter
//   denies nothing the steps before need, but nothing may run unfiltered after it).
Result<> drop_privileges(Sys& sys, const Identity& id);

}  // namespace appvirt::sandbox
