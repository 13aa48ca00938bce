#pragma once
// The container's root filesystem: a tmpfs holding read-only binds of host /usr and of the few
// /etc files programs need, the user's home, private /tmp and /dev, fresh /proc; then
// pivot_root into it. The plan is computed on the host side (it reads the host's /etc and
// passwd database); the steps run in the child, in its new mount namespace, one function each.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "session-host/sandbox/request.h"
#include "session-host/sandbox/syscalls.h"

namespace appvirt::sandbox {

// A host path reproduced inside: a symlink with the same target, or a read-only bind.
struct HostEntry {
  enum class Kind { file, dir, symlink };
  std::string path;  // absolute host path, the same inside
  Kind kind = Kind::file;
  std::string link_target;  // for symlinks
};

struct RootfsPlan {
  std::string new_root;              // mount point of the root tmpfs: <runtime_dir>/root
  std::vector<HostEntry> top_level;  // /bin, /lib, ... (symlinks on merged-/usr Debian)
  std::vector<HostEntry> etc;        // the /etc entries that exist on this host
  std::string passwd, group;         // generated: root, the user, nobody
  std::string home;
  std::string x11_dir;  // <runtime_dir>/x11 -> /tmp/.X11-unix
  std::string run_dir;  // <runtime_dir>/run -> /run/appvirt
};

// The /etc paths offered to containers (those missing on the host are skipped). Secrets such as
// shadow, gshadow, sudoers, ssh host keys, ssl/private are deliberately not listed.
const std::vector<std::string>& etc_allowlist();

Result<RootfsPlan> plan_rootfs(const CreateRequest& req);

// Child-side steps, in the order build_rootfs runs them.
Result<> make_mounts_private(Sys& sys);
Result<> mount_root_tmpfs(Sys& sys, const RootfsPlan& plan);
Result<> bind_usr(Sys& sys, const RootfsPlan& plan);
Result<> make_top_level(Sys& sys, const RootfsPlan& plan);
Result<> build_etc(Sys& sys, const RootfsPlan& plan);
Result<> mount_tmp(Sys& sys, const RootfsPlan& plan);
Result<> bind_runtime_dirs(Sys& sys, const RootfsPlan& plan);
Result<> bind_home(Sys& sys, const RootfsPlan& plan);
Result<> mount_dev(Sys& sys, const RootfsPlan& plan);
Result<> mount_proc(Sys& sys, const RootfsPlan& plan);  // needs the new pid namespace
Result<> pivot_into_root(Sys& sys, const RootfsPlan& plan);
Result<> remount_root_readonly(Sys& sys);

// All of the above, in order.
Result<> build_rootfs(Sys& sys, const RootfsPlan& plan);

}  // namespace appvirt::sandbox
