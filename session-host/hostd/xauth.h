#pragma once
// X authorization: a random MIT-MAGIC-COOKIE-1 per session, written in the Xauthority file
// format (the one libXau reads) without running the xauth binary.
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace appvirt::hostd {

using XCookie = std::array<uint8_t, 16>;

// Random bytes from getrandom(2); fails only if the kernel cannot provide them.
Result<void> random_bytes(void* out, std::size_t n);
Result<XCookie> random_cookie();
// n random bytes as lower-case hex (session ids, the 256-bit session secret).
Result<std::string> random_hex(std::size_t n);

// The bytes of an Xauthority file with one entry: family FamilyWild (matches any host name, as
// the container's and the host's host names differ), display number, MIT-MAGIC-COOKIE-1.
std::string xauthority_entry(int display, const XCookie& cookie);

// Writes the file atomically (temp + rename) with mode 0600 and the given owner.
Result<void> write_xauthority(const std::string& path, int display, const XCookie& cookie,
                              uid_t uid, gid_t gid);

}  // namespace appvirt::hostd
