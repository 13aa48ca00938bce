#include "broker/rdp_file.h"

namespace appvirt::broker {

namespace {

std::string clean(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  return out;
}

}  // namespace

std::string rdp_file_name(const std::string& app_id) {
  std::string out;
  for (char c : app_id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.empty()) out = "app";
  return out + ".rdp";
}

std::string render_rdp_file(const RdpFileParams& p) {
  std::string out;
  auto s = [&](const char* key, const std::string& value) {
    out += key;
    out += ":s:";
    out += clean(value);
    out += "\r\n";
  };
  auto i = [&](const char* key, int value) {
    out += key;
    out += ":i:";
    out += std::to_string(value);
    out += "\r\n";
  };
  s("full address", p.gateway_address);
  s("loadbalanceinfo", "Cookie: msts=" + p.token);
  s("username", p.user);
  i("screen mode id", 1);  // windowed
  i("desktopwidth", p.width);
  i("desktopheight", p.height);
  i("session bpp", 32);
  // The session is one application on its own display, shown as a desktop-sized window: the
  // endpoint does not offer RAIL yet, so RemoteApp mode stays off.
  i("remoteapplicationmode", 0);
  s("remoteapplicationname", p.app_name);
  // The endpoint checks the launch token, not an NTLM hash: no CredSSP/NLA, TLS only.
  i("enablecredsspsupport", 0);
  i("authentication level", 2);
  i("negotiate security layer", 1);
  i("prompt for credentials", 0);
  i("autoreconnection enabled", 1);
  i("compression", 1);
  i("audiomode", 2);
  i("redirectclipboard", 1);
  i("redirectprinters", 0);
  i("redirectdrives", 0);
  i("redirectsmartcards", 0);
  i("use multimon", 0);
  i("displayconnectionbar", 1);
  return out;
}

}  // namespace appvirt::broker
