#pragma once
// A small blocking QMP client (QEMU Machine Protocol over a Unix socket): greeting,
// qmp_capabilities, then one command at a time. Every read is bounded by a deadline.
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::vm {

class QmpClient {
 public:
  // Connects (retrying while QEMU has not created the socket yet) and negotiates.
  static Result<QmpClient> connect(const std::string& socket_path,
                                   std::chrono::milliseconds timeout);
  // Sends {"execute": command} and returns the "return" member; events are skipped.
  Result<nlohmann::json> execute(const std::string& command, std::chrono::milliseconds timeout);

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<nlohmann::json> read_message(std::chrono::steady_clock::time_point deadline);
  Result<void> send_line(const std::string& line);

  UniqueFd fd_;
  std::string buffer_;
};

// Connects to a Unix stream socket, retrying ENOENT/ECONNREFUSED until the deadline.
Result<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout);

// Reads one '\n'-terminated line from fd into `line` (buffer keeps what follows), bounded.
// Returns false on EOF; an error on timeout or read failure.
Result<bool> read_line(int fd, std::string& buffer, std::string& line,
                       std::chrono::steady_clock::time_point deadline);

}  // namespace appvirt::vm
