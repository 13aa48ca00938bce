#include "session-host/vm/agent_channel.h"

#include "session-host/vm/qmp_client.h"

namespace appvirt::vm {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

constexpr int64_t kMaxAgeMs = int64_t{400} * 24 * 3600 * 1000;  // beyond any session's life

Result<int64_t> bounded(const nlohmann::json& j, const char* key, int64_t min, int64_t max) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < min ||
      it->get<int64_t>() > max) {
    return fail(std::string("agent activity: ") + key + ": integer " + std::to_string(min) +
                ".." + std::to_string(max) + " required");
  }
  return it->get<int64_t>();
}

}  // namespace

std::string agent_event(const nlohmann::json& msg) {
  if (!msg.is_object()) return {};
  auto it = msg.find("event");
  if (it == msg.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

Result<AgentActivity> parse_agent_activity(const nlohmann::json& event) {
  if (agent_event(event) != "activity") {
    return fail("agent activity: not an activity event");
  }
  auto clients = bounded(event, "clients", 0, 100000);
  auto since = bounded(event, "since_age_ms", 0, kMaxAgeMs);
  auto input = bounded(event, "input_age_ms", -1, kMaxAgeMs);
  for (const auto* r : {&clients, &since, &input}) {
    if (!*r) return tl::unexpected(r->error());
  }
  return AgentActivity{static_cast<int>(*clients), *since, *input};
}

Result<AgentChannel> AgentChannel::connect(const std::string& socket_path, milliseconds timeout) {
  auto fd = connect_unix(socket_path, timeout);
  if (!fd) return tl::unexpected(wrap("guest agent", fd.error()));
  return AgentChannel(std::move(*fd));
}

Result<std::optional<nlohmann::json>> AgentChannel::next(milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  while (true) {
    std::string line;
    auto got = read_line(fd_.get(), buffer_, line, deadline);
    if (!got) {
      // Nothing in time (read_line gives up when less than a millisecond is left).
      if (steady_clock::now() + milliseconds(1) >= deadline) return std::nullopt;
      return tl::unexpected(wrap("guest agent", got.error()));
    }
    if (!*got) return fail("guest agent: channel closed (QEMU exited?)");
    auto msg = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (msg.is_object()) return msg;  // anything else is noise on the channel
  }
}

}  // namespace appvirt::vm
