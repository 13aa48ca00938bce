#include "session-host/sandbox/container.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "session-host/sandbox/init.h"
#include "session-host/sandbox/privileges.h"

namespace appvirt::sandbox {
namespace {

constexpr char kGo[] = "go";
constexpr char kReady[] = "ok";
constexpr char kErrorPrefix[] = "error:";
constexpr int kSyncFd = 3;  // where the child keeps its end of the sync socket

// A directory the container uses that hostd may have prepared (group, mode); create it only
// when missing so hostd's choices stay.
Result<> ensure_dir(Sys& sys, const std::string& path, mode_t mode, uid_t uid, gid_t gid) {
  if (sys.exists(path)) return {};
  if (auto r = sys.mkdir(path, mode); !r) return r;
  if (auto r = sys.chmod(path, mode); !r) return r;  // mkdir's mode went through the umask
  return sys.chown(path, uid, gid);
}

// Best effort: a failed create leaves no process and no group behind.
void cleanup_cgroups(CgroupDriver& cgroups, const ContainerPlan& plan) {
  (void)cgroups.kill_all(plan.init_cgroup, std::chrono::seconds(2));
  (void)cgroups.remove(plan.init_cgroup);
  auto left = cgroups.procs(plan.req.cgroup);
  if (left && left->empty()) (void)cgroups.remove(plan.req.cgroup);
}

Result<> wait_for_go(Sys& sys, int sync_fd) {
  auto msg = sys.recv_msg(sync_fd, kChildSetupTimeoutMs);
  if (!msg) return tl::unexpected(msg.error());
  if (*msg != kGo) return fail("unexpected sync message \"" + *msg + "\"", EPROTO);
  return {};
}

// The child must not hold the helper's stdout (hostd reads the reply until EOF) nor any other
// fd of the helper: stdio goes to /dev/null and the log, the sync socket moves to fd 3.
void child_stdio(int devnull, int log, int sync_fd) {
  ::dup2(devnull, 0);
  ::dup2(log, 1);
  ::dup2(log, 2);
  if (sync_fd != kSyncFd) ::dup3(sync_fd, kSyncFd, O_CLOEXEC);
  ::close_range(kSyncFd + 1, ~0U, 0);
}

[[noreturn]] void child_main(Sys& sys, const ContainerPlan& plan, int devnull, int log,
                             int sync_fd) {
  ::prctl(PR_SET_NAME, "appvirt-init", 0, 0, 0);
  child_stdio(devnull, log, sync_fd);
  auto r = run_child_steps(sys, plan, kSyncFd);
  if (!r) {
    std::fprintf(stderr, "appvirt-init setup failed: %s\n", r.error().str().c_str());
    (void)sys.send_msg(kSyncFd, kErrorPrefix + r.error().str());
    ::_exit(1);
  }
  (void)sys.send_msg(kSyncFd, kReady);
  ::close(kSyncFd);
  run_init_loop();
}

Result<UniqueFd> open_log(Sys& sys, const std::string& path) {
  if (path.empty()) return sys.open("/dev/null", O_WRONLY);
  return sys.open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0640);
}

}  // namespace

Result<ContainerPlan> plan_container(const CreateRequest& req) {
  auto rootfs = plan_rootfs(req);
  if (!rootfs) return tl::unexpected(rootfs.error());
  return ContainerPlan{req, std::move(*rootfs), req.cgroup + "/init"};
}

Result<> prepare_runtime_dirs(Sys& sys, const ContainerPlan& plan) {
  const CreateRequest& req = plan.req;
  if (!sys.exists(req.home)) return fail("home " + req.home + " does not exist", ENOENT);
  if (auto r = mkdir_all(sys, req.runtime_dir, 0755); !r) return r;
  if (auto r = ensure_dir(sys, plan.rootfs.x11_dir, 0770, req.id.uid, req.id.gid); !r) return r;
  if (auto r = ensure_dir(sys, plan.rootfs.run_dir, 0700, req.id.uid, req.id.gid); !r) return r;
  return ensure_dir(sys, plan.rootfs.new_root, 0700, 0, 0);
}

Result<> setup_cgroup(CgroupDriver& cgroups, const ContainerPlan& plan) {
  if (auto r = cgroups.create(plan.req.cgroup); !r) return r;
  if (auto r = cgroups.set_limits(plan.req.cgroup, plan.req.limits); !r) return r;
  return cgroups.create(plan.init_cgroup);
}

