#pragma once
// Support for the root tests: a throwaway user, running the appvirt-sandbox helper with a
// bounded wait, polling with a deadline. Everything created here is removed in destructors.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace appvirt::sandbox::testing {

inline std::string random_suffix(size_t n) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(urandom.get());
    out += alphabet[c % (sizeof alphabet - 1)];
  }
  return out;
}

// Runs argv (no shell) with stdin_text on stdin; collects stdout/stderr; kills it after
// timeout. exit_code is -1 on timeout or abnormal end.
struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

inline RunResult run_command(const std::vector<std::string>& argv, const std::string& stdin_text,
                             std::chrono::seconds timeout = std::chrono::seconds(30)) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
    throw std::runtime_error("pipe2");
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  (void)!::write(in[1], stdin_text.data(), stdin_text.size());
  ::close(in[1]);
  RunResult r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  if (open_fds > 0) ::kill(pid, SIGKILL);  // timed out (or someone holds our pipes)
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (open_fds == 0 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// Alive and not a zombie.
inline bool process_alive(pid_t pid) {
  // Plain read(): the file can vanish mid-read (ESRCH), which iostreams turn into exceptions.
  int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return false;
  std::string text(buf, static_cast<size_t>(n));
  size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

// A user that exists only for one test suite: random name avt<6 chars>, home in a temporary
// directory. Removed (with the home and the directory) on destruction.
class ThrowawayUser {
 public:
  ThrowawayUser() {
    char tmpl[] = "/tmp/avt-sbx-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
    base_ = tmpl;
    ::chmod(base_.c_str(), 0755);
    name_ = "avt" + random_suffix(6);
    home_ = base_ + "/home/" + name_;
    std::filesystem::create_directories(base_ + "/home");
    RunResult r = run_command({"/usr/sbin/useradd", "--create-home", "--home-dir", home_, "--shell",
                               "/bin/sh", "--user-group", name_},
                              "");
    if (r.exit_code != 0) throw std::runtime_error("useradd " + name_ + ": " + r.err);
    created_ = true;
    struct stat st {};
    ::stat(home_.c_str(), &st);
    uid_ = st.st_uid;
    gid_ = st.st_gid;
  }
  ~ThrowawayUser() {
    if (created_) run_command({"/usr/sbin/userdel", "--force", "--remove", name_}, "");
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }
  ThrowawayUser(const ThrowawayUser&) = delete;
  ThrowawayUser& operator=(const ThrowawayUser&) = delete;

  const std::string& name() const { return name_; }
  const std::string& home() const { return home_; }
  const std::string& base() const { return base_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }

 private:
  std::string base_, name_, home_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool created_ = false;
};

}  // namespace appvirt::sandbox::testing
