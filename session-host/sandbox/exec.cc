#include "session-host/sandbox/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "session-host/sandbox/container.h"
#include "session-host/sandbox/privileges.h"

namespace appvirt::sandbox {
namespace {

constexpr int kReportFd = 3;  // the grandchild's end of the report socket
constexpr char kStarted[] = "started";
constexpr char kGo[] = "go";
constexpr int kReportTimeoutMs = 10000;

Result<UniqueFd> open_output(Sys& sys, const std::string& path) {
  if (path.empty()) return sys.open("/dev/null", O_WRONLY);
  return sys.open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0640);
}

[[noreturn]] void fail_child(const Error& e) {
  std::string msg = e.str();
  (void)::send(kReportFd, msg.data(), msg.size(), MSG_NOSIGNAL);
  ::_exit(126);
}

[[noreturn]] void exec_grandchild(Sys& sys, const ExecRequest& req, int devnull, int log,
                                  int report_fd) {
  (void)sys.setsid();  // the new process leads its own session, apart from hostd's
  ::dup2(devnull, 0);
  ::dup2(log, 1);
  ::dup2(log, 2);
  if (report_fd != kReportFd) ::dup3(report_fd, kReportFd, O_CLOEXEC);
  ::close_range(kReportFd + 1, ~0U, 0);
  // Sent by this process, so the kernel attaches its pid, translated to the helper's
  // (host) pid namespace on receipt.
  (void)::send(kReportFd, kStarted, sizeof kStarted - 1, MSG_NOSIGNAL);
  // Wait until the helper has reaped our exited parent: the program never sees its zombie.
  if (auto go = sys.recv_msg(kReportFd, kReportTimeoutMs); !go || *go != kGo) {
    fail_child(go ? Error{"unexpected message from the helper: " + *go, EPROTO} : go.error());
  }
  if (auto r = drop_privileges(sys, req.id); !r) fail_child(r.error());
  // As the user: the user's own permissions decide whether cwd is reachable.
  if (auto r = sys.chdir(req.cwd); !r) fail_child(r.error());
  std::vector<char*> argv, env;
  for (const std::string& a : req.argv) argv.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& e : req.env) env.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  env.push_back(nullptr);
  ::execve(argv[0], argv.data(), env.data());
  fail_child(Error{"execve(" + req.argv[0] + ")", errno});
}

// The child, already in the container's pid namespace, forks the real process and exits:
// an orphan goes to the child reaper of its dying parent's pid namespace, so the process ends
// up a child of the container's init (had the helper itself forked it and exited, it would go
// to hostd or the host's init instead).
[[noreturn]] void exec_child(Sys& sys, const ExecRequest& req, int devnull, int log,
                             int report_fd) {
  auto pid = sys.clone_process(0);
  if (!pid) {
    std::string msg = pid.error().str();
    (void)::send(report_fd, msg.data(), msg.size(), MSG_NOSIGNAL);
    ::_exit(1);
  }
  if (*pid == 0) exec_grandchild(sys, req, devnull, log, report_fd);
  ::_exit(0);
}

// One message from the report socket and the pid of its sender (SO_PASSCRED).
Result<std::pair<std::string, pid_t>> recv_report(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, kReportTimeoutMs);
  } while (rc < 0 && errno == EINTR);
  if (rc <= 0)
    return fail("no report from the process in the container", rc == 0 ? ETIMEDOUT : errno);
  char buf[2048];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return fail_errno("recvmsg(report socket)");
  pid_t sender = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      sender = cred.pid;
    }
  }
  return std::pair{std::string(buf, static_cast<size_t>(n)), sender};
}

// "started" with the process's host pid, "go" back, then EOF when execve closed the socket, or
// an error.
Result<pid_t> await_exec(Sys& sys, int fd) {
  auto started = recv_report(fd);
  if (!started) return tl::unexpected(started.error());
  if (started->first != kStarted) return fail("in container: " + started->first);
  pid_t pid = started->second;
  if (auto r = sys.send_msg(fd, kGo); !r) return tl::unexpected(r.error());
  auto after = recv_report(fd);
  if (!after) return tl::unexpected(after.error());
  if (!after->first.empty()) return fail("in container: " + after->first);
  if (pid <= 0) return fail("no pid in the report of the process in the container", EPROTO);
  return pid;
}

}  // namespace

