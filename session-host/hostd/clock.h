#pragma once
// Clock seam: session timestamps (created_at, ended_at), the ended-session retention, and the
// monotonic clock of the idle/disconnect timeouts.
#include <chrono>
#include <cstdint>
#include <string>

namespace appvirt::hostd {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_unix() const = 0;  // seconds since the epoch
  // CLOCK_MONOTONIC in milliseconds: the clock of the endpoints' activity reports (idle and
  // disconnect timeouts), shared by every process of the host.
  virtual int64_t now_mono_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

class SystemClock : public Clock {
 public:
  int64_t now_unix() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// "2024-05-01T12:00:00Z"
std::string format_utc(int64_t unix_seconds);

}  // namespace appvirt::hostd
