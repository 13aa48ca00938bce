#include "tests/tools/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <utility>

#include "common/unique_fd.h"

extern char** environ;

namespace appvirt::testing {

using Clock = std::chrono::steady_clock;

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "appvirt-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();  // nothing sensible to test without it
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Child::Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    terminate();
    pid_ = std::exchange(o.pid_, -1);
  }
  return *this;
}

Child::~Child() { terminate(); }

namespace {

std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (!extra.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void add_output_file(posix_spawn_file_actions_t* fa, int fd, const std::string& path) {
  if (!path.empty()) {
    posix_spawn_file_actions_addopen(fa, fd, path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
}

}  // namespace

Result<Child> Child::spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  std::vector<std::string> args = argv;
  std::vector<std::string> env = merged_env(opts.env);
  auto c_args = c_strings(args);
  auto c_env = c_strings(env);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  add_output_file(&fa, 1, opts.stdout_file);
  add_output_file(&fa, 2, opts.stderr_file);
  if (opts.extra_fd >= 0) posix_spawn_file_actions_adddup2(&fa, opts.extra_fd, 3);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, c_args[0], &fa, nullptr, c_args.data(), c_env.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return fail("posix_spawnp(" + argv[0] + ")", rc);
  Child c;
  c.pid_ = pid;
  return c;
}

std::optional<int> Child::wait_exit(milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 && errno != EINTR) {
      pid_ = -1;
      return std::nullopt;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

void Child::terminate(milliseconds grace) {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (wait_exit(grace)) return;
  kill(pid_, SIGKILL);
  wait_exit(milliseconds(5000));
}

Result<RunResult> run_capture(const std::vector<std::string>& argv, milliseconds timeout,
                              const SpawnOptions& opts) {
  TempDir dir;
  SpawnOptions o = opts;
  o.stdout_file = dir.path() + "/stdout";
  auto child = Child::spawn(argv, o);
  if (!child) return tl::unexpected(child.error());
  RunResult r;
  auto code = child->wait_exit(timeout);
  if (code) {
    r.exit_code = *code;
  } else {
    child->terminate(milliseconds(500));
  }
  std::ifstream in(o.stdout_file);
  r.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

Result<void> write_wildcard_xauthority(const std::string& path) {
  // libXau's format: big-endian 16-bit family, then four (16-bit length, bytes) fields: address,
  // display number, auth name, auth data. FamilyWild (0xffff) with an empty display number
  // matches every display, so the file can be written before Xvfb picks its number.
  std::random_device rd;
  std::string cookie(16, '\0');
  for (char& c : cookie) c = static_cast<char>(rd() & 0xff);
  auto field = [](const std::string& s) {
    std::string out{static_cast<char>(s.size() >> 8), static_cast<char>(s.size() & 0xff)};
    return out + s;
  };
  std::string data = std::string("\xff\xff", 2) + field("") + field("") +
                     field("MIT-MAGIC-COOKIE-1") + field(cookie);
  std::ofstream out(path, std::ios::binary);
  out << data;
  if (!out.good()) return fail("write(" + path + ")");
  return {};
}

Result<Xvfb> Xvfb::start(const std::string& dir, int width, int height) {
  Xvfb x;
  x.xauthority_ = dir + "/Xauthority";
  if (auto r = write_wildcard_xauthority(x.xauthority_); !r) return tl::unexpected(r.error());
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd rd(p[0]);
  UniqueFd wr(p[1]);
  SpawnOptions o;
  o.extra_fd = wr.get();
  o.stderr_file = dir + "/xvfb.log";
  std::string screen = std::to_string(width) + "x" + std::to_string(height) + "x24";
  auto child = Child::spawn({"Xvfb", "-displayfd", "3", "-auth", x.xauthority_, "-screen", "0",
                             screen, "-nolisten", "tcp", "-noreset"},
                            o);
  if (!child) return tl::unexpected(child.error());
  x.child_ = std::move(*child);
  wr.reset();
  std::string num;
  pollfd pfd{rd.get(), POLLIN, 0};
  while (poll(&pfd, 1, 10000) > 0) {
    char c;
    if (read(rd.get(), &c, 1) != 1 || c == '\n') break;
    num += c;
  }
  if (num.empty()) return fail("Xvfb did not report a display number (see " + dir + "/xvfb.log)");
  x.display_ = ":" + num;
  return x;
}

std::map<std::string, std::string> Xvfb::client_env() const {
  return {{"DISPLAY", display_}, {"XAUTHORITY", xauthority_}};
}

Result<int> free_tcp_port() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) return fail_errno("bind");
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return fail_errno("getsockname");
  }
  return ntohs(a.sin_port);
}

bool wait_tcp_listening(int port, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

bool wait_path_exists(const std::string& path, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace appvirt::testing
