// BrokerService, host side: registration and load reports of hosts, probes of configured hosts,
// and reconciliation of the session directory with what the hosts really run.
#include <set>

#include "broker/broker_service.h"
#include "common/log.h"

namespace appvirt::broker {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

Result<std::string> isolation_list(const nlohmann::json& body) {
  if (!body.contains("isolation")) return std::string("container");
  const auto& v = body["isolation"];
  if (!v.is_array() || v.empty()) return fail("isolation: must be a non-empty array");
  std::string out;
  for (const auto& i : v) {
    if (!i.is_string() || (i != "container" && i != "vm")) {
      return fail("isolation: entries must be \"container\" or \"vm\"");
    }
    if (!out.empty()) out += ",";
    out += i.get<std::string>();
  }
  return out;
}

bool is_valid_host_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<nlohmann::json> BrokerService::register_host(const nlohmann::json& body) {
  static const std::set<std::string> known = {"name", "socket", "capacity", "isolation"};
  for (const auto& [k, v] : body.items()) {
    if (!known.count(k)) return fail(k + ": unknown field");
  }
  HostRecord h;
  if (!body.contains("name") || !body["name"].is_string() ||
      !is_valid_host_name(body["name"].get<std::string>())) {
    return fail("name: required, 1-64 characters [A-Za-z0-9._-]");
  }
  h.name = body["name"].get<std::string>();
  if (body.contains("socket")) {
    if (!body["socket"].is_string() || body["socket"].get<std::string>().rfind('/', 0) != 0) {
      return fail("socket: must be an absolute path");
    }
    h.socket = body["socket"].get<std::string>();
  }
  if (!body.contains("capacity") || !body["capacity"].is_number_integer() ||
      body["capacity"].get<int64_t>() < 0 || body["capacity"].get<int64_t>() > 100000) {
    return fail("capacity: required integer 0-100000");
  }
  h.capacity = body["capacity"].get<int>();
  auto iso = isolation_list(body);
  if (!iso) return tl::unexpected(iso.error());
  h.isolation = *iso;
  h.last_seen = deps_.wall_ms();
  auto st = hosts_.register_host(h, Clock::now());
  if (!st) return tl::unexpected(st.error());
  if (auto r = deps_.store.put_host((*st)->record); !r) return tl::unexpected(r.error());
  audit("host_registered", "", "host:" + h.name,
        "capacity=" + std::to_string(h.capacity) + " isolation=" + h.isolation);
  auto interval = std::max<int64_t>(1, config_.host_report_timeout.count() / 3);
  return nlohmann::json{{"name", h.name}, {"report_interval_seconds", interval}};
}

Result<void> BrokerService::report_load(const std::string& name, const nlohmann::json& body) {
  if (!body.contains("sessions") || !body["sessions"].is_number_integer() ||
      body["sessions"].get<int64_t>() < 0 || body["sessions"].get<int64_t>() > 1000000) {
    return fail("sessions: required non-negative integer");
  }
  std::string load = body.dump();
  if (load.size() > 4096) return fail("body: load report larger than 4096 bytes");
  if (!hosts_.report(name, body["sessions"].get<int>(), load, Clock::now())) {
    return fail("host " + name + " is not registered");
  }
  const HostState* st = hosts_.find(name);
  HostRecord rec = st->record;
  rec.last_seen = deps_.wall_ms();
  (void)deps_.store.put_host(rec);
  return {};
}

asio::awaitable<void> BrokerService::reconcile_host(const HostRecord& host) {
  auto listed = co_await deps_.host_client.list(host);
  if (!listed) {
    spdlog::warn("broker reconcile_skipped host={} error={}", host.name,
                 log_quote(listed.error().message));
    co_return;
  }
  std::map<std::string, HostSession> on_host;
  for (auto& s : *listed) {
    if (s.state != "ended" && !s.resources.is_null()) resources_[s.session_id] = s.resources;
    else resources_.erase(s.session_id);
    on_host[s.session_id] = s;
  }
  auto ours = deps_.store.list_sessions("", false);
  if (!ours) co_return;
  int64_t now = deps_.wall_ms();
  for (SessionRecord& s : *ours) {
    if (s.host != host.name) continue;
    auto it = on_host.find(s.id);
    if (it == on_host.end()) {
      resources_.erase(s.id);
      (void)deps_.store.end_session(s.id, "gone", now);
      audit("session_ended", s.user, "host:" + host.name, "session=" + s.id + " reason=gone");
    } else if (it->second.state == "ended") {
      std::string reason = it->second.end_reason.empty() ? "ended" : it->second.end_reason;
      (void)deps_.store.end_session(s.id, reason, now);
      audit("session_ended", s.user, "host:" + host.name, "session=" + s.id + " reason=" + reason);
    } else if (it->second.state != s.state) {
      s.state = it->second.state;
      (void)deps_.store.put_session(s);
    }
  }
  for (const auto& [id, hs] : on_host) {
    if (hs.state == "ended") continue;
    auto known = deps_.store.get_session(id);
    if (!known || *known) continue;
    // A session the directory does not know (lost database, launched by hand): record it so it
    // shows up and counts toward the host's load. Without its secret it cannot be reattached.
    SessionRecord s{id, hs.user, hs.app_id, host.name, hs.state, "", hs.endpoint_unix,
                    hs.endpoint_tcp, "", hs.display, now, 0};
    (void)deps_.store.put_session(s);
    audit("session_adopted", hs.user, "host:" + host.name, "session=" + id);
  }
}

nlohmann::json BrokerService::session_resources(const std::string& id) const {
  auto it = resources_.find(id);
  return it == resources_.end() ? nlohmann::json() : it->second;
}

asio::awaitable<void> BrokerService::reconcile() {
  std::vector<HostRecord> targets;
  for (const HostState* st : hosts_.all()) {
    if (!st->record.socket.empty()) targets.push_back(st->record);
  }
  for (const HostRecord& h : targets) {
    auto health = co_await deps_.host_client.health(h);
    if (!health) {
      if (h.configured) hosts_.probe_failed(h.name, health.error().message);
      continue;
    }
    if (h.configured) hosts_.probe_ok(h.name, health->sessions, Clock::now());
    hosts_.vm_report(h.name, health->isolation, health->vm_capacity, health->vm_sessions);
    co_await reconcile_host(h);
  }
}

asio::awaitable<void> BrokerService::poll_once() {
  for (const std::string& name : hosts_.expire(Clock::now())) {
    audit("host_down", "", "host:" + name, "stopped reporting");
  }
  co_await reconcile();
  int64_t now = deps_.wall_ms();
  // Used and expired tokens are kept an hour so a late replay is logged as "used"/"expired".
  (void)deps_.store.purge_tokens(now - 3600 * 1000);
  update_gauges();
}

asio::awaitable<void> BrokerService::poll_loop() {
  poll_timer_ = std::make_unique<asio::steady_timer>(io_);
  while (!stopped_) {
    co_await poll_once();
    if (stopped_) break;
    poll_timer_->expires_after(config_.host_poll_interval);
    boost::system::error_code ec;
    co_await poll_timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void BrokerService::stop() {
  stopped_ = true;
  if (poll_timer_) poll_timer_->cancel();
}

void BrokerService::shutdown() {
  stop();
  poll_timer_.reset();
}

void BrokerService::update_gauges() {
  if (auto live = deps_.store.list_sessions("", false)) {
    metrics_.set("appvirt_broker_sessions", {}, static_cast<double>(live->size()));
  }
  int up = 0, down = 0;
  for (const HostState* st : hosts_.all()) (st->up ? up : down)++;
  metrics_.set("appvirt_broker_hosts", {{"state", "up"}}, up);
  metrics_.set("appvirt_broker_hosts", {{"state", "down"}}, down);
  metrics_.set("appvirt_broker_locked_keys", {},
               static_cast<double>(throttle_.locked_keys(Clock::now())));
}

}  // namespace appvirt::broker
