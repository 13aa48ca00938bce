#pragma once
// The .rdp file a launch returns: what mstsc and xfreerdp need to reach the session through the
// gateway with the one-time launch token as the routing token.
#include <string>

namespace appvirt::broker {

struct RdpFileParams {
  std::string gateway_address;  // "host:port"
  std::string token;            // launch token
  std::string user;
  std::string app_name;         // informational (window title on some clients)
  int width = 1280;
  int height = 800;
};

// Clients send the loadbalanceinfo value verbatim (plus CRLF) as the routing token of their
// X.224 Connection Request; it is written as "Cookie: msts=<token>" because that is the form the
// gateway (and FreeRDP servers) accept. Lines end in CRLF as mstsc writes them. Control characters
// in values are dropped, so no value can start a new line.
std::string render_rdp_file(const RdpFileParams& p);

// A file name for Content-Disposition: the app id with anything outside [A-Za-z0-9._-] replaced.
std::string rdp_file_name(const std::string& app_id);

}  // namespace appvirt::broker
