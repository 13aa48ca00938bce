// gateway_bench: what appvirt-gateway costs on the data path, measured in one run against the
// direct path to the same endpoint:
//   - round-trip latency (64-byte ping-pong, p50/p99) client → endpoint echo, direct (TCP and
//     Unix) vs through the gateway (client TCP → gateway → endpoint Unix socket, splice);
//   - throughput (MB/s each way) of a bulk echo on one connection, same paths;
//   - resident memory and CPU of 1,000 idle pre-routing connections (connected, nothing sent).
// The endpoint is an in-process echo server (one thread per connection, read/write), the broker
// the tests' fake HTTPS broker, the gateway the real binary. Prints a Markdown section;
// --append FILE appends it there too.
//
//   gateway_bench --gateway build/gateway/appvirt-gateway [--pings 20000] [--bulk-mib 512]
//                 [--idle 1000] [--append bench/RESULTS.md]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/gateway/fake_broker.h"
#include "tests/gateway/gateway_process.h"
#include "tests/tools/test_support.h"

namespace {

using namespace appvirt;
using namespace appvirt::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- echo endpoint: Unix socket and loopback TCP; skips the first PDU, then echoes ----

class EchoEndpoint {
 public:
  EchoEndpoint(const std::string& unix_path) {
    unix_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, unix_path.c_str(), sizeof a.sun_path - 1);
    ::bind(unix_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(unix_fd_, 64);
    tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof in;
    ::bind(tcp_fd_, reinterpret_cast<sockaddr*>(&in), len);
    ::listen(tcp_fd_, 64);
    ::getsockname(tcp_fd_, reinterpret_cast<sockaddr*>(&in), &len);
    tcp_port_ = ntohs(in.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~EchoEndpoint() {
    stop_ = true;
    ::shutdown(unix_fd_, SHUT_RDWR);
    ::shutdown(tcp_fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : workers_) t.join();
    ::close(unix_fd_);
    ::close(tcp_fd_);
  }
  uint16_t tcp_port() const { return tcp_port_; }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p[2] = {{unix_fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}};
      if (::poll(p, 2, 200) <= 0) continue;
      for (auto& pf : p) {
        if (!(pf.revents & POLLIN)) continue;
        int fd = ::accept4(pf.fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        workers_.emplace_back([fd] { echo(fd); });
      }
    }
  }
  static void echo(int fd) {
    uint8_t header[4];
    if (::recv(fd, header, 4, MSG_WAITALL) == 4) {
      size_t rest = ((size_t(header[2]) << 8) | header[3]) - 4;
      std::vector<uint8_t> skip(rest);
      if (::recv(fd, skip.data(), rest, MSG_WAITALL) == static_cast<ssize_t>(rest)) {
        std::vector<char> buf(256 * 1024);
        for (;;) {
          ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
          if (n <= 0) break;
          ssize_t done = 0;
          while (done < n) {
            ssize_t w = ::send(fd, buf.data() + done, n - done, MSG_NOSIGNAL);
            if (w <= 0) break;
            done += w;
          }
          if (done < n) break;
        }
      }
    }
    ::close(fd);
  }
  int unix_fd_ = -1, tcp_fd_ = -1;
  uint16_t tcp_port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

// ---- client side ----

UniqueFd connect_unix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd.reset();
  return fd;
}

UniqueFd open_path(const std::string& path, const std::string& label, uint16_t port,
                   const std::string& cookie) {
  UniqueFd fd = label == "direct-unix" ? connect_unix(path) : connect_loopback(port);
  if (!fd) return fd;
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  send_all(fd.get(), connection_request(cookie));
  return fd;
}

struct Latency {
  double p50_us = 0, p99_us = 0, mean_us = 0;
};

Latency ping_pong(int fd, int count) {
  std::vector<double> rtts;
  rtts.reserve(count);
  uint8_t msg[64], back[64];
  std::memset(msg, 0x5a, sizeof msg);
  for (int i = 0; i < count + 200; ++i) {  // the first 200 warm up
    auto t0 = Clock::now();
    if (::send(fd, msg, sizeof msg, MSG_NOSIGNAL) != sizeof msg) break;
    if (::recv(fd, back, sizeof back, MSG_WAITALL) != sizeof back) break;
    if (i >= 200) rtts.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  Latency l;
  if (rtts.empty()) return l;
  std::sort(rtts.begin(), rtts.end());
  l.p50_us = rtts[rtts.size() / 2];
  l.p99_us = rtts[rtts.size() * 99 / 100];
  double sum = 0;
  for (double r : rtts) sum += r;
  l.mean_us = sum / rtts.size();
  return l;
}

// Bulk echo: one thread writes `bytes`, this one reads them back. MB/s each way.
double bulk_echo(int fd, size_t bytes) {
  std::vector<char> out(256 * 1024, 'x'), in(256 * 1024);
  auto t0 = Clock::now();
  std::thread writer([&] {
    size_t sent = 0;
    while (sent < bytes) {
      ssize_t n = ::send(fd, out.data(), std::min(out.size(), bytes - sent), MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  });
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::recv(fd, in.data(), in.size(), 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  writer.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return got == bytes ? (bytes / 1e6) / secs : 0.0;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// utime + stime in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n > 2 ? n - 2 : 0;
}

std::string fmt(double v, int prec = 1) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(prec);
  s << v;
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gateway_bench: appvirt-gateway vs direct, same run"};
  std::string gateway_bin, append;
  int pings = 20000, idle = 1000;
  size_t bulk_mib = 512;
  app.add_option("--gateway", gateway_bin, "appvirt-gateway binary")->required();
  app.add_option("--pings", pings, "round trips per path");
  app.add_option("--bulk-mib", bulk_mib, "MiB echoed per path");
  app.add_option("--idle", idle, "idle pre-routing connections");
  app.add_option("--append", append, "also append the Markdown section to this file");
  CLI11_PARSE(app, argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);

  TempDir dir;
  FakeBroker broker(dir.path());
  const std::string sock = dir.path() + "/echo.sock";
  EchoEndpoint echo(sock);
  auto gw = GatewayProcess::start(gateway_bin, dir.path(), broker,
                                  "[limits]\nfirst_pdu_timeout_ms = 60000\nmax_pre_routing = " +
                                      std::to_string(idle + 100) + "\nmax_connections = " +
                                      std::to_string(idle + 200) + "\n");
  if (!gw) {
    std::cerr << gw.error().message << "\n";
    return 1;
  }
  // The same gateway with the read/write relay, to see what splice buys.
  TempDir copy_dir;
  auto gw_copy = GatewayProcess::start(gateway_bin, copy_dir.path(), broker, "[relay]\nmode = \"copy\"\n");
  if (!gw_copy) {
    std::cerr << gw_copy.error().message << "\n";
    return 1;
  }
  const std::string secret = "bench-secret-0123456789abcdef";
  int token_no = 0;
  auto gateway_cookie = [&] {
    std::string token = "bench-token-" + std::to_string(++token_no);
    broker.add_token(token, FakeSession{"s-bench", "bench", secret, sock, ""});
    return "Cookie: msts=" + token;
  };

  struct Row {
    std::string path;
    Latency lat;
    double mbps = 0;
  };
  std::vector<Row> rows;
  for (const std::string path : {"direct-tcp", "direct-unix", "gateway (splice)", "gateway (copy)"}) {
    Row row{path, {}, 0};
    for (int phase = 0; phase < 2; ++phase) {
      bool via_gateway = path.starts_with("gateway");
      std::string cookie = via_gateway ? gateway_cookie() : "Cookie: msts=" + secret;
      uint16_t port = !via_gateway ? echo.tcp_port()
                      : path == "gateway (copy)" ? gw_copy->port() : gw->port();
      UniqueFd fd = open_path(sock, path, port, cookie);
      if (!fd) {
        std::cerr << "cannot connect " << path << "\n";
        return 1;
      }
      if (phase == 0) row.lat = ping_pong(fd.get(), pings);
      else row.mbps = bulk_echo(fd.get(), bulk_mib << 20);
    }
    rows.push_back(row);
  }

  // Idle pre-routing connections: connected, nothing sent.
  pid_t pid = gw->child().pid();
  std::this_thread::sleep_for(500ms);
  long rss_before = rss_kib(pid);
  size_t fds_before = open_fds(pid);
  std::vector<UniqueFd> idle_fds;
  for (int i = 0; i < idle; ++i) idle_fds.push_back(connect_loopback(gw->port()));
  auto deadline = Clock::now() + 10s;
  while (open_fds(pid) < fds_before + idle && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  size_t held = open_fds(pid) - fds_before;
  std::this_thread::sleep_for(500ms);
  long rss_after = rss_kib(pid);
  long ticks0 = cpu_ticks(pid);
  std::this_thread::sleep_for(3s);
  long ticks1 = cpu_ticks(pid);
  double idle_cpu_pct = 100.0 * (ticks1 - ticks0) / ::sysconf(_SC_CLK_TCK) / 3.0;
  idle_fds.clear();

  utsname u{};
  ::uname(&u);
  double load[3] = {};
  ::getloadavg(load, 3);
  std::ostringstream md;
  md << "\n## Gateway (issue 4): appvirt-gateway vs direct, same run\n\n"
     << "`gateway_bench --pings " << pings << " --bulk-mib " << bulk_mib << " --idle " << idle
     << "` (" << u.release << ", " << std::thread::hardware_concurrency()
     << " CPUs, load average at the end " << fmt(load[0], 2)
     << "; other engineers were compiling on the same cores, so absolute numbers are noisy).\n"
     << "Endpoint: an in-process echo server (read/write, one thread per connection) on a Unix\n"
     << "socket and on loopback TCP; gateway path: client TCP → appvirt-gateway → endpoint Unix\n"
     << "socket, relaying with splice (default) or, for comparison, read/write (`relay.mode = \"copy\"`). Latency: 64-byte ping-pong, " << pings << " round trips after 200 "
     << "warm-up. Throughput: " << bulk_mib << " MiB echoed on one connection (MB/s each way).\n\n"
     << "| path | RTT p50 (µs) | RTT p99 (µs) | RTT mean (µs) | echo throughput (MB/s each way) |\n"
     << "| --- | ---: | ---: | ---: | ---: |\n";
  for (const Row& r : rows) {
    md << "| " << r.path << " | " << fmt(r.lat.p50_us) << " | " << fmt(r.lat.p99_us) << " | "
       << fmt(r.lat.mean_us) << " | " << fmt(r.mbps, 0) << " |\n";
  }
  md << "\nIdle pre-routing connections (connected, nothing sent; first-PDU timeout raised to 60 s "
     << "for the measurement): " << held << " held by the gateway, RSS " << fmt(rss_before / 1024.0, 1)
     << " MiB → " << fmt(rss_after / 1024.0, 1) << " MiB (" << fmt((rss_after - rss_before) * 1024.0 / std::max<size_t>(held, 1), 0)
     << " bytes per connection), gateway CPU over 3 s with them open: " << fmt(idle_cpu_pct, 2)
     << " %.\n";
  std::cout << md.str();
  if (!append.empty()) std::ofstream(append, std::ios::app) << md.str();
  return 0;
}
