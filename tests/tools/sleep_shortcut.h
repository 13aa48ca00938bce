#pragma once
// FreeRDP 2.11 drives the client connection sequence (rdp_client_connect in
// libfreerdp/core/connection.c, and the reactivation loop in activation.c) as
//   for (...) { rdp_check_fds(rdp); if (active) return; Sleep(100); }
// so every server round trip after the TLS handshake (MCS connect, attach user, channel joins,
// licensing, capabilities, finalization) waits for the next 100 ms tick, whatever the server
// does: 5-8 ticks, i.e. a 0.5-0.8 s client-side floor under "connect -> first frame".
//
// rdp-probe measures servers, so it defines winpr's Sleep() itself (sleep_shortcut.cc): the
// dynamic linker binds libfreerdp2's calls to the executable's definition first. On a thread
// that holds a SleepShortcut, Sleep(ms) returns as soon as the relay hands new server bytes to
// FreeRDP (or after ms); on any other thread it sleeps ms like winpr's own Sleep.
#include <cstdint>

namespace appvirt::probe {

class ByteRelay;

class SleepShortcut {
 public:
  // Installs the shortcut for the calling thread until destruction.
  explicit SleepShortcut(ByteRelay* relay);
  ~SleepShortcut();
  SleepShortcut(const SleepShortcut&) = delete;
  SleepShortcut& operator=(const SleepShortcut&) = delete;

  // Sleeps until the relay delivers news or ms pass.
  void sleep(uint32_t ms);
  // Sleep() calls that returned early / in total, for tests.
  static uint64_t shortcut_count();
  static uint64_t sleep_count();

 private:
  ByteRelay* relay_;
  uint64_t seen_ = 0;
  SleepShortcut* previous_;
};

}  // namespace appvirt::probe
