// isolation_probe: run inside a container by the root tests (copied into the user's home).
// Tries what a hostile user process would try and prints what happened as one JSON line.
//   isolation_probe check --host-pid N --port P [--read PATH]... [--write PATH]...
//   isolation_probe hog MIB        a child allocates up to MIB MiB; prints how it ended
//   isolation_probe forkbomb SEC   forks until the pids limit; everything exits after SEC s
//   isolation_probe sleep SEC
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;

int err_of(long rc) { return rc < 0 ? errno : 0; }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json status_fields() {
  json out = json::object();
  std::istringstream in(slurp("/proc/self/status"));
  for (std::string line; std::getline(in, line);) {
    for (const char* key :
         {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"}) {
      std::string prefix = std::string(key) + ":";
      if (line.rfind(prefix, 0) == 0) {
        std::string v = line.substr(prefix.size());
        v.erase(0, v.find_first_not_of(" \t"));
        out[key] = v;
      }
    }
  }
  return out;
}

json visible_pids() {
  json pids = json::array();
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return pids;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end == '\0' && pid > 0) pids.push_back(pid);
  }
  ::closedir(d);
  return pids;
}

json interfaces() {
  json names = json::array();
  struct if_nameindex* list = ::if_nameindex();
  if (list == nullptr) return names;
  for (struct if_nameindex* i = list; i->if_index != 0; ++i) names.push_back(i->if_name);
  ::if_freenameindex(list);
  return names;
}

bool loopback_up() {
  int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  bool up = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
  ::close(s);
  return up;
}

int connect_errno(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int e = err_of(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  ::close(s);
  return e;
}

int read_errno(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  char c;
  struct stat st {};
  ::fstat(fd, &st);
  int e = 0;
  if (S_ISDIR(st.st_mode)) {
    DIR* d = ::fdopendir(fd);
    e = d != nullptr && ::readdir(d) != nullptr ? 0 : errno;
    if (d) ::closedir(d);
    return e;
  }
  e = err_of(::read(fd, &c, 1));
  ::close(fd);
  return e;
}

int write_errno(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return errno;
  int e = err_of(::write(fd, "1", 1));
  ::close(fd);
  return e;
}

int rlimit_raise_errno() {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_max == RLIM_INFINITY) return -1;
  lim.rlim_max += 1;
  lim.rlim_cur = lim.rlim_max;
  return err_of(::setrlimit(RLIMIT_NOFILE, &lim));
}

int run_check(int argc, char** argv) {
  json out;
  pid_t host_pid = 0;
  int port = 0;
  json reads = json::object(), writes = json::object();
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string opt = argv[i], val = argv[i + 1];
    if (opt == "--host-pid") host_pid = std::atoi(val.c_str());
    if (opt == "--port") port = std::atoi(val.c_str());
    if (opt == "--read") reads[val] = read_errno(val);
    if (opt == "--write") writes[val] = write_errno(val);
  }
  out["uid"] = ::getuid();
  out["euid"] = ::geteuid();
  out["gid"] = ::getgid();
  gid_t groups[64];
  int n = ::getgroups(64, groups);
  out["groups"] = std::vector<gid_t>(groups, groups + (n > 0 ? n : 0));
  out["status"] = status_fields();
  out["self_pid"] = ::getpid();
  out["pids"] = visible_pids();
  std::string comm = slurp("/proc/1/comm");
  out["pid1_comm"] = comm.substr(0, comm.find('\n'));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  out["hostname"] = host;
  out["interfaces"] = interfaces();
  out["lo_up"] = loopback_up();
  out["connect_errno"] = connect_errno(port);
  out["reads"] = reads;
  out["writes"] = writes;
  out["ptrace_host_errno"] = err_of(::ptrace(PTRACE_ATTACH, host_pid, nullptr, nullptr));
  out["ptrace_init_errno"] = err_of(::ptrace(PTRACE_ATTACH, 1, nullptr, nullptr));
  out["mount_errno"] = err_of(::mount("tmpfs", "/tmp", "tmpfs", 0, nullptr));
  out["umount_errno"] = err_of(::umount2("/usr", MNT_DETACH));
  out["unshare_ns_errno"] = err_of(::unshare(CLONE_NEWNS));
  out["unshare_user_errno"] = err_of(::unshare(CLONE_NEWUSER));
  out["unshare_net_errno"] = err_of(::unshare(CLONE_NEWNET));
  out["setuid_root_errno"] = err_of(::setuid(0));
  out["mknod_errno"] = err_of(::mknod("/tmp/probe-sda", S_IFBLK | 0600, makedev(8, 0)));
  out["rlimit_raise_errno"] = rlimit_raise_errno();
  out["kill_init_rc"] = ::kill(1, SIGKILL);  // ignored by a namespace's init: it must survive
  out["proc_self_cgroup"] = slurp("/proc/self/cgroup");
  out["root_entries"] = [] {
    json names = json::array();
    if (DIR* d = ::opendir("/")) {
      while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
      ::closedir(d);
    }
    return names;
  }();
  std::cout << out.dump() << std::endl;
  return 0;
}

// The allocation runs in a child, so the parent (tiny) can report how the child ended.
int run_hog(long mib) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> blocks;
    for (long i = 0; i < mib / 4; ++i) {
      char* p = static_cast<char*>(std::malloc(4 << 20));
      if (p == nullptr) ::_exit(3);
      std::memset(p, 0x5a, 4 << 20);  // touch every page: charged to the memory cgroup
      blocks.push_back(p);
    }
    ::_exit(0);  // survived: no limit hit
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  json out = {{"hog_exited", WIFEXITED(status)},
              {"hog_exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1},
              {"hog_signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0}};
  std::cout << out.dump() << std::endl;
  return 0;
}

int run_forkbomb(int seconds) {
  ::alarm(static_cast<unsigned>(seconds));
  pid_t original = ::getpid();
  long forked = 0;
  for (;;) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(static_cast<unsigned>(seconds));  // alarms are not inherited
      forked = 0;
      continue;  // the child forks on too
    }
    if (pid > 0) {
      ++forked;
      continue;
    }
    if (::getpid() == original) {
      std::cout << json{{"fork_failed_errno", errno}, {"forked", forked}}.dump() << std::endl;
    }
    for (;;) ::pause();  // hold the pid until killed or the alarm fires
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: isolation_probe check|hog|forkbomb|sleep ...\n";
    return 2;
  }
  std::string mode = argv[1];
  if (mode == "check") return run_check(argc, argv);
  if (mode == "hog" && argc > 2) return run_hog(std::atol(argv[2]));
  if (mode == "forkbomb" && argc > 2) return run_forkbomb(std::atoi(argv[2]));
  if (mode == "sleep" && argc > 2) {
    ::sleep(static_cast<unsigned>(std::atoi(argv[2])));
    return 0;
  }
  std::cerr << "unknown mode " << mode << "\n";
  return 2;
}
