#include "session-host/rdp/activity_report.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "common/log.h"

namespace appvirt::rdp {

int64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::string activity_to_json(const ActivityState& s) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"clients\":%d,\"since_ms\":%lld,\"last_input_ms\":%lld}\n",
                s.clients, static_cast<long long>(s.since_ms),
                static_cast<long long>(s.last_input_ms));
  return buf;
}

Result<std::unique_ptr<ActivityReport>> ActivityReport::open(const std::filesystem::path& file) {
  std::string name = file.filename().string();
  if (name.empty() || name == "." || name == "..") return fail("--status-file: not a file name");
  std::filesystem::path parent = file.parent_path();
  if (parent.empty()) parent = ".";
  UniqueFd dir(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return fail_errno("open(--status-file directory " + parent.string() + ")");
  std::unique_ptr<ActivityReport> report(new ActivityReport(std::move(dir), std::move(name)));
  std::lock_guard lock(report->mu_);
  report->state_.since_ms = monotonic_ms();
  if (auto ok = report->write_locked(); !ok) return tl::unexpected(ok.error());
  return report;
}

Result<void> ActivityReport::write_locked() {
  const std::string tmp = name_ + ".tmp";
  const std::string text = activity_to_json(state_);
  UniqueFd fd(::openat(dir_.get(), tmp.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return fail_errno("open(" + tmp + ")");
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return fail_errno("write(" + tmp + ")");
  }
  fd.reset();
  if (::renameat(dir_.get(), tmp.c_str(), dir_.get(), name_.c_str()) != 0) {
    return fail_errno("rename(" + tmp + ", " + name_ + ")");
  }
  return {};
}

void ActivityReport::client_connected(const void* client) {
  std::lock_guard lock(mu_);
  if (!clients_.insert(client).second) return;
  state_.clients = static_cast<int>(clients_.size());
  state_.since_ms = monotonic_ms();
  if (auto ok = write_locked(); !ok) {
    spdlog::warn("rdp-status-write-failed error={}", log_quote(ok.error().str()));
  }
}

void ActivityReport::client_disconnected(const void* client) {
  std::lock_guard lock(mu_);
  if (clients_.erase(client) == 0) return;
  state_.clients = static_cast<int>(clients_.size());
  state_.since_ms = monotonic_ms();
  if (auto ok = write_locked(); !ok) {
    spdlog::warn("rdp-status-write-failed error={}", log_quote(ok.error().str()));
  }
}

void ActivityReport::input() {
  const int64_t now = monotonic_ms();
  std::lock_guard lock(mu_);
  if (state_.last_input_ms != 0 && now - state_.last_input_ms < kInputGranularityMs) return;
  state_.last_input_ms = now;
  if (auto ok = write_locked(); !ok) {
    spdlog::warn("rdp-status-write-failed error={}", log_quote(ok.error().str()));
  }
}

ActivityState ActivityReport::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

}  // namespace appvirt::rdp
