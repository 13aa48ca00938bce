#include "session-host/hostd/session.h"

#include "session-host/hostd/clock.h"

namespace appvirt::hostd {

namespace {

nlohmann::json proc_json(const ProcRef& p) { return {{"pid", p.pid}, {"start_time", p.start_time}}; }

ProcRef proc_from(const nlohmann::json& j) {
  if (!j.is_object()) return {};
  return ProcRef{j.value("pid", 0), j.value("start_time", uint64_t{0})};
}

Result<SessionState> state_from(const std::string& s) {
  if (s == "starting") return SessionState::starting;
  if (s == "running") return SessionState::running;
  if (s == "ended") return SessionState::ended;
  return fail("unknown session state: " + s);
}

}  // namespace

const char* to_string(SessionState s) {
  switch (s) {
    case SessionState::starting: return "starting";
    case SessionState::running: return "running";
    case SessionState::ended: return "ended";
  }
  return "?";
}

std::string user_cgroup(const std::string& user) { return "appvirt/u-" + user; }
std::string Session::session_cgroup() const { return user_cgroup(user) + "/s-" + id; }
std::string Session::rdp_cgroup() const { return "appvirt/rdp/s-" + id; }
std::string Session::vm_cgroup() const { return "appvirt/vm/s-" + id; }

nlohmann::json session_to_state(const Session& s) {
  nlohmann::json j = {
      {"session_id", s.id}, {"user", s.user}, {"uid", s.uid}, {"gid", s.gid},
      {"app_id", s.app_id}, {"command", s.command}, {"limits", limits_to_json(s.limits)},
      {"width", s.width}, {"height", s.height}, {"display", s.display},
      {"state", to_string(s.state)}, {"end_reason", s.end_reason},
      {"pids", {{"app", proc_json(s.app)}, {"xvfb", proc_json(s.xvfb)}, {"rdp", proc_json(s.rdp)}}},
      {"endpoint_unix", s.endpoint_unix}, {"tcp_port", s.tcp_port},
      {"created_at", s.created_at}, {"ended_at", s.ended_at},
      {"idle_timeout_s", s.idle_timeout_s}, {"disconnect_timeout_s", s.disconnect_timeout_s}};
  if (s.exit_status) j["exit_status"] = *s.exit_status;
  j["isolation"] = s.isolation;
  if (!s.vm.is_null()) j["vm"] = s.vm;
  return j;
}

Result<Session> session_from_state(const nlohmann::json& j) {
  try {
    Session s;
    s.id = j.at("session_id").get<std::string>();
    s.user = j.at("user").get<std::string>();
    s.uid = j.at("uid").get<uid_t>();
    s.gid = j.at("gid").get<gid_t>();
    s.app_id = j.at("app_id").get<std::string>();
    s.command = j.at("command").get<std::vector<std::string>>();
    auto limits = limits_from_json(j.at("limits"));
    if (!limits) return tl::unexpected(limits.error());
    s.limits = *limits;
    s.width = j.at("width").get<int>();
    s.height = j.at("height").get<int>();
    s.display = j.at("display").get<int>();
    auto state = state_from(j.at("state").get<std::string>());
    if (!state) return tl::unexpected(state.error());
    s.state = *state;
    s.end_reason = j.value("end_reason", std::string());
    if (j.contains("exit_status")) s.exit_status = j.at("exit_status").get<int>();
    const auto& pids = j.at("pids");
    s.app = proc_from(pids.value("app", nlohmann::json()));
    s.xvfb = proc_from(pids.value("xvfb", nlohmann::json()));
    s.rdp = proc_from(pids.value("rdp", nlohmann::json()));
    s.endpoint_unix = j.value("endpoint_unix", std::string());
    s.tcp_port = j.value("tcp_port", 0);
    s.created_at = j.value("created_at", int64_t{0});
    s.ended_at = j.value("ended_at", int64_t{0});
    // Absent in records of a hostd without timeouts: none.
    s.idle_timeout_s = j.value("idle_timeout_s", int64_t{0});
    s.disconnect_timeout_s = j.value("disconnect_timeout_s", int64_t{0});
    s.isolation = j.value("isolation", std::string("container"));
    if (s.isolation != "container" && s.isolation != "vm") {
      return fail("session state: unknown isolation " + s.isolation);
    }
    if (j.contains("vm")) s.vm = j.at("vm");
    return s;
  } catch (const nlohmann::json::exception& e) {
    // Persisted files are ours, but a truncated or hand-edited one must not stop hostd.
    return fail(std::string("session state: ") + e.what());
  }
}

nlohmann::json session_to_api(const Session& s) {
  nlohmann::json endpoint = {{"unix", s.endpoint_unix}, {"tcp", nullptr}};
  if (s.endpoint_unix.empty()) endpoint["unix"] = nullptr;  // VM sessions: TCP only
  if (s.tcp_port > 0) endpoint["tcp"] = "127.0.0.1:" + std::to_string(s.tcp_port);
  nlohmann::json j = {
      {"session_id", s.id}, {"user", s.user}, {"app_id", s.app_id},
      {"state", to_string(s.state)},
      {"end_reason", s.end_reason.empty() ? nlohmann::json() : nlohmann::json(s.end_reason)},
      {"display", s.display}, {"width", s.width}, {"height", s.height},
      {"pids", {{"app", s.app.pid}, {"xvfb", s.xvfb.pid}, {"rdp", s.rdp.pid}}},
      {"endpoint", endpoint}, {"limits", limits_to_json(s.limits)},
      {"created_at", format_utc(s.created_at)},
      {"ended_at", s.ended_at ? nlohmann::json(format_utc(s.ended_at)) : nlohmann::json()}};
  j["exit_status"] = s.exit_status ? nlohmann::json(*s.exit_status) : nlohmann::json();
  j["idle_timeout_s"] = s.idle_timeout_s;
  j["disconnect_timeout_s"] = s.disconnect_timeout_s;
  j["isolation"] = s.isolation;
  return j;
}

nlohmann::json container_to_state(const ContainerRecord& c) {
  return {{"user", c.user}, {"uid", c.uid}, {"init", proc_json(c.init)},
          {"limits", limits_to_json(c.limits)}};
}

Result<ContainerRecord> container_from_state(const nlohmann::json& j) {
  try {
    ContainerRecord c;
    c.user = j.at("user").get<std::string>();
    c.uid = j.at("uid").get<uid_t>();
    c.init = proc_from(j.at("init"));
    auto limits = limits_from_json(j.value("limits", nlohmann::json::object()));
    if (!limits) return tl::unexpected(limits.error());
    c.limits = *limits;
    return c;
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("container state: ") + e.what());
  }
}

}  // namespace appvirt::hostd
