// appvirt-rdp as a whole, with real parts: Xvfb (in its own mount + network namespace, reachable
// only through its X socket directory, as in a user's container), the appvirt-rdp binary started
// as root, the real xfreerdp client, raw sockets for hostile clients, and rdp-probe for pixels.
// Needs root (label "root"). Creates the appvirt-rdp user if missing and removes it again.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "common/tls_cert.h"
#include "common/unique_fd.h"
#include "common/x224.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A child process whose stdout+stderr go to a file; killed and reaped on destruction.
class Child {
 public:
  Child() = default;
  Child(std::vector<std::string> argv, const fs::path& log, std::vector<std::string> env = {},
        int fd3 = -1) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      if (fd3 >= 0) ::dup2(fd3, 3);  // dup2 clears FD_CLOEXEC on the copy
      ::setpgid(0, 0);
      for (auto& e : env) ::putenv(e.data());
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), status_(o.status_) {}
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(status_, o.status_);
    return *this;
  }
  ~Child() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }
  void signal(int sig) const {
    if (running()) ::kill(pid_, sig);
  }
  // Exit code (128+signal when killed) once it has ended within `within`, else nullopt.
  std::optional<int> wait_for(std::chrono::milliseconds within) {
    if (status_) return status_;
    auto end = Clock::now() + within;
    do {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
      std::this_thread::sleep_for(20ms);
    } while (Clock::now() < end);
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds within) {
  auto end = Clock::now() + within;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

std::string random_hex(size_t bytes) {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    unsigned char c = static_cast<unsigned char>(urandom.get());
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

int run(std::vector<std::string> argv, const fs::path& log) {
  Child c(std::move(argv), log);
  auto code = c.wait_for(30s);
  return code ? *code : -1;
}

// A display number free on the host (no lock file, no socket) and in our private socket dir.
int free_display(int from) {
  for (int n = from; n < from + 200; ++n) {
    if (!fs::exists("/tmp/.X" + std::to_string(n) + "-lock") &&
        !fs::exists("/tmp/.X11-unix/X" + std::to_string(n))) {
      return n;
    }
  }
  return -1;
}

// What every test shares: service user, TLS pair, secret, the session's Xvfb and a client Xvfb.
struct Environment {
  fs::path dir;
  fs::path x11_dir, xauth, cert, key, secret_file, sock_dir;
  std::string secret;
  int session_display = -1, client_display = -1;
  Child session_xvfb, client_xvfb;
  bool created_user = false, created_x11_unix = false;
  uid_t rdp_uid = 0;
  gid_t rdp_gid = 0;
};
Environment* env = nullptr;

class RdpEndpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(::geteuid(), 0u) << "these tests need root (label root)";
    env = new Environment;
    ensure_user();
    std::string tmpl = "/tmp/appvirt-rdp-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    env->dir = tmpl;
    env->x11_dir = env->dir / "x11";
    env->sock_dir = env->dir / "s";
    env->xauth = env->dir / "Xauthority";
    env->cert = env->dir / "rdp.crt";
    env->key = env->dir / "rdp.key";
    env->secret_file = env->dir / "secret";
    fs::create_directories(env->x11_dir);
    fs::permissions(env->x11_dir, fs::perms(01777));
    fs::create_directories(env->sock_dir);  // as in the contract: appvirt-rdp 0700
    ASSERT_EQ(::chown(env->sock_dir.c_str(), env->rdp_uid, env->rdp_gid), 0);
    ASSERT_EQ(::chmod(env->sock_dir.c_str(), 0700), 0);
    ASSERT_TRUE(appvirt::ensure_self_signed_cert(env->cert, env->key, "localhost", 2));
    env->secret = random_hex(20);
    std::ofstream(env->secret_file) << env->secret << "\n";
    start_session_xvfb();
    start_client_xvfb();
  }

  static void TearDownTestSuite() {
    if (!env) return;
    env->session_xvfb.signal(SIGTERM);
    env->client_xvfb.signal(SIGTERM);
    env->session_xvfb.wait_for(5s);
    env->client_xvfb.wait_for(5s);
    env->session_xvfb = Child();
    env->client_xvfb = Child();
    std::error_code ec;
    fs::remove_all(env->dir, ec);
    if (env->created_x11_unix) fs::remove("/tmp/.X11-unix", ec);
    if (env->created_user) run({"userdel", "appvirt-rdp"}, "/dev/null");
    delete env;
    env = nullptr;
  }

  static void ensure_user() {
    if (!::getpwnam("appvirt-rdp")) {
      ASSERT_EQ(run({"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                     "--shell", "/usr/sbin/nologin", "appvirt-rdp"},
                    "/dev/null"),
                0);
      env->created_user = true;
    }
    struct passwd* pw = ::getpwnam("appvirt-rdp");
    ASSERT_NE(pw, nullptr);
    env->rdp_uid = pw->pw_uid;
    env->rdp_gid = pw->pw_gid;
  }

  // Xvfb in its own mount and network namespaces with our dir on /tmp/.X11-unix: its abstract
  // socket is out of reach, so appvirt-rdp can only get in through the bind-mounted directory.
  static void start_session_xvfb() {
    if (!fs::exists("/tmp/.X11-unix")) {
      fs::create_directory("/tmp/.X11-unix");
      fs::permissions("/tmp/.X11-unix", fs::perms(01777));
      env->created_x11_unix = true;
    }
    env->session_display = free_display(140);
    ASSERT_GT(env->session_display, 0);
    const std::string display = ":" + std::to_string(env->session_display);
    ASSERT_EQ(run({"xauth", "-f", env->xauth.string(), "add", display, ".", random_hex(16)},
                  env->dir / "xauth.log"),
              0);
    env->session_xvfb = Child(
        {"unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
         "mount --bind \"$0\" /tmp/.X11-unix && exec Xvfb \"$1\" -auth \"$2\" -nolisten tcp "
         "-screen 0 800x600x24 -audit 4",
         env->x11_dir.string(), display, env->xauth.string()},
        env->dir / "session-xvfb.log");
    fs::path sock = env->x11_dir / ("X" + std::to_string(env->session_display));
    ASSERT_TRUE(wait_until([&] { return fs::exists(sock); }, 15s))
        << read_file(env->dir / "session-xvfb.log");
  }

  static void start_client_xvfb() {
    env->client_display = free_display(env->session_display + 1);
    ASSERT_GT(env->client_display, 0);
    env->client_xvfb = Child({"Xvfb", ":" + std::to_string(env->client_display), "-nolisten",
                              "tcp", "-screen", "0", "1024x768x24"},
                             env->dir / "client-xvfb.log");
    fs::path sock = "/tmp/.X11-unix/X" + std::to_string(env->client_display);
    ASSERT_TRUE(wait_until([&] { return fs::exists(sock); }, 15s))
        << read_file(env->dir / "client-xvfb.log");
  }

  void TearDown() override {
    if (rdp_.running()) {
      rdp_.signal(SIGTERM);
      rdp_.wait_for(10s);
    }
    if (HasFailure()) std::cerr << "--- appvirt-rdp log ---\n" << rdp_log() << "\n";
  }

  fs::path socket_path() const { return env->sock_dir / "rdp.sock"; }
  std::string rdp_log() const { return read_file(log_); }

  // Starts appvirt-rdp and waits for its ready line.
  void start_rdp(bool tcp = false, const std::vector<std::string>& extra = {}) {
    static int counter = 0;
    log_ = env->dir / ("rdp-" + std::to_string(++counter) + ".log");
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    appvirt::UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    std::vector<std::string> argv = {
        APPVIRT_RDP_BIN, "--display", ":" + std::to_string(env->session_display),
        "--x11-dir", env->x11_dir.string(), "--xauthority", env->xauth.string(),
        "--listen", socket_path().string(), "--secret-file", env->secret_file.string(),
        "--cert", env->cert.string(), "--key", env->key.string(),
        "--run-as", "appvirt-rdp", "--ready-fd", "3"};
    if (tcp) {
      argv.push_back("--listen-tcp");
      argv.push_back("127.0.0.1:0");
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    // Only matter in an APPVIRT_SANITIZE build: FreeRDP leaks per TLS client (see lsan.supp), and
    // libcrypto has no frame pointers, so the suppression needs the slow unwinder to match.
    rdp_ = Child(argv, log_,
                 {"ASAN_OPTIONS=fast_unwind_on_malloc=0:malloc_context_size=30",
                  "LSAN_OPTIONS=suppressions=" APPVIRT_RDP_LSAN_SUPP},
                 write_end.get());
    write_end.reset();
    pollfd p{read_end.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 20000), 1) << rdp_log();
    char buf[256] = {};
    ASSERT_GT(::read(read_end.get(), buf, sizeof buf - 1), 0)
        << rdp_log() << "\n--- session Xvfb (running: " << env->session_xvfb.running()
        << ") ---\n" << read_file(env->dir / "session-xvfb.log");
    auto ready = nlohmann::json::parse(buf);
    ASSERT_EQ(ready["ready"], true);
    tcp_port_ = ready["tcp_port"].get<int>();
    if (tcp) {
      ASSERT_GT(tcp_port_, 0);
    }
  }

  Child xfreerdp(const std::string& target, const std::optional<std::string>& cookie,
                 const std::string& tag) {
    std::vector<std::string> argv = {"xfreerdp", "/v:" + target, "/cert:ignore", "/u:tester",
                                     "/p:unused", "/log-level:WARN"};
    if (cookie) argv.push_back("/load-balance-info:" + *cookie);
    return Child(argv, env->dir / ("xfreerdp-" + tag + ".log"),
                 {"DISPLAY=:" + std::to_string(env->client_display)});
  }

  size_t count_in_log(const std::string& needle) const {
    std::string log = rdp_log();
    size_t n = 0;
    for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1))
      ++n;
    return n;
  }

  // xfreerdp with the right cookie gets past TLS into the session.
  void expect_good_client(const std::string& target, const std::string& tag) {
    size_t before = count_in_log("rdp-client-connected");
    Child client = xfreerdp(target, "Cookie: msts=" + env->secret, tag);
    EXPECT_TRUE(wait_until([&] { return count_in_log("rdp-client-connected") > before; }, 30s))
        << read_file(env->dir / ("xfreerdp-" + tag + ".log"));
    EXPECT_TRUE(client.running()) << "xfreerdp ended although it was let in";
    client.signal(SIGTERM);
    client.wait_for(5s);
  }

  // xfreerdp with a bad cookie fails, and the endpoint says why.
  void expect_refused_client(const std::optional<std::string>& cookie, const std::string& reason,
                             const std::string& tag) {
    size_t before = count_in_log("rdp-connection-refused");
    Child client = xfreerdp(socket_path().string(), cookie, tag);
    auto code = client.wait_for(30s);
    ASSERT_TRUE(code.has_value()) << "xfreerdp kept running with a bad cookie";
    EXPECT_NE(*code, 0);
    EXPECT_GT(count_in_log("rdp-connection-refused"), before);
    EXPECT_GT(count_in_log(reason), 0u);
    EXPECT_EQ(count_in_log("rdp-client-connected"), 0u);
  }

  appvirt::UniqueFd raw_connect() {
    appvirt::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path().c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }

  Child rdp_;
  fs::path log_;
  int tcp_port_ = 0;
};

