// The guest agent's events after a VM session is ready: one reader thread per session reads the
// agent channel (blocking, bounded waits) and posts activity relays to the io thread, where the
// timeouts (session_timeouts.cc) and the session description (`clients`) use them. After a hostd
// restart the reader connects the channel anew (QEMU's chardev accepts the next client); the
// agent re-sends its state every few seconds, so the new hostd has a verdict soon.
#include "session-host/hostd/vm_activity.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "common/log.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {
constexpr int64_t kResendJitterMs = 2000;  // stamps of one guest time differ by the delays only
}  // namespace

EndpointActivity activity_from_agent(const vm::AgentActivity& a, int64_t now_ms) {
  EndpointActivity out;
  out.clients = a.clients;
  out.since_ms = std::max<int64_t>(0, now_ms - a.since_age_ms);
  out.last_input_ms = a.input_age_ms < 0 ? 0 : std::max<int64_t>(1, now_ms - a.input_age_ms);
  return out;
}

void SessionManager::start_vm_agent_reader(Live& live, std::optional<vm::AgentChannel> channel) {
  stop_vm_agent_reader(live);
  auto stop = std::make_shared<std::atomic<bool>>(false);
  live.vm_reader_stop = stop;
  std::string id = live.s.id;
  std::string socket = vm::vm_paths(vm_session_dir(id)).agent_socket;
  std::thread([this, ex = executor_, gate = vm_gate_, alive = alive_, stop, id, socket,
               channel = std::move(channel)]() mutable {
    auto open_gate = [&] {
      std::lock_guard<std::mutex> lock(gate->mu);
      return gate->open;
    };
    while (!*stop && open_gate()) {
      if (!channel) {
        auto c = vm::AgentChannel::connect(socket, milliseconds(1000));
        if (c) {
          channel.emplace(std::move(*c));
        } else {
          std::this_thread::sleep_for(milliseconds(200));  // refused for now: QEMU is going
        }
        continue;
      }
      auto event = channel->next(milliseconds(500));
      if (!event) {
        channel.reset();  // closed: QEMU exited (its pidfd ends the session) or restarts
        continue;
      }
      if (!*event) continue;
      const nlohmann::json& e = **event;
      auto activity = vm::parse_agent_activity(e);
      if (!activity) {
        if (vm::agent_event(e) != "activity") {
          spdlog::info("session vm_agent_event session={} event={}", id, log_quote(e.dump()));
        } else {
          spdlog::warn("session vm_agent_bad_activity session={} error={}", id,
                       log_quote(activity.error().str()));
        }
        continue;
      }
      std::lock_guard<std::mutex> lock(gate->mu);
      if (!gate->open) return;
      asio::post(ex, [this, alive, id, a = *activity] {
        if (*alive) on_vm_activity(id, a);
      });
    }
  }).detach();
}

Result<EndpointActivity> SessionManager::current_activity(const Live& live) const {
  if (!live.s.is_vm()) return read_endpoint_activity(activity_file(live.s));
  if (!live.vm_activity) return fail("no activity relay from the guest agent yet");
  return *live.vm_activity;
}

void SessionManager::stop_vm_agent_reader(Live& live) {
  if (live.vm_reader_stop) *live.vm_reader_stop = true;
  live.vm_reader_stop.reset();
}

void SessionManager::on_vm_activity(const std::string& id, const vm::AgentActivity& a) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->s.state == SessionState::ended) return;
  Live& live = *it->second;
  EndpointActivity next = activity_from_agent(a, deps_.clock.now_mono_ms());
  if (live.vm_activity && live.vm_activity->clients == next.clients &&
      std::abs(next.since_ms - live.vm_activity->since_ms) < kResendJitterMs) {
    // The same state re-sent: keep the first stamp, so the channel's delay does not push the
    // disconnect deadline a little further with every resend.
    next.since_ms = live.vm_activity->since_ms;
  }
  live.vm_activity = next;
}

}  // namespace appvirt::hostd
