#include "session-host/sandbox/seccomp_filter.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>

#include "common/unique_fd.h"

namespace appvirt::sandbox {
namespace {

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using SeccompCtx = std::unique_ptr<void, CtxDeleter>;

// Namespace flags a process inside must not pass to clone(). CLONE_NEWTIME is left out: on
// clone(2) its bit (0x80) lies in the exit-signal byte; unshare and clone3 are denied anyway.
constexpr unsigned long kCloneNsFlags[] = {CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
                                           CLONE_NEWUSER,  CLONE_NEWPID, CLONE_NEWNET,
                                           CLONE_NEWCGROUP};

Result<> add_denials(scmp_filter_ctx ctx) {
  for (const SeccompDenial& d : seccomp_denials()) {
    int nr = seccomp_syscall_resolve_name(d.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) return fail("seccomp: unknown syscall " + d.syscall, EINVAL);
    // Calls that do not exist on this architecture resolve to negative pseudo numbers; a rule
    // for them is meaningless, the kernel cannot receive them.
    if (nr < 0) continue;
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(static_cast<uint32_t>(d.errno_value)), nr, 0);
    if (rc < 0) return fail("seccomp_rule_add(" + d.syscall + ")", -rc);
  }
  return {};
}

Result<> add_argument_rules(scmp_filter_ctx ctx) {
  for (unsigned long flag : kCloneNsFlags) {
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc < 0) return fail("seccomp_rule_add(clone, " + std::to_string(flag) + ")", -rc);
  }
  // clone3 passes its flags in memory, which seccomp cannot read: answer ENOSYS so glibc
  // falls back to clone(2), whose flags the rules above can check.
  int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc < 0) return fail("seccomp_rule_add(clone3)", -rc);
  // Pushing characters into a terminal's input queue lets a process type into its parent shell.
  for (unsigned long cmd :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, cmd));
    if (rc < 0) return fail("seccomp_rule_add(ioctl)", -rc);
  }
  return {};
}

Result<SeccompCtx> build_filter() {
  SeccompCtx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return fail("seccomp_init", ENOMEM);
  // Calls of another ABI (int 0x80, x32) would bypass the rules, which are for the native one.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc < 0) return fail("seccomp_attr_set(ACT_BADARCH)", -rc);
  if (auto r = add_denials(ctx.get()); !r) return tl::unexpected(r.error());
  if (auto r = add_argument_rules(ctx.get()); !r) return tl::unexpected(r.error());
  return ctx;
}

}  // namespace

const std::vector<SeccompDenial>& seccomp_denials() {
  static const std::vector<SeccompDenial> list = {
      {"mount", EPERM, "mounts: the root filesystem is fixed"},
      {"umount2", EPERM, "unmounting would reveal what a mount hides"},
      {"pivot_root", EPERM, "root filesystem is fixed"},
      {"chroot", EPERM, "root filesystem is fixed"},
      {"fsopen", EPERM, "new mount API"},
      {"fsconfig", EPERM, "new mount API"},
      {"fsmount", EPERM, "new mount API"},
      {"fspick", EPERM, "new mount API"},
      {"move_mount", EPERM, "new mount API"},
      {"open_tree", EPERM, "new mount API"},
      {"mount_setattr", EPERM, "new mount API"},
      {"unshare", EPERM, "no new namespaces (user namespaces are kernel attack surface)"},
      {"setns", EPERM, "no joining other namespaces"},
      {"ptrace", EPERM, "no debugging of other processes"},
      {"process_vm_readv", EPERM, "reads another process's memory"},
      {"process_vm_writev", EPERM, "writes another process's memory"},
      {"kcmp", EPERM, "compares kernel objects of other processes"},
      {"pidfd_getfd", EPERM, "steals file descriptors of other processes"},
      {"kexec_load", EPERM, "kernel replacement"},
      {"kexec_file_load", EPERM, "kernel replacement"},
      {"init_module", EPERM, "kernel modules"},
      {"finit_module", EPERM, "kernel modules"},
      {"delete_module", EPERM, "kernel modules"},
      {"bpf", EPERM, "eBPF is kernel attack surface"},
      {"perf_event_open", EPERM, "perf leaks kernel state, attack surface"},
      {"userfaultfd", EPERM, "used to win kernel races"},
      {"keyctl", EPERM, "kernel keyrings are not namespaced"},
      {"add_key", EPERM, "kernel keyrings are not namespaced"},
      {"request_key", EPERM, "kernel keyrings are not namespaced"},
      {"open_by_handle_at", EPERM, "opens files by handle, bypassing the mount tree"},
      {"name_to_handle_at", EPERM, "pairs with open_by_handle_at"},
      {"swapon", EPERM, "host swap"},
      {"swapoff", EPERM, "host swap"},
      {"reboot", EPERM, "host power"},
      {"acct", EPERM, "process accounting is host wide"},
      {"quotactl", EPERM, "filesystem quotas"},
      {"quotactl_fd", EPERM, "filesystem quotas"},
      {"lookup_dcookie", EPERM, "kernel profiling"},
      {"syslog", EPERM, "kernel log leaks addresses"},
      {"settimeofday", EPERM, "host clock"},
      {"clock_settime", EPERM, "host clock"},
      {"clock_adjtime", EPERM, "host clock"},
      {"adjtimex", EPERM, "host clock"},
      {"sethostname", EPERM, "hostname is set by the sandbox"},
      {"setdomainname", EPERM, "domain name is set by the sandbox"},
      {"vhangup", EPERM, "terminal hangup"},
      {"ioperm", EPERM, "raw I/O ports"},
      {"iopl", EPERM, "raw I/O ports"},
      {"uselib", EPERM, "obsolete, old attack surface"},
      {"io_uring_setup", EPERM, "io_uring is large kernel attack surface"},
      {"io_uring_enter", EPERM, "io_uring"},
      {"io_uring_register", EPERM, "io_uring"},
      {"nfsservctl", EPERM, "obsolete"},
      {"_sysctl", EPERM, "obsolete"},
      {"create_module", EPERM, "obsolete"},
      {"get_kernel_syms", EPERM, "obsolete"},
      {"query_module", EPERM, "obsolete"},
  };
  return list;
}

Result<> install_seccomp_filter() {
  auto ctx = build_filter();
  if (!ctx) return tl::unexpected(ctx.error());
  int rc = seccomp_load(ctx->get());
  if (rc < 0) return fail("seccomp_load", -rc);
  return {};
}

Result<std::string> seccomp_filter_pfc() {
  auto ctx = build_filter();
  if (!ctx) return tl::unexpected(ctx.error());
  UniqueFd fd(memfd_create("seccomp-pfc", MFD_CLOEXEC));
  if (!fd) return fail_errno("memfd_create");
  int rc = seccomp_export_pfc(ctx->get(), fd.get());
  if (rc < 0) return fail("seccomp_export_pfc", -rc);
  std::string out;
  char buf[4096];
  ssize_t n;
  off_t off = 0;
  while ((n = ::pread(fd.get(), buf, sizeof buf, off)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

}  // namespace appvirt::sandbox
