#include "session-host/hostd/xauth.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace appvirt::hostd {

namespace {

void put_u16(std::string& out, std::size_t v) {
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

void put_field(std::string& out, const std::string& data) {
  put_u16(out, data.size());
  out += data;
}

}  // namespace

Result<void> random_bytes(void* out, std::size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return fail_errno("getrandom");
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return {};
}

Result<XCookie> random_cookie() {
  XCookie c;
  if (auto r = random_bytes(c.data(), c.size()); !r) return tl::unexpected(r.error());
  return c;
}

Result<std::string> random_hex(std::size_t n) {
  std::string raw(n, '\0');
  if (auto r = random_bytes(raw.data(), n); !r) return tl::unexpected(r.error());
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string xauthority_entry(int display, const XCookie& cookie) {
  constexpr std::size_t kFamilyWild = 65535;
  std::string out;
  put_u16(out, kFamilyWild);
  put_field(out, "");  // address: ignored for FamilyWild
  put_field(out, std::to_string(display));
  put_field(out, "MIT-MAGIC-COOKIE-1");
  put_field(out, std::string(cookie.begin(), cookie.end()));
  return out;
}

Result<void> write_xauthority(const std::string& path, int display, const XCookie& cookie,
                              uid_t uid, gid_t gid) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail_errno("open(" + tmp + ")");
  std::string data = xauthority_entry(display, cookie);
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    ::unlink(tmp.c_str());
    return fail_errno("write(" + tmp + ")");
  }
  if (::fchown(fd.get(), uid, gid) < 0 || ::fchmod(fd.get(), 0600) < 0) {
    ::unlink(tmp.c_str());
    return fail_errno("fchown/fchmod(" + tmp + ")");
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    ::unlink(tmp.c_str());
    return fail_errno("rename(" + tmp + ", " + path + ")");
  }
  return {};
}

}  // namespace appvirt::hostd
