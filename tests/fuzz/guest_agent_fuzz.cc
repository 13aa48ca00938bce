// libFuzzer target for what hostd reads from a VM guest (not trusted): the bytes the guest
// agent writes to its virtio-serial port, as AgentChannel reads them (line framing, JSON) and
// parse_agent_activity validates them. Each input is written to a real Unix socket, as QEMU's
// chardev would deliver it, and read to the end. Besides "no crash", it checks the contract:
// an accepted activity event has non-negative ages (or -1 for "no input") and clients >= 0.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "session-host/vm/agent_channel.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct Listener {
  std::string path;
  int fd = -1;
  Listener() {
    char dir[] = "/tmp/guest-agent-fuzz-XXXXXX";
    check(::mkdtemp(dir) != nullptr);
    path = std::string(dir) + "/agent.sock";
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    check(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    check(::listen(fd, 4) == 0);
    dir_path = dir;
  }
  ~Listener() {  // libFuzzer ends with exit(): static destructors run
    ::close(fd);
    ::unlink(path.c_str());
    ::rmdir(dir_path.c_str());
  }
  std::string dir_path;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Listener listener;  // max_len stays below the socket buffer: one write, no deadlock
  auto channel = appvirt::vm::AgentChannel::connect(listener.path, std::chrono::milliseconds(1000));
  check(channel.has_value());
  int guest = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
  check(guest >= 0);
  check(::write(guest, data, size) == static_cast<ssize_t>(size) || size == 0);
  ::close(guest);  // end of input: next() reports the channel closed
  for (;;) {
    auto event = channel->next(std::chrono::milliseconds(1000));
    if (!event) break;           // closed
    check(event->has_value());   // all bytes are there: no timeout before the close
    check((*event)->is_object());
    (void)appvirt::vm::agent_event(**event);
    auto activity = appvirt::vm::parse_agent_activity(**event);
    if (!activity) continue;
    check(activity->clients >= 0);
    check(activity->since_age_ms >= 0);
    check(activity->input_age_ms >= -1);
  }
  return 0;
}
