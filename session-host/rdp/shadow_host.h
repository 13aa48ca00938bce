#pragma once
// libfreerdp-shadow2 with appvirt's damage-driven subsystem (or the built-in X11 one), embedded
// without its own listener.
//
// The shadow server's thread waits on listener->GetEventHandles() and calls
// listener->CheckFileDescriptor(), which accepts and calls listener->PeerAccepted
// (shadow_client_accepted) for each connection. ShadowHost replaces those listener functions
// (the struct is public API): Open/OpenLocal bind nothing, GetEventHandles returns one event
// that hand_off() signals, and CheckFileDescriptor wraps the queued, already-vetted sockets in
// freerdp_peer_new() and calls PeerAccepted - on the shadow thread, exactly where FreeRDP's own
// listener would, so no FreeRDP state is touched from a foreign thread and no client can be
// added after the server thread has begun shutting down.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "session-host/rdp/activity_report.h"
#include "session-host/rdp/cookie_gate.h"

struct rdp_shadow_server;

namespace appvirt::rdp {

// How the screen is captured: `damage` is appvirt's XDamage-driven subsystem
// (damage_subsystem.h), `stock` FreeRDP's built-in X11 subsystem (polls the whole screen).
enum class CaptureMode { damage, stock };
// Which encoders a client may get: `lossless` = planar/interleaved bitmaps only (no GFX/H.264,
// RemoteFX or NSCodec: exact pixels, and a few hundred bytes per typed character), `stock` =
// whatever FreeRDP's shadow server negotiates (GFX + full-screen H.264 when the client offers it).
enum class CodecPolicy { lossless, stock };

class ShadowHost {
 public:
  struct Config {
    std::string config_dir;  // holds shadow/shadow.crt and shadow/shadow.key
    std::string secret;      // re-checked against the routing token when a client connects
    ActivityReport* activity = nullptr;  // borrowed; told of connects, disconnects and input
    CaptureMode capture = CaptureMode::damage;
    CodecPolicy codecs = CodecPolicy::lossless;
  };

  // shadow_server_new/init (opens the X display from DISPLAY/XAUTHORITY) and start.
  static Result<std::unique_ptr<ShadowHost>> start(Config config);
  ~ShadowHost();  // stop() if still running
  ShadowHost(const ShadowHost&) = delete;
  ShadowHost& operator=(const ShadowHost&) = delete;

  // Thread-safe: queues a vetted socket for the shadow thread.
  void hand_off(UniqueFd fd, const PeerAddress& peer);
  // Stops the server thread (which disconnects the clients) and frees the server.
  void stop();

 private:
  struct Queued {
    UniqueFd fd;
    PeerAddress peer;
  };
  explicit ShadowHost(Config config);
  Result<void> init();
  void install_hooks();
  void accept_queued();
  void accept_one(Queued q);

  friend struct ShadowCallbacks;

  Config config_;
  rdp_shadow_server* server_ = nullptr;
  void* wake_event_ = nullptr;  // winpr HANDLE, set by hand_off
  std::mutex mu_;
  std::vector<Queued> queue_;
  bool started_ = false;
};

}  // namespace appvirt::rdp