std::vector<uint8_t> connection_request(const std::string& cookie) {
  appvirt::x224::ConnectionRequest req;
  req.cookie = cookie;
  req.negotiation = appvirt::x224::NegotiationRequest{0, 1, std::nullopt};  // TLS
  return *appvirt::x224::serialize(req);
}

// Time until the server closes fd (EOF/reset), or nullopt if it stays open for `within`.
std::optional<std::chrono::milliseconds> time_to_close(int fd, std::chrono::milliseconds within) {
  auto start = Clock::now();
  while (Clock::now() - start < within) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) == 1) {
      char buf[64];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      }
    }
  }
  return std::nullopt;
}

TEST_F(RdpEndpointTest, GoodCookieOverUnixSocketReachesTheSession) {
  start_rdp();
  expect_good_client(socket_path().string(), "good-unix");
}

TEST_F(RdpEndpointTest, GoodCookieOverTcp) {
  start_rdp(/*tcp=*/true);
  expect_good_client("127.0.0.1:" + std::to_string(tcp_port_), "good-tcp");
}

TEST_F(RdpEndpointTest, WrongSecretIsRefusedAndTheEndpointKeepsServing) {
  start_rdp();
  const std::string wrong = "Cookie: msts=" + random_hex(20);
  expect_refused_client(wrong, "reason=\"wrong secret\"", "wrong");
  // Neither the secret nor the offered cookie ever reach the log.
  EXPECT_EQ(count_in_log(env->secret), 0u);
  EXPECT_EQ(count_in_log(wrong.substr(13)), 0u);
  expect_good_client(socket_path().string(), "after-wrong");
  EXPECT_EQ(count_in_log(env->secret), 0u);
}

