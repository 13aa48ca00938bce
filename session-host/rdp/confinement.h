#pragma once
// What appvirt-rdp does as root before it serves anything: private mount and network namespaces,
// in which the session's X socket directory appears at /tmp/.X11-unix (X clients find display :N
// there; Xvfb's abstract socket lives in the container's network namespace, out of reach, and no
// other X server's abstract socket is reachable either), a private tmpfs /tmp holding the files
// FreeRDP and Xlib read later by path, then the drop to the service user. Run after the
// listening sockets exist (they stay in the host's network namespace) and while the process is
// still single-threaded.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::rdp {

struct ServiceUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups from the group database
};

// Looks up --run-as; refuses root (the point is to serve the network without privileges).
Result<ServiceUser> lookup_service_user(const std::string& name);

// Read as root before the namespace changes: their paths may be root-only or hidden later.
struct SecretFiles {
  std::string cert_pem;
  std::string key_pem;
  std::string xauthority;
};

// Paths inside the private /tmp, readable only by the service user.
struct PrivateView {
  std::string config_dir;  // FreeRDP shadow ConfigPath: holds shadow/shadow.crt, shadow/shadow.key
  std::string xauthority;
};

// unshare(CLONE_NEWNS|CLONE_NEWNET); "/" recursively private (nothing propagates back to the host); a
// fresh tmpfs on /tmp; x11_dir bound on /tmp/.X11-unix; the files written 0400, owned by user.
Result<PrivateView> enter_private_mounts(const std::filesystem::path& x11_dir,
                                         const SecretFiles& files, const ServiceUser& user);

// setgroups, setresgid, setresuid (all three ids), checks that root cannot be regained, then
// no_new_privs and not dumpable (no ptrace, no /proc/<pid>/root access by same-uid processes).
Result<void> drop_privileges(const ServiceUser& user);

}  // namespace appvirt::rdp
