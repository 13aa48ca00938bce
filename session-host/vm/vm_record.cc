#include "session-host/vm/vm_session.h"

namespace appvirt::vm {

nlohmann::json record_to_json(const VmRecord& r) {
  return {{"session_id", r.session_id}, {"pid", r.pid},
          {"start_time", r.start_time}, {"session_dir", r.session_dir},
          {"host_port", r.host_port},   {"accel", accel_name(r.accel)}};
}

Result<VmRecord> record_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail("vm record: not an object");
  VmRecord r;
  try {
    r.session_id = j.at("session_id").get<std::string>();
    r.pid = j.at("pid").get<pid_t>();
    r.start_time = j.at("start_time").get<unsigned long long>();
    r.session_dir = j.at("session_dir").get<std::string>();
    r.host_port = j.at("host_port").get<int>();
    auto accel = j.at("accel").get<std::string>();
    if (accel != "kvm" && accel != "tcg") return fail("vm record: accel: kvm or tcg");
    r.accel = accel == "kvm" ? Accel::kKvm : Accel::kTcg;
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("vm record: ") + e.what());
  }
  if (r.pid <= 1 || r.session_dir.empty() || r.session_dir[0] != '/') {
    return fail("vm record: pid or session_dir invalid");
  }
  return r;
}

}  // namespace appvirt::vm
