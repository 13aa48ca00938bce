#include "session-host/sandbox/privileges.h"

namespace appvirt::sandbox {

Result<> drop_privileges(Sys& sys, const Identity& id) {
  std::vector<gid_t> groups = id.groups;
  if (groups.empty()) groups.push_back(id.gid);  // never keep root's supplementary groups
  if (auto r = sys.setgroups(groups); !r) return r;
  if (auto r = sys.setresgid(id.gid); !r) return r;
  if (auto r = sys.drop_bounding_caps(); !r) return r;
  if (auto r = sys.clear_ambient_caps(); !r) return r;
  if (auto r = sys.setresuid(id.uid); !r) return r;
  if (auto r = sys.clear_caps(); !r) return r;
  if (auto r = sys.set_no_new_privs(); !r) return r;
  return sys.load_seccomp();
}

}  // namespace appvirt::sandbox
