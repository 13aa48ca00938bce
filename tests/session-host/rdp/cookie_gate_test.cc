// The accept loop of appvirt-rdp against real sockets, without FreeRDP: what it hands off, what
// it closes, and that bad clients cannot stall good ones.
#include "session-host/rdp/cookie_gate.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/x224.h"
#include "session-host/rdp/listeners.h"

namespace appvirt::rdp {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
const std::string kSecret = "s3cr3t-0123456789abcdef";

std::vector<uint8_t> request_with_cookie(const std::string& line) {
  x224::ConnectionRequest req;
  if (!line.empty()) req.cookie = line;
  req.negotiation = x224::NegotiationRequest{0, 3, std::nullopt};
  return *x224::serialize(req);
}

class CookieGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gate_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s.sock";
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener_.get(), 64), 0);
    stop_.reset(::eventfd(0, EFD_CLOEXEC));
  }

  void TearDown() override {
    stop_gate();
    std::filesystem::remove_all(dir_);
  }

  void start_gate(CookieGate::Limits limits, std::vector<int> extra_listeners = {}) {
    std::vector<int> listeners = {listener_.get()};
    listeners.insert(listeners.end(), extra_listeners.begin(), extra_listeners.end());
    gate_ = std::make_unique<CookieGate>(
        listeners, kSecret,
        [this](UniqueFd fd, const PeerAddress& peer) {
          std::lock_guard lock(mu_);
          handed_.push_back(std::move(fd));
          peers_.push_back(peer);
          cv_.notify_all();
        },
        limits);
    thread_ = std::thread([this] { run_result_ = gate_->run(stop_.get()); });
  }

  void stop_gate() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    ASSERT_EQ(::write(stop_.get(), &one, sizeof one), 8);
    thread_.join();
    EXPECT_TRUE(run_result_) << run_result_.error().str();
  }

  UniqueFd connect_client() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }

  static void send_all(int fd, const std::vector<uint8_t>& data) {
    ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }

  // True when the server closed fd within `within` (EOF or reset on read).
  static bool closed_by_server(int fd, std::chrono::milliseconds within) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(within.count())) != 1) return false;
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  size_t wait_handed(size_t count, std::chrono::milliseconds within) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, within, [&] { return handed_.size() >= count; });
    return handed_.size();
  }

  std::string dir_, path_;
  UniqueFd listener_, stop_;
  std::unique_ptr<CookieGate> gate_;
  std::thread thread_;
  Result<void> run_result_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<UniqueFd> handed_;
  std::vector<PeerAddress> peers_;
};

TEST_F(CookieGateTest, HandsOffExactSecretWithRequestStillUnread) {
  start_gate({});
  UniqueFd client = connect_client();
  auto pdu = request_with_cookie("Cookie: msts=" + kSecret);
  send_all(client.get(), pdu);
  ASSERT_EQ(wait_handed(1, 2s), 1u);
  std::vector<uint8_t> got(pdu.size() + 10);
  std::lock_guard lock(mu_);
  ssize_t n = ::recv(handed_[0].get(), got.data(), got.size(), MSG_DONTWAIT);
  ASSERT_EQ(n, static_cast<ssize_t>(pdu.size()));  // FreeRDP gets to read the CR itself
  got.resize(static_cast<size_t>(n));
  EXPECT_EQ(got, pdu);
  EXPECT_EQ(peers_[0].host, "unix");
  EXPECT_TRUE(peers_[0].local);
}

TEST_F(CookieGateTest, ClosesEveryOtherCookie) {
  start_gate({});
  for (const std::string& line :
       {std::string("Cookie: msts=") + kSecret + "x", std::string("Cookie: msts=") + "s3cr3t",
        std::string("Cookie: msts=") + std::string(kSecret.size(), 'a'),
        std::string("Cookie: mstshash=") + kSecret, std::string("Cookie: MSTS=") + kSecret,
        std::string("")}) {
    UniqueFd client = connect_client();
    send_all(client.get(), request_with_cookie(line));
    EXPECT_TRUE(closed_by_server(client.get(), 2s)) << line;
  }
  EXPECT_EQ(wait_handed(1, 100ms), 0u);
}

TEST_F(CookieGateTest, ClosesGarbageOversizedAndTrailingDataAtOnce) {
  start_gate({});
  auto good = request_with_cookie("Cookie: msts=" + kSecret);
  std::vector<std::vector<uint8_t>> bad = {
      {'G', 'E', 'T', ' ', '/'},                            // not TPKT
      {0x16, 0x03, 0x01, 0x00, 0x10},                       // TLS ClientHello first
      {0x03, 0x00, 0x13, 0x88},                             // TPKT length 5000
      {0x03, 0x00, 0x00, 0x05},                             // TPKT length below minimum
  };
  auto trailing = good;
  trailing.push_back(0x16);
  bad.push_back(trailing);
  std::vector<uint8_t> huge(4096, 'A');  // a full 4 KiB "request": no consistent LI possible
  huge[0] = 3, huge[1] = 0, huge[2] = 0x10, huge[3] = 0x00;
  bad.push_back(huge);
  for (const auto& data : bad) {
    auto start = Clock::now();
    UniqueFd client = connect_client();
    send_all(client.get(), data);
    EXPECT_TRUE(closed_by_server(client.get(), 2s));
    EXPECT_LT(Clock::now() - start, 1s);  // not the timeout: refused on sight
  }
  EXPECT_EQ(wait_handed(1, 100ms), 0u);
}

