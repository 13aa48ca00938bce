#include "tests/gateway/gateway_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/x224.h"

namespace appvirt::testing {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

BrokerLink link_to(const FakeBroker& broker) {
  return BrokerLink{broker.port(), broker.cert_file(), broker.secret_file()};
}

std::string write_gateway_config(const std::string& dir, const BrokerLink& broker,
                                 const std::string& extra_toml, uint16_t listen_port) {
  std::string path = dir + "/gateway.toml";
  std::ofstream out(path);
  out << "log_level = \"debug\"\n"
      << "[listen]\naddress = \"127.0.0.1\"\nport = " << listen_port << "\n"
      << "[broker]\nurl = \"https://127.0.0.1:" << broker.port << "\"\n"
      << "ca_file = \"" << broker.cert_file << "\"\n"
      << "secret_file = \"" << broker.secret_file << "\"\n"
      << "timeout_ms = 3000\nlogon_timeout_ms = 5000\n"
      << "[logon]\ncert_file = \"" << dir << "/logon.crt\"\nkey_file = \"" << dir
      << "/logon.key\"\ncert_common_name = \"127.0.0.1\"\ntimeout_ms = 30000\n"
      << extra_toml << "\n";
  return path;
}

Result<GatewayProcess> GatewayProcess::start(const std::string& binary, const std::string& dir,
                                             const FakeBroker& broker,
                                             const std::string& extra_toml) {
  return start(binary, dir, link_to(broker), extra_toml, 0);
}

Result<GatewayProcess> GatewayProcess::start(const std::string& binary, const std::string& dir,
                                             const BrokerLink& broker,
                                             const std::string& extra_toml,
                                             uint16_t listen_port) {
  GatewayProcess g;
  g.config_file_ = write_gateway_config(dir, broker, extra_toml, listen_port);
  g.log_file_ = dir + "/gateway.log";
  std::string out_file = dir + "/gateway.out";
  SpawnOptions o;
  o.stdout_file = out_file;
  o.stderr_file = g.log_file_;
  // Sanitizer builds: full stacks for leaks, so the suppression of FreeRDP's own leak matches.
  const char* asan = std::getenv("ASAN_OPTIONS");
  o.env["ASAN_OPTIONS"] = std::string(asan ? asan : "") + (asan ? ":" : "") + "fast_unwind_on_malloc=0";
  o.env["LSAN_OPTIONS"] = "suppressions=" APPVIRT_GATEWAY_LSAN_SUPP;
  auto child = Child::spawn({binary, "--config", g.config_file_}, o);
  if (!child) return tl::unexpected(child.error());
  g.child_ = std::move(*child);
  auto end = Clock::now() + 20s;
  while (Clock::now() < end) {
    std::string out = read_text_file(out_file);
    auto pos = out.find("\"port\":");
    if (pos != std::string::npos && out.find('}', pos) != std::string::npos) {
      g.port_ = static_cast<uint16_t>(std::stoi(out.substr(pos + 7)));
      return g;
    }
    if (g.child_.wait_exit(20ms)) break;
  }
  return fail("appvirt-gateway did not start: " + read_text_file(g.log_file_));
}

std::string GatewayProcess::log() const { return read_text_file(log_file_); }

size_t GatewayProcess::count_in_log(const std::string& needle) const {
  std::string text = log();
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

bool GatewayProcess::wait_log(const std::string& needle, size_t count,
                              std::chrono::milliseconds timeout) const {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (count_in_log(needle) >= count) return true;
    std::this_thread::sleep_for(50ms);
  }
  return count_in_log(needle) >= count;
}

UniqueFd connect_loopback(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd.reset();
  return fd;
}

bool send_all(int fd, const std::vector<uint8_t>& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::optional<std::chrono::milliseconds> time_to_close(int fd, std::chrono::milliseconds within) {
  auto start = Clock::now();
  while (Clock::now() - start < within) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }
  }
  return std::nullopt;
}

std::vector<uint8_t> connection_request(const std::optional<std::string>& cookie,
                                        bool correlation_info) {
  x224::ConnectionRequest req;
  req.dst_ref = 0;
  req.src_ref = 0x1234;
  req.cookie = cookie;
  req.negotiation = x224::NegotiationRequest{0, 3, std::nullopt};
  if (correlation_info) {
    std::array<uint8_t, x224::kCorrelationInfoSize> info{};
    info[0] = x224::kTypeNegCorrelationInfo;
    info[2] = static_cast<uint8_t>(x224::kCorrelationInfoSize);
    for (size_t i = 4; i < 20; ++i) info[i] = static_cast<uint8_t>(0x40 + i);
    req.negotiation->correlation_info = info;
  }
  return *x224::serialize(req);
}

HostileClients::~HostileClients() {
  stop_slow_ = true;
  if (slowloris_.joinable()) slowloris_.join();
}

Result<void> HostileClients::open(uint16_t port, const std::vector<uint8_t>& valid_pdu) {
  if (valid_pdu.size() < 12) return fail("HostileClients: the valid request is too short");
  opened_at_ = Clock::now();
  garbage_ = connect_loopback(port);
  oversized_ = connect_loopback(port);
  cut_ = connect_loopback(port);
  truncated_ = connect_loopback(port);
  slow_ = connect_loopback(port);
  if (!garbage_ || !oversized_ || !cut_ || !truncated_ || !slow_) return fail_errno("connect");
  if (!send_all(garbage_.get(), {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'}) ||
      !send_all(oversized_.get(), {0x03, 0x00, 0x20, 0x00}) ||  // 8 KiB announced
      !send_all(cut_.get(), {valid_pdu.begin(), valid_pdu.begin() + 9}) ||
      !send_all(truncated_.get(), {valid_pdu.begin(), valid_pdu.end() - 5})) {
    return fail_errno("send");
  }
  ::shutdown(cut_.get(), SHUT_WR);
  slowloris_ = std::thread([this, fd = slow_.get(), pdu = valid_pdu] {
    for (uint8_t b : pdu) {
      if (stop_slow_ || ::send(fd, &b, 1, MSG_NOSIGNAL) != 1) return;
      for (int i = 0; i < 10 && !stop_slow_; ++i) std::this_thread::sleep_for(100ms);
    }
  });
  return {};
}

std::array<std::optional<std::chrono::milliseconds>, 3> HostileClients::wait_refused(
    std::chrono::milliseconds within) {
  return {time_to_close(garbage_.get(), within), time_to_close(oversized_.get(), within),
          time_to_close(cut_.get(), within)};
}

std::array<std::optional<std::chrono::milliseconds>, 2> HostileClients::wait_timed_out(
    std::chrono::milliseconds within) {
  std::array<std::optional<std::chrono::milliseconds>, 2> out = {
      time_to_close(truncated_.get(), within), time_to_close(slow_.get(), within)};
  stop_slow_ = true;
  if (slowloris_.joinable()) slowloris_.join();
  return out;
}

}  // namespace appvirt::testing
