// libFuzzer target for the X.224 Connection Request parser: the first bytes any network peer
// sends to the gateway and to appvirt-rdp. Besides "no crash", it checks the parser's contract:
// needed_bytes agrees with parse, a parsed PDU serializes back to the same bytes, and a cookie
// rewrite yields a PDU that parses to the same request with only the cookie changed.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "common/x224.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_rewrite(const appvirt::x224::ConnectionRequest& req, const std::string& line) {
  auto out = appvirt::x224::rewrite_cookie(req, line);
  if (!out) return;  // e.g. the new line would overflow the one-byte LI: refusing is fine
  check(out->size() <= appvirt::x224::kMaxValidPduSize);
  check(((*out)[2] << 8 | (*out)[3]) == static_cast<int>(out->size()));
  check((*out)[4] == out->size() - 5);
  auto back = appvirt::x224::parse_connection_request(*out);
  check(back.has_value());
  appvirt::x224::ConnectionRequest expected = req;
  if (line.empty()) {
    expected.cookie.reset();
  } else {
    expected.cookie = line;
  }
  check(*back == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto needed = appvirt::x224::needed_bytes(in);
  auto req = appvirt::x224::parse_connection_request(in);
  if (!req) return 0;
  // A PDU that parses is one a reader guided by needed_bytes would have read in full.
  check(needed.has_value() && *needed == size);
  check(size >= appvirt::x224::kMinPduSize && size <= appvirt::x224::kMaxValidPduSize);
  auto again = appvirt::x224::serialize(*req);
  check(again.has_value() && again->size() == size &&
        std::equal(again->begin(), again->end(), data));
  check_rewrite(*req, "Cookie: msts=" + std::string(64, '7'));
  check_rewrite(*req, "");
  // The cookie's own text, reused as a new line (exercises arbitrary byte values in lines).
  if (req->cookie) check_rewrite(*req, *req->cookie + "x");
  return 0;
}