TEST_F(CookieGateTest, TruncatedRequestFromClosingClientIsRefused) {
  start_gate({});
  UniqueFd client = connect_client();
  auto pdu = request_with_cookie("Cookie: msts=" + kSecret);
  pdu.resize(pdu.size() - 3);
  send_all(client.get(), pdu);
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  EXPECT_TRUE(closed_by_server(client.get(), 2s));
  EXPECT_EQ(wait_handed(1, 100ms), 0u);
}

TEST_F(CookieGateTest, RequestSplitAcrossWritesIsAccepted) {
  start_gate({});
  UniqueFd client = connect_client();
  auto pdu = request_with_cookie("Cookie: msts=" + kSecret);
  send_all(client.get(), std::vector<uint8_t>(pdu.begin(), pdu.begin() + 2));
  std::this_thread::sleep_for(50ms);
  send_all(client.get(), std::vector<uint8_t>(pdu.begin() + 2, pdu.begin() + 20));
  std::this_thread::sleep_for(50ms);
  send_all(client.get(), std::vector<uint8_t>(pdu.begin() + 20, pdu.end()));
  EXPECT_EQ(wait_handed(1, 2s), 1u);
}

TEST_F(CookieGateTest, SlowClientTimesOutWithoutBlockingOthers) {
  start_gate({.max_pending = 32, .first_pdu_timeout = 800ms});
  UniqueFd slow = connect_client();
  UniqueFd idle = connect_client();  // connects and sends nothing at all
  auto pdu = request_with_cookie("Cookie: msts=" + kSecret);
  auto start = Clock::now();
  std::thread dribble([&] {
    for (size_t i = 0; i < pdu.size(); ++i) {
      if (::send(slow.get(), &pdu[i], 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(150ms);
  UniqueFd good = connect_client();
  send_all(good.get(), pdu);
  EXPECT_EQ(wait_handed(1, 500ms), 1u);  // served while the slow one is still pending
  EXPECT_TRUE(closed_by_server(idle.get(), 2s));
  EXPECT_TRUE(closed_by_server(slow.get(), 2s));
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 700ms);
  EXPECT_LT(elapsed, 1500ms);
  dribble.join();
  EXPECT_EQ(wait_handed(2, 100ms), 1u);
}

TEST_F(CookieGateTest, FullPendingTableMakesNewClientsWaitNotFail) {
  start_gate({.max_pending = 2, .first_pdu_timeout = 500ms});
  UniqueFd idle1 = connect_client();
  UniqueFd idle2 = connect_client();
  std::this_thread::sleep_for(100ms);
  auto start = Clock::now();
  UniqueFd good = connect_client();  // sits in the backlog until a slot frees
  send_all(good.get(), request_with_cookie("Cookie: msts=" + kSecret));
  EXPECT_EQ(wait_handed(1, 2s), 1u);
  EXPECT_GE(Clock::now() - start, 300ms);
  EXPECT_TRUE(closed_by_server(idle1.get(), 1s));
  EXPECT_TRUE(closed_by_server(idle2.get(), 1s));
}

TEST_F(CookieGateTest, ServesTcpListenerToo) {
  auto tcp = listen_tcp("127.0.0.1:0");
  ASSERT_TRUE(tcp) << tcp.error().str();
  ASSERT_NE(tcp->port, 0);
  start_gate({}, {tcp->fd.get()});
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(tcp->port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  send_all(client.get(), request_with_cookie("Cookie: msts=" + kSecret));
  ASSERT_EQ(wait_handed(1, 2s), 1u);
  std::lock_guard lock(mu_);
  EXPECT_EQ(peers_[0].host, "127.0.0.1");
  EXPECT_TRUE(peers_[0].local);
}

TEST_F(CookieGateTest, StopFdEndsTheLoopPromptly) {
  start_gate({});
  UniqueFd idle = connect_client();
  std::this_thread::sleep_for(50ms);
  auto start = Clock::now();
  stop_gate();
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(CookieMatches, ExactLineOnly) {
  EXPECT_TRUE(CookieGate::cookie_matches("Cookie: msts=abc", "abc"));
  EXPECT_FALSE(CookieGate::cookie_matches("Cookie: msts=abd", "abc"));
  EXPECT_FALSE(CookieGate::cookie_matches("Cookie: msts=abcd", "abc"));
  EXPECT_FALSE(CookieGate::cookie_matches("Cookie: msts=ab", "abc"));
  EXPECT_FALSE(CookieGate::cookie_matches("Cookie: mstz=abc", "abc"));
  EXPECT_FALSE(CookieGate::cookie_matches("Cookie: msts=", ""));
  EXPECT_FALSE(CookieGate::cookie_matches("", "abc"));
}

}  // namespace
}  // namespace appvirt::rdp