Result<> release_child(Sys& sys, CgroupDriver& cgroups, const ContainerPlan& plan, pid_t child,
                       int sync_fd) {
  // Before "go": the child runs nothing of its own setup outside the limits.
  if (auto r = cgroups.add_proc(plan.init_cgroup, child); !r) return r;
  return sys.send_msg(sync_fd, kGo);
}

Result<> await_child(Sys& sys, int sync_fd) {
  auto msg = sys.recv_msg(sync_fd, kChildSetupTimeoutMs);
  if (!msg) return fail("container setup: " + msg.error().message, msg.error().err);
  if (*msg == kReady) return {};
  if (msg->rfind(kErrorPrefix, 0) == 0) {
    return fail("container setup: " + msg->substr(sizeof kErrorPrefix - 1));
  }
  return fail("container setup: unexpected message \"" + *msg + "\"", EPROTO);
}

Result<> run_child_steps(Sys& sys, const ContainerPlan& plan, int sync_fd) {
  const CreateRequest& req = plan.req;
  if (auto r = wait_for_go(sys, sync_fd); !r) return r;
  // Now inside <cgroup>/init: a cgroup namespace made here shows that group as the root.
  if (auto r = sys.unshare(CLONE_NEWCGROUP); !r) return r;
  if (auto r = sys.setsid(); !r) return r;  // not in hostd's session or process group
  if (auto r = sys.sethostname(req.hostname); !r) return r;
  if (auto r = make_mounts_private(sys); !r) return r;
  if (auto r = build_rootfs(sys, plan.rootfs); !r) return r;
  if (auto r = sys.set_link_up("lo"); !r) return r;
  return drop_privileges(sys, req.id);
}

// Parent side once the child exists: put it in its cgroup, let it go, wait for its report.
static Result<uint64_t> supervise_child(Sys& sys, CgroupDriver& cgroups, const ContainerPlan& plan,
                                        pid_t child, int sync_fd) {
  if (auto r = release_child(sys, cgroups, plan, child, sync_fd); !r)
    return tl::unexpected(r.error());
  if (auto r = await_child(sys, sync_fd); !r) return tl::unexpected(r.error());
  return process_start_time(sys, child);
}

Result<CreatedContainer> create_container(Sys& sys, CgroupDriver& cgroups,
                                          const ContainerPlan& plan) {
  if (auto r = prepare_runtime_dirs(sys, plan); !r) return tl::unexpected(r.error());
  // A second init in the same group would be a second container sharing the first one's
  // limits; refuse before touching anything (cleanup would kill the running one).
  if (auto running = cgroups.procs(plan.init_cgroup); running && !running->empty()) {
    return fail("a container is already running in " + plan.init_cgroup + " (pid " +
                    std::to_string(running->front()) + ")",
                EEXIST);
  }
  auto devnull = sys.open("/dev/null", O_RDWR);
  if (!devnull) return tl::unexpected(devnull.error());
  auto log = open_log(sys, plan.req.log_file);
  if (!log) return tl::unexpected(log.error());
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
    return fail_errno("socketpair(AF_UNIX, SOCK_SEQPACKET)");
  }
  UniqueFd parent_end(fds[0]), child_end(fds[1]);
  if (auto r = setup_cgroup(cgroups, plan); !r) {
    cleanup_cgroups(cgroups, plan);
    return tl::unexpected(r.error());
  }
  auto pid = sys.clone_process(kContainerCloneFlags);
  if (!pid) {
    cleanup_cgroups(cgroups, plan);
    return tl::unexpected(pid.error());
  }
  if (*pid == 0) child_main(sys, plan, devnull->get(), log->get(), child_end.get());
  child_end.reset();
  auto start = supervise_child(sys, cgroups, plan, *pid, parent_end.get());
  if (!start) {
    (void)sys.kill(*pid, SIGKILL);
    (void)sys.waitpid(*pid, 0);
    cleanup_cgroups(cgroups, plan);
    return tl::unexpected(start.error());
  }
  return CreatedContainer{*pid, *start};
}

Result<uint64_t> process_start_time(Sys& sys, pid_t pid) {
  auto stat = sys.read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return tl::unexpected(stat.error());
  // comm (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return fail("unparsable /proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat->substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(in >> field)) return fail("short /proc/" + std::to_string(pid) + "/stat", EINVAL);
  }
  return std::stoull(field);
}

}  // namespace appvirt::sandbox
