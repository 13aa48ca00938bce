#pragma once
// The endpoint's activity report for hostd (docs/session-host.md, "Activity report"): how many
// RDP clients are connected, since when, and when the last keyboard or mouse input arrived.
// hostd reads the file to end sessions after the idle and disconnect timeouts; a file (not a
// pipe) so that a restarted hostd finds it again for the sessions it re-adopts.
//
// Written as <dir>/status.json (temp file + rename, so a reader never sees half a file) through
// a directory fd opened before the endpoint confines itself: the directory may lie under /tmp,
// which the private mount namespace covers. Called from FreeRDP's client threads: thread-safe.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::rdp {

// What the file holds. Times are CLOCK_MONOTONIC milliseconds (one clock for every process of
// the host, immune to wall-clock steps).
struct ActivityState {
  int clients = 0;
  int64_t since_ms = 0;       // when `clients` last changed (or the endpoint started)
  int64_t last_input_ms = 0;  // 0 = no input yet
};
std::string activity_to_json(const ActivityState& s);

int64_t monotonic_ms();

class ActivityReport {
 public:
  // Inputs are recorded at most once per this interval: typing must not rewrite the file for
  // every key. The reported last input is thus at most this much older than the real one.
  static constexpr int64_t kInputGranularityMs = 1000;

  // Opens the directory of `file` (as root, before confinement) and writes the initial state
  // (no client since now).
  static Result<std::unique_ptr<ActivityReport>> open(const std::filesystem::path& file);

  // `client` identifies the connection (FreeRDP's rdpShadowClient*); a disconnect of a client
  // that never completed its connect is ignored.
  void client_connected(const void* client);
  void client_disconnected(const void* client);
  void input();
  ActivityState state() const;

 private:
  ActivityReport(UniqueFd dir, std::string name) : dir_(std::move(dir)), name_(std::move(name)) {}
  Result<void> write_locked();

  UniqueFd dir_;
  std::string name_;
  mutable std::mutex mu_;
  ActivityState state_;
  std::set<const void*> clients_;
};

}  // namespace appvirt::rdp
