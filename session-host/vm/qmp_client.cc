#include "session-host/vm/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace appvirt::vm {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

Result<UniqueFd> connect_unix(const std::string& path, milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return fail("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  auto deadline = steady_clock::now() + timeout;
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail_errno("socket(AF_UNIX)");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
    int err = errno;
    if ((err != ENOENT && err != ECONNREFUSED && err != EINTR) || steady_clock::now() >= deadline) {
      return fail("connect(" + path + ")", err);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

Result<bool> read_line(int fd, std::string& buffer, std::string& line,
                       steady_clock::time_point deadline) {
  while (true) {
    auto nl = buffer.find('\n');
    if (nl != std::string::npos) {
      line = buffer.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      buffer.erase(0, nl + 1);
      return true;
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) return fail("timed out waiting for a line");
    struct pollfd p {
      fd, POLLIN, 0
    };
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR) return fail_errno("poll");
    if (rc <= 0) continue;
    char chunk[4096];
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno != EINTR && errno != EAGAIN) return fail_errno("read");
    if (n == 0) return false;
    if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
    if (buffer.size() > (1 << 20)) return fail("line over 1 MiB");
  }
}

Result<QmpClient> QmpClient::connect(const std::string& socket_path, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  auto fd = connect_unix(socket_path, timeout);
  if (!fd) return tl::unexpected(wrap("qmp", fd.error()));
  QmpClient client(std::move(*fd));
  auto greeting = client.read_message(deadline);
  if (!greeting) return tl::unexpected(wrap("qmp greeting", greeting.error()));
  if (!greeting->contains("QMP")) return fail("qmp: unexpected greeting " + greeting->dump());
  auto caps = client.execute(
      "qmp_capabilities", std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()));
  if (!caps) return tl::unexpected(caps.error());
  return client;
}

Result<void> QmpClient::send_line(const std::string& line) {
  std::string data = line + "\n";
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("qmp send");
    off += static_cast<size_t>(n);
  }
  return {};
}

Result<nlohmann::json> QmpClient::read_message(steady_clock::time_point deadline) {
  std::string line;
  auto got = read_line(fd_.get(), buffer_, line, deadline);
  if (!got) return tl::unexpected(got.error());
  if (!*got) return fail("qmp: connection closed");
  auto msg = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded() || !msg.is_object()) return fail("qmp: not a JSON object: " + line);
  return msg;
}

Result<nlohmann::json> QmpClient::execute(const std::string& command, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  if (auto sent = send_line(nlohmann::json{{"execute", command}}.dump()); !sent) {
    return tl::unexpected(sent.error());
  }
  while (true) {
    auto msg = read_message(deadline);
    if (!msg) return tl::unexpected(wrap("qmp " + command, msg.error()));
    if (msg->contains("event")) continue;
    if (msg->contains("error")) return fail("qmp " + command + ": " + (*msg)["error"].dump());
    if (msg->contains("return")) return (*msg)["return"];
  }
}

}  // namespace appvirt::vm