TEST_F(RdpEndpointTest, MstshashOrNoRoutingTokenIsRefused) {
  start_rdp();
  expect_refused_client("Cookie: mstshash=" + env->secret, "not a Cookie: msts=", "mstshash");
  expect_refused_client(std::nullopt, "not a Cookie: msts=", "default-cookie");
}

TEST_F(RdpEndpointTest, HostileClientsAreClosedWithoutBlockingAGoodOne) {
  start_rdp();
  appvirt::UniqueFd garbage = raw_connect();
  ASSERT_GT(::send(garbage.get(), "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL), 0);
  appvirt::UniqueFd oversized = raw_connect();
  const uint8_t big_header[] = {0x03, 0x00, 0x20, 0x00};  // 8 KiB announced
  ASSERT_EQ(::send(oversized.get(), big_header, 4, MSG_NOSIGNAL), 4);
  appvirt::UniqueFd truncated = raw_connect();
  auto good_pdu = connection_request("Cookie: msts=" + env->secret);
  ASSERT_GT(::send(truncated.get(), good_pdu.data(), good_pdu.size() - 5, MSG_NOSIGNAL), 0);
  appvirt::UniqueFd slow = raw_connect();
  std::thread slowloris([&, fd = slow.get()] {  // one byte per second
    for (uint8_t b : good_pdu) {
      if (::send(fd, &b, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(1s);
    }
  });
  auto start = Clock::now();
  EXPECT_TRUE(time_to_close(garbage.get(), 1s));
  EXPECT_TRUE(time_to_close(oversized.get(), 1s));

  // Meanwhile a correct client is handed to FreeRDP, which answers with a Connection Confirm.
  appvirt::UniqueFd good = raw_connect();
  ASSERT_EQ(::send(good.get(), good_pdu.data(), good_pdu.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(good_pdu.size()));
  pollfd p{good.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  uint8_t cc[64];
  ssize_t n = ::recv(good.get(), cc, sizeof cc, 0);
  ASSERT_GE(n, 11);
  EXPECT_EQ(cc[0], 0x03);
  EXPECT_EQ(cc[5], 0xD0);  // X.224 Connection Confirm
  EXPECT_LT(Clock::now() - start, 3s);

  auto truncated_closed = time_to_close(truncated.get(), 8s);
  auto slow_closed = time_to_close(slow.get(), 8s);
  ASSERT_TRUE(truncated_closed && slow_closed);
  auto total = Clock::now() - start;
  EXPECT_GT(total, 4s);  // the 5 s first-PDU timeout, not earlier
  EXPECT_LT(total, 7s);
  slowloris.join();
  EXPECT_EQ(count_in_log("timeout waiting for the connection request"), 2u);
  EXPECT_TRUE(rdp_.running());
}

TEST_F(RdpEndpointTest, RunsUnprivilegedInItsOwnMountAndNetworkNamespaces) {
  start_rdp();
  std::string status = read_file("/proc/" + std::to_string(rdp_.pid()) + "/status");
  const std::string uid = std::to_string(env->rdp_uid);
  EXPECT_NE(status.find("Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid), std::string::npos);
  EXPECT_NE(status.find("CapEff:\t0000000000000000"), std::string::npos);
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos);
  EXPECT_NE(fs::read_symlink("/proc/" + std::to_string(rdp_.pid()) + "/ns/mnt"),
            fs::read_symlink("/proc/self/ns/mnt"));
  EXPECT_NE(fs::read_symlink("/proc/" + std::to_string(rdp_.pid()) + "/ns/net"),
            fs::read_symlink("/proc/self/ns/net"));
  struct stat st {};
  ASSERT_EQ(::stat(socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, env->rdp_gid);
  // Its private /tmp (key copy, Xauthority) is not the host's.
  EXPECT_FALSE(fs::exists("/tmp/.appvirt-rdp"));
}

TEST_F(RdpEndpointTest, SigtermExitsZeroAndRemovesTheSocket) {
  start_rdp();
  ASSERT_TRUE(fs::exists(socket_path()));
  rdp_.signal(SIGTERM);
  auto code = rdp_.wait_for(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << rdp_log();
  EXPECT_FALSE(fs::exists(socket_path()));
  EXPECT_EQ(count_in_log("rdp-endpoint-stopped"), 1u);
}

TEST_F(RdpEndpointTest, SigtermWithAConnectedClientStillExitsZero) {
  start_rdp();
  Child client = xfreerdp(socket_path().string(), "Cookie: msts=" + env->secret, "at-sigterm");
  ASSERT_TRUE(wait_until([&] { return count_in_log("rdp-client-connected") > 0; }, 30s))
      << read_file(env->dir / "xfreerdp-at-sigterm.log");
  rdp_.signal(SIGTERM);
  auto code = rdp_.wait_for(10s);
  ASSERT_TRUE(code.has_value()) << "appvirt-rdp did not stop with a client connected";
  EXPECT_EQ(*code, 0) << rdp_log();
  EXPECT_FALSE(fs::exists(socket_path()));
  EXPECT_EQ(count_in_log("rdp-client-disconnected"), 1u);
  EXPECT_TRUE(client.wait_for(10s).has_value()) << "xfreerdp still connected to a stopped server";
}

TEST_F(RdpEndpointTest, BadStartArgumentsFailFastAndLeaveNothing) {
  fs::path short_secret = env->dir / "short-secret";
  std::ofstream(short_secret) << "tooshort\n";
  log_ = env->dir / "bad-start.log";
  Child bad({APPVIRT_RDP_BIN, "--display", ":" + std::to_string(env->session_display),
             "--x11-dir", env->x11_dir.string(), "--xauthority", env->xauth.string(), "--listen",
             socket_path().string(), "--secret-file", short_secret.string(), "--cert",
             env->cert.string(), "--key", env->key.string(), "--run-as", "appvirt-rdp"},
            log_);
  auto code = bad.wait_for(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_GT(count_in_log("secret must be 16..200 characters"), 0u);
  EXPECT_FALSE(fs::exists(socket_path()));

  // A key that is not the certificate's: refused before anything listens.
  fs::path other_cert = env->dir / "other.crt", other_key = env->dir / "other.key";
  ASSERT_TRUE(appvirt::ensure_self_signed_cert(other_cert, other_key, "other", 1));
  Child mismatched({APPVIRT_RDP_BIN, "--display", ":" + std::to_string(env->session_display),
                    "--x11-dir", env->x11_dir.string(), "--xauthority", env->xauth.string(),
                    "--listen", socket_path().string(), "--secret-file",
                    env->secret_file.string(), "--cert", env->cert.string(), "--key",
                    other_key.string(), "--run-as", "appvirt-rdp"},
                   log_);
  code = mismatched.wait_for(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_GT(count_in_log("does not belong to the certificate"), 0u);
  EXPECT_FALSE(fs::exists(socket_path()));
}

#ifdef APPVIRT_RDP_PROBE_BIN
// rdp-probe's JSON report (its last line), or a discarded json when there is none.
nlohmann::json probe_report(const fs::path& out) {
  std::string report = read_file(out);
  auto brace = report.rfind("\n{");
  return nlohmann::json::parse(report.substr(brace == std::string::npos ? 0 : brace + 1), nullptr,
                               false);
}

class RdpPixelsTest : public RdpEndpointTest {
 protected:
  void TearDown() override {
    pattern_.signal(SIGTERM);
    pattern_.wait_for(5s);
    RdpEndpointTest::TearDown();
  }

  // appvirt-testpattern on the session display, reaching it the way the endpoint does; returns
  // once it has painted (its ready fd).
  void start_pattern(const std::string& args, const std::string& tag) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    appvirt::UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    pattern_log_ = env->dir / (tag + ".log");
    pattern_ = Child({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                      "mount --bind \"$0\" /tmp/.X11-unix && exec \"$1\" --ready-fd 3 " + args,
                      env->x11_dir.string(), APPVIRT_TESTPATTERN_BIN},
                     pattern_log_,
                     {"DISPLAY=:" + std::to_string(env->session_display),
                      "XAUTHORITY=" + env->xauth.string()},
                     write_end.get());
    write_end.reset();
    pollfd p{read_end.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 15000), 1) << read_file(pattern_log_);
    ASSERT_TRUE(pattern_.running()) << read_file(pattern_log_);
  }

  // rdp-probe (lossless) until every pixel equals pattern `variant`; `extra` adds options.
  void expect_pattern_at_probe(int variant, const std::string& tag,
                               const std::vector<std::string>& extra = {}) {
    fs::path out = env->dir / (tag + ".json");
    std::vector<std::string> argv = {APPVIRT_RDP_PROBE_BIN, socket_path().string(), "--cookie",
                                     "Cookie: msts=" + env->secret, "--timeout-ms", "20000",
                                     "--lossless", "--expect-pattern", std::to_string(variant),
                                     "--wait-match", "--out", (env->dir / (tag + ".png")).string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Child probe(argv, out);
    auto code = probe.wait_for(30s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << read_file(out);
    auto j = probe_report(out);
    ASSERT_FALSE(j.is_discarded()) << read_file(out);
    EXPECT_EQ(j["connected"], true);
    EXPECT_EQ(j["match"], true) << read_file(out);
    EXPECT_FALSE(j["first_frame_ms"].is_null());
  }

  Child pattern_;
  fs::path pattern_log_;
};

// The whole way: exact pixels drawn on the session display arrive at a headless client.
TEST_F(RdpPixelsTest, RdpProbeSeesTheExactTestPattern) {
  start_rdp();
  ASSERT_NO_FATAL_FAILURE(start_pattern("--variant 3", "testpattern"));
  expect_pattern_at_probe(3, "probe");
}

// FreeRDP's built-in X11 subsystem stays selectable and correct.
TEST_F(RdpPixelsTest, StockCaptureStillServesTheExactPattern) {
  start_rdp(false, {"--capture", "stock", "--codecs", "stock"});
  ASSERT_NO_FATAL_FAILURE(start_pattern("--variant 4", "testpattern-stock"));
  expect_pattern_at_probe(4, "probe-stock");
  EXPECT_EQ(count_in_log("rdp-capture-init mode=damage"), 0u);
}

// Damage-driven updates: each key the client types makes the app repaint the whole screen with
// the next variant; only a frame painted after the last key counts, and it must equal that
// variant exactly (nothing stale, nothing half-grabbed). A client that connects afterwards gets
// the current screen, not the one the capture saw first.
TEST_F(RdpPixelsTest, TypedKeysRepaintAndTheClientSeesTheExactNewPixels) {
  start_rdp();
  ASSERT_NO_FATAL_FAILURE(start_pattern("--variant 3 --keys-advance", "testpattern-keys"));
  expect_pattern_at_probe(3, "probe-before-keys");
  expect_pattern_at_probe(6, "probe-typing", {"--type-text", "abc", "--type-interval-ms", "150"});
  expect_pattern_at_probe(6, "probe-after-keys");
  EXPECT_EQ(count_in_log("rdp-capture-init mode=damage"), 1u);
}

// CPU time (utime + stime, clock ticks) of a process.
long cpu_ticks(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

// An unchanging screen with a client connected costs the endpoint (next to) nothing: no timer
// grabs the screen. The stock subsystem spends ~3 % of a core here (16 full grabs a second),
// i.e. ~9 ticks in 3 s; the damage-driven one none.
TEST_F(RdpPixelsTest, IdleConnectedClientCostsNoCapture) {
  start_rdp();
  ASSERT_NO_FATAL_FAILURE(start_pattern("--variant 2", "testpattern-idle"));
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  appvirt::UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  Child held({APPVIRT_RDP_PROBE_BIN, socket_path().string(), "--cookie",
              "Cookie: msts=" + env->secret, "--timeout-ms", "20000", "--lossless",
              "--expect-pattern", "2", "--wait-match", "--ready-fd", "3", "--hold-ms", "8000"},
             env->dir / "probe-idle.json", {}, write_end.get());
  write_end.reset();
  pollfd p{read_end.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 25000), 1) << read_file(env->dir / "probe-idle.json");
  // The frame matched; let the connection finish its start-up chatter (channels, pointer).
  std::this_thread::sleep_for(1s);
  const long before = cpu_ticks(rdp_.pid());
  std::this_thread::sleep_for(3s);
  const long spent = cpu_ticks(rdp_.pid()) - before;
  EXPECT_TRUE(held.running()) << "the client must still be connected during the window";
  EXPECT_LE(spent, 2) << "appvirt-rdp used " << spent << " ticks in 3 s on an idle screen";
  held.signal(SIGTERM);
}

// The activity report hostd reads for the idle and disconnect timeouts (docs/session-host.md).
// Its directory is under /tmp, which the endpoint's private namespace covers: it must still work.
TEST_F(RdpEndpointTest, ActivityReportTracksClientsAndInput) {
  fs::path status = env->sock_dir / "status.json";
  fs::remove(status);
  start_rdp(false, {"--status-file", status.string()});
  auto report = [&] {
    return nlohmann::json::parse(read_file(status), nullptr, false);
  };
  nlohmann::json initial = report();
  ASSERT_TRUE(initial.is_object()) << read_file(status);
  EXPECT_EQ(initial["clients"], 0);
  EXPECT_GT(initial["since_ms"].get<int64_t>(), 0);
  EXPECT_EQ(initial["last_input_ms"], 0);
  // A client that only watches: connected, but no input.
  Child watcher({APPVIRT_RDP_PROBE_BIN, socket_path().string(), "--cookie",
                 "Cookie: msts=" + env->secret, "--timeout-ms", "20000", "--hold-ms", "2000"},
                env->dir / "watcher.json");
  EXPECT_TRUE(wait_until([&] { return report().value("clients", -1) == 1; }, 20s))
      << read_file(status) << rdp_log();
  auto code = watcher.wait_for(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << read_file(env->dir / "watcher.json");
  EXPECT_TRUE(wait_until([&] { return report().value("clients", -1) == 0; }, 5s)) << read_file(status);
  EXPECT_EQ(report()["last_input_ms"], 0) << "watching is no input";
  EXPECT_GT(report()["since_ms"].get<int64_t>(), initial["since_ms"].get<int64_t>());
  // A client that types.
  Child typist({APPVIRT_RDP_PROBE_BIN, socket_path().string(), "--cookie",
                "Cookie: msts=" + env->secret, "--timeout-ms", "20000", "--type-text", "ab"},
               env->dir / "typist.json");
  code = typist.wait_for(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << read_file(env->dir / "typist.json");
  EXPECT_TRUE(wait_until([&] { return report().value("clients", -1) == 0; }, 5s)) << read_file(status);
  EXPECT_GT(report()["last_input_ms"].get<int64_t>(), initial["since_ms"].get<int64_t>());
  EXPECT_FALSE(fs::exists(status.string() + ".tmp"));
}
#endif

}  // namespace
