#pragma once
// The container init: pid 1 of the container's pid namespace, running as the user, seccomp'd.
// Reaps every process reparented to it (all processes started with `appvirt-sandbox exec` are,
// once the helper exits). On SIGTERM from the host it kills everything in the container and
// exits, which ends the pid namespace.

namespace appvirt::sandbox {

// Never returns. Logs reaped children as key=value lines on stderr (the create log_file).
[[noreturn]] void run_init_loop();

}  // namespace appvirt::sandbox