const std::vector<std::pair<std::string, int>>& container_namespaces() {
  static const std::vector<std::pair<std::string, int>> list = {
      {"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
      {"net", CLONE_NEWNET},       {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}};
  return list;
}

Result<> check_container_init(Sys& sys, const ExecRequest& req) {
  std::string proc = "/proc/" + std::to_string(req.init_pid);
  for (const char* ns : {"pid", "mnt"}) {
    auto ours = sys.readlink(std::string("/proc/self/ns/") + ns);
    if (!ours) return tl::unexpected(ours.error());
    auto theirs = sys.readlink(proc + "/ns/" + ns);
    if (!theirs) return tl::unexpected(theirs.error());
    if (*ours == *theirs) {
      return fail("pid " + std::to_string(req.init_pid) + " is not a container init: it shares " +
                      ns + " namespace " + *ours + " with the host",
                  EINVAL);
    }
  }
  if (!req.init_start_time) return {};
  auto start = process_start_time(sys, req.init_pid);
  if (!start) return tl::unexpected(start.error());
  if (*start != *req.init_start_time) {
    return fail("pid " + std::to_string(req.init_pid) + " started at " + std::to_string(*start) +
                    ", not " + std::to_string(*req.init_start_time) + ": the init is gone",
                ESRCH);
  }
  return {};
}

Result<std::string> container_cgroup_of(Sys& sys, pid_t init_pid, CgroupVersion version) {
  std::string file = "/proc/" + std::to_string(init_pid) + "/cgroup";
  auto text = sys.read_file(file);
  if (!text) return tl::unexpected(text.error());
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    // "hierarchy-id:controller,list:/path"; v2 is "0::/path", v1 is judged by its memory line.
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
    bool match = version == CgroupVersion::v2 ? line.rfind("0::", 0) == 0
                                              : controllers.find(",memory,") != std::string::npos;
    if (!match) continue;
    std::string path = line.substr(second + 1);
    size_t slash = path.rfind('/');
    if (path.size() < 2 || path[0] != '/' || slash == 0 || slash == std::string::npos) {
      return fail("pid " + std::to_string(init_pid) + " is in cgroup " + path +
                      ", not in a container's init group",
                  EINVAL);
    }
    return path.substr(1, slash - 1);
  }
  return fail(
      "no " + std::string(version == CgroupVersion::v2 ? "v2" : "memory") + " line in " + file,
      ENOENT);
}

Result<> check_session_cgroup(Sys& sys, const ExecRequest& req, CgroupVersion version) {
  auto container = container_cgroup_of(sys, req.init_pid, version);
  if (!container) return tl::unexpected(container.error());
  std::string prefix = *container + "/";
  if (req.cgroup.rfind(prefix, 0) != 0 || req.cgroup == prefix + "init") {
    return fail("cgroup " + req.cgroup + " is not a session group of the container's " + *container,
                EINVAL);
  }
  return {};
}

Result<std::vector<NamespaceFd>> open_namespaces(Sys& sys, pid_t init_pid) {
  std::vector<NamespaceFd> out;
  for (const auto& [name, type] : container_namespaces()) {
    auto fd = sys.open("/proc/" + std::to_string(init_pid) + "/ns/" + name, O_RDONLY);
    if (!fd) return tl::unexpected(fd.error());
    out.push_back(NamespaceFd{name, type, std::move(*fd)});
  }
  return out;
}

Result<> join_namespaces(Sys& sys, const std::vector<NamespaceFd>& ns) {
  for (const NamespaceFd& n : ns) {
    if (auto r = sys.setns(n.fd.get(), n.type); !r) return r;
  }
  return {};
}

Result<pid_t> exec_in_container(Sys& sys, CgroupDriver& cgroups, const ExecRequest& req) {
  if (auto r = check_container_init(sys, req); !r) return tl::unexpected(r.error());
  if (auto r = check_session_cgroup(sys, req, cgroups.version()); !r) {
    return tl::unexpected(r.error());
  }
  auto ns = open_namespaces(sys, req.init_pid);
  if (!ns) return tl::unexpected(ns.error());
  // Checked again with the fds held: they now pin the namespaces of the process we checked.
  if (auto r = check_container_init(sys, req); !r) return tl::unexpected(r.error());
  auto devnull = sys.open("/dev/null", O_RDWR);
  if (!devnull) return tl::unexpected(devnull.error());
  auto log = open_output(sys, req.log_file);  // on the host: the path is a host path
  if (!log) return tl::unexpected(log.error());
  if (auto r = cgroups.create(req.cgroup); !r) return tl::unexpected(r.error());
  // The helper joins the group itself; the forked child inherits it from birth.
  if (auto r = cgroups.add_proc(req.cgroup, ::getpid()); !r) return tl::unexpected(r.error());
  if (auto r = join_namespaces(sys, *ns); !r) return tl::unexpected(r.error());
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
    return fail_errno("socketpair(AF_UNIX, SOCK_SEQPACKET)");
  }
  UniqueFd report(fds[0]), child_end(fds[1]);
  int on = 1;
  if (::setsockopt(report.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) {
    return fail_errno("setsockopt(SO_PASSCRED)");
  }
  auto child = sys.clone_process(0);
  if (!child) return tl::unexpected(child.error());
  if (*child == 0) exec_child(sys, req, devnull->get(), log->get(), child_end.get());
  child_end.reset();
  auto status = sys.waitpid(*child, 0);
  if (!status) return tl::unexpected(status.error());
  return await_exec(sys, report.get());
}

}  // namespace appvirt::sandbox
