#include "session-host/hostd/endpoint_activity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/unique_fd.h"

namespace appvirt::hostd {

namespace {

constexpr size_t kMaxReport = 4096;

Result<std::string> read_report_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return fail_errno("open(" + path + ")");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("fstat(" + path + ")");
  if (!S_ISREG(st.st_mode)) return fail(path + ": not a regular file");
  std::string text(kMaxReport + 1, '\0');
  ssize_t n = ::read(fd.get(), text.data(), text.size());
  if (n < 0) return fail_errno("read(" + path + ")");
  if (static_cast<size_t>(n) > kMaxReport) return fail(path + ": larger than 4 KiB");
  text.resize(static_cast<size_t>(n));
  return text;
}

Result<int64_t> non_negative(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0) {
    return fail(std::string("activity report: ") + key + ": required non-negative integer");
  }
  return j[key].get<int64_t>();
}

}  // namespace

Result<EndpointActivity> read_endpoint_activity(const std::string& path) {
  auto text = read_report_file(path);
  if (!text) return tl::unexpected(text.error());
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) return fail("activity report " + path + ": not a JSON object");
  auto clients = non_negative(j, "clients");
  auto since = non_negative(j, "since_ms");
  auto input = non_negative(j, "last_input_ms");
  for (const auto* r : {&clients, &since, &input}) {
    if (!*r) return tl::unexpected(r->error());
  }
  if (*clients > 100000) return fail("activity report: clients: out of range");
  return EndpointActivity{static_cast<int>(*clients), *since, *input};
}

TimeoutVerdict timeout_verdict(const EndpointActivity& a, const SessionTimeouts& t,
                               int64_t now_ms) {
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  TimeoutVerdict v{"", kNever};
  if (a.clients == 0 && t.disconnect_s > 0) {
    int64_t deadline = a.since_ms + t.disconnect_s * 1000;
    if (now_ms >= deadline) return {"disconnect-timeout", now_ms};
    v.next_check_ms = deadline;
  }
  if (a.clients > 0 && t.idle_s > 0) {
    int64_t deadline = std::max(a.since_ms, a.last_input_ms) + t.idle_s * 1000;
    if (now_ms >= deadline) return {"idle-timeout", now_ms};
    v.next_check_ms = deadline;
  }
  return v;
}

}  // namespace appvirt::hostd
