#pragma once
// Helpers for tests that drive real processes: children that are always reaped, a private Xvfb
// display with an X cookie, loopback ports. Every wait is bounded.
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace appvirt::testing {

using std::chrono::milliseconds;

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct SpawnOptions {
  std::map<std::string, std::string> env;  // added to / overriding this process's environment
  std::string stdout_file;                 // empty: inherit
  std::string stderr_file;                 // empty: inherit
  int extra_fd = -1;                       // if >= 0, becomes fd 3 in the child
};

// A child process, terminated (SIGTERM, then SIGKILL after a grace period) and reaped on
// destruction unless it has already been waited for.
class Child {
 public:
  Child() = default;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  ~Child();

  static Result<Child> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts = {});
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // Exit status (0..255, or 128+signal); nullopt when still running after the timeout.
  std::optional<int> wait_exit(milliseconds timeout);
  void terminate(milliseconds grace = milliseconds(3000));

 private:
  pid_t pid_ = -1;
};

struct RunResult {
  int exit_code = -1;  // 128+signal when killed; -1 when it had to be killed at the timeout
  std::string out;     // everything it wrote on stdout
};

// Runs a command to completion (killed at the timeout), capturing stdout.
Result<RunResult> run_capture(const std::vector<std::string>& argv, milliseconds timeout,
                              const SpawnOptions& opts = {});

// Writes an Xauthority file with one MIT-MAGIC-COOKIE-1 entry that matches any display.
Result<void> write_wildcard_xauthority(const std::string& path);

// Xvfb on a free display number (-displayfd), requiring the cookie in <dir>/Xauthority.
class Xvfb {
 public:
  static Result<Xvfb> start(const std::string& dir, int width, int height);
  const std::string& display() const { return display_; }
  const std::string& xauthority() const { return xauthority_; }
  // DISPLAY and XAUTHORITY for clients of this server.
  std::map<std::string, std::string> client_env() const;

 private:
  Child child_;
  std::string display_;
  std::string xauthority_;
};

// A loopback TCP port that was free a moment ago.
Result<int> free_tcp_port();
// Polls until something accepts connections on 127.0.0.1:port.
bool wait_tcp_listening(int port, milliseconds timeout);
// Polls until path exists.
bool wait_path_exists(const std::string& path, milliseconds timeout);

// Polls pred until it holds (true) or the timeout has passed (false): for conditions on real
// processes and files that nothing signals to the test.
template <class Pred>
bool eventually(Pred pred, milliseconds timeout = milliseconds(15'000),
                milliseconds interval = milliseconds(50)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(interval);
  }
  return true;
}

// The whole file ("" if it cannot be read).
std::string read_text_file(const std::string& path);

}  // namespace appvirt::testing
