#include "common/x224.h"

#include <algorithm>
#include <string>

namespace appvirt::x224 {
namespace {

uint16_t be16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

uint32_t le32(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint32_t>(b[at]) | (static_cast<uint32_t>(b[at + 1]) << 8) |
         (static_cast<uint32_t>(b[at + 2]) << 16) | (static_cast<uint32_t>(b[at + 3]) << 24);
}

void put_be16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xFF));
}

void put_le32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// A cookie line must be something FreeRDP and Windows can carry: text up to a CRLF, no NUL
// (FreeRDP treats it as a C string), and not starting with the RDP_NEG_REQ type byte, which is
// how the parser tells "no cookie" from "cookie".
Result<void> check_cookie_line(std::string_view line) {
  if (line.empty()) return fail("x224: empty cookie line");
  if (static_cast<uint8_t>(line.front()) == kTypeNegReq) {
    return fail("x224: cookie line starts with 0x01 (RDP_NEG_REQ type)");
  }
  for (char c : line) {
    if (c == '\r' || c == '\n' || c == '\0') return fail("x224: CR, LF or NUL inside cookie line");
  }
  return {};
}

// Splits the cookie line off the variable part; `rest` is what follows its CRLF.
Result<std::optional<std::string>> parse_cookie(std::span<const uint8_t>& rest) {
  if (rest.empty() || rest.front() == kTypeNegReq) return std::optional<std::string>{};
  static constexpr uint8_t kCrlf[] = {'\r', '\n'};
  auto it = std::search(rest.begin(), rest.end(), std::begin(kCrlf), std::end(kCrlf));
  if (it == rest.end()) return fail("x224: cookie line without CRLF within the PDU");
  std::string line(rest.begin(), it);
  if (auto ok = check_cookie_line(line); !ok) return tl::unexpected(ok.error());
  rest = rest.subspan(line.size() + 2);
  return std::optional<std::string>{std::move(line)};
}

Result<std::optional<NegotiationRequest>> parse_negotiation(std::span<const uint8_t> rest) {
  if (rest.empty()) return std::optional<NegotiationRequest>{};
  if (rest.size() < kNegReqSize) return fail("x224: truncated RDP_NEG_REQ");
  if (rest[0] != kTypeNegReq) {
    return fail("x224: unexpected negotiation type " + std::to_string(rest[0]));
  }
  uint16_t length = static_cast<uint16_t>(rest[2] | (rest[3] << 8));
  if (length != kNegReqSize) return fail("x224: RDP_NEG_REQ length field is not 8");
  NegotiationRequest neg;
  neg.flags = rest[1];
  neg.requested_protocols = le32(rest, 4);
  rest = rest.subspan(kNegReqSize);
  if (rest.empty()) return neg;
  if (rest.size() != kCorrelationInfoSize || rest[0] != kTypeNegCorrelationInfo) {
    return fail("x224: unexpected bytes after RDP_NEG_REQ");
  }
  std::array<uint8_t, kCorrelationInfoSize> info;
  std::copy(rest.begin(), rest.end(), info.begin());
  neg.correlation_info = info;
  return neg;
}

}  // namespace

Result<size_t> needed_bytes(std::span<const uint8_t> prefix) {
  if (!prefix.empty() && prefix[0] != 3) return fail("x224: not a TPKT header (version != 3)");
  if (prefix.size() < kTpktHeaderSize) return kTpktHeaderSize;
  size_t length = be16(prefix, 2);
  if (length < kMinPduSize) return fail("x224: TPKT length " + std::to_string(length) + " < 11");
  if (length > kMaxPduSize) {
    return fail("x224: TPKT length " + std::to_string(length) + " exceeds 4 KiB");
  }
  return length;
}

Result<ConnectionRequest> parse_connection_request(std::span<const uint8_t> pdu) {
  if (pdu.size() < kMinPduSize) return fail("x224: PDU shorter than 11 bytes");
  auto needed = needed_bytes(pdu);
  if (!needed) return tl::unexpected(needed.error());
  if (pdu[1] != 0) return fail("x224: TPKT reserved byte is not 0");
  if (*needed != pdu.size()) {
    return fail("x224: TPKT length " + std::to_string(*needed) + " but PDU has " +
                std::to_string(pdu.size()) + " bytes");
  }
  if (pdu[4] != pdu.size() - 5) return fail("x224: length indicator inconsistent with TPKT length");
  if (pdu[5] != kConnectionRequestCode) return fail("x224: TPDU is not a Connection Request");
  ConnectionRequest req;
  req.dst_ref = be16(pdu, 6);
  req.src_ref = be16(pdu, 8);
  req.class_option = pdu[10];
  std::span<const uint8_t> rest = pdu.subspan(kMinPduSize);
  auto cookie = parse_cookie(rest);
  if (!cookie) return tl::unexpected(cookie.error());
  req.cookie = std::move(*cookie);
  auto neg = parse_negotiation(rest);
  if (!neg) return tl::unexpected(neg.error());
  req.negotiation = std::move(*neg);
  return req;
}

Result<std::vector<uint8_t>> serialize(const ConnectionRequest& request) {
  if (request.cookie) {
    if (auto ok = check_cookie_line(*request.cookie); !ok) return tl::unexpected(ok.error());
  }
  std::vector<uint8_t> out = {3, 0, 0, 0, 0, kConnectionRequestCode};
  put_be16(out, request.dst_ref);
  put_be16(out, request.src_ref);
  out.push_back(request.class_option);
  if (request.cookie) {
    out.insert(out.end(), request.cookie->begin(), request.cookie->end());
    out.push_back('\r');
    out.push_back('\n');
  }
  if (const auto& neg = request.negotiation) {
    out.insert(out.end(), {kTypeNegReq, neg->flags, static_cast<uint8_t>(kNegReqSize), 0});
    put_le32(out, neg->requested_protocols);
    if (neg->correlation_info) {
      if ((*neg->correlation_info)[0] != kTypeNegCorrelationInfo) {
        return fail("x224: correlation info does not start with type 6");
      }
      out.insert(out.end(), neg->correlation_info->begin(), neg->correlation_info->end());
    }
  }
  if (out.size() > kMaxValidPduSize) {
    return fail("x224: PDU of " + std::to_string(out.size()) + " bytes does not fit the X.224 LI");
  }
  out[2] = static_cast<uint8_t>(out.size() >> 8);
  out[3] = static_cast<uint8_t>(out.size() & 0xFF);
  out[4] = static_cast<uint8_t>(out.size() - 5);
  return out;
}

Result<std::vector<uint8_t>> rewrite_cookie(const ConnectionRequest& request,
                                            std::string_view new_cookie_line) {
  ConnectionRequest copy = request;
  if (new_cookie_line.empty()) {
    copy.cookie.reset();
  } else {
    copy.cookie = std::string(new_cookie_line);
  }
  return serialize(copy);
}

}  // namespace appvirt::x224
