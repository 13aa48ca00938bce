#pragma once
// The first PDU an RDP client sends, in cleartext before TLS: TPKT header + X.224 Connection
// Request TPDU + optional cookie / routing-token line + optional RDP_NEG_REQ (+ optional
// RDP_NEG_CORRELATION_INFO). The gateway and appvirt-rdp read it themselves (bounded size,
// bounded time) to route and to check the session secret before any RDP library sees the bytes,
// so this parser is strict: every field is checked and every byte is accounted for, which makes
// serialize(parse(pdu)) == pdu and lets the gateway rewrite the cookie safely.
//
// Layout (MS-RDPBCGR 2.2.1.1):
//   03 00 LL LL              TPKT: version 3, reserved 0, total length (big endian, header incl.)
//   LI E0 DD DD SS SS CC     X.224 CR: length indicator (= total - 5), CR code, dst-ref, src-ref,
//                            class option
//   "Cookie: ...\r\n"        optional; any line not starting with 0x01 (load-balance info)
//   01 FF 08 00 PP PP PP PP  optional RDP_NEG_REQ: type 1, flags, length 8, requestedProtocols (LE)
//   06 ... (36 bytes)        optional RDP_NEG_CORRELATION_INFO, kept verbatim
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace appvirt::x224 {

// Readers never buffer more than this for the first PDU; a TPKT length above it is refused.
inline constexpr size_t kMaxPduSize = 4096;
inline constexpr size_t kTpktHeaderSize = 4;
// TPKT header + the fixed part of the CR TPDU (LI, code, dst-ref, src-ref, class).
inline constexpr size_t kMinPduSize = kTpktHeaderSize + 7;
// LI is one byte and counts everything after itself, so a valid CR is at most 4 + 1 + 255 bytes.
inline constexpr size_t kMaxValidPduSize = kTpktHeaderSize + 1 + 255;
inline constexpr uint8_t kConnectionRequestCode = 0xE0;
inline constexpr uint8_t kTypeNegReq = 0x01;
inline constexpr uint8_t kTypeNegCorrelationInfo = 0x06;
inline constexpr size_t kNegReqSize = 8;
inline constexpr size_t kCorrelationInfoSize = 36;

struct NegotiationRequest {
  uint8_t flags = 0;
  uint32_t requested_protocols = 0;  // PROTOCOL_SSL = 1, PROTOCOL_HYBRID = 2, ...
  // RDP_NEG_CORRELATION_INFO following the request, verbatim (type 6, 36 bytes), if present.
  std::optional<std::array<uint8_t, kCorrelationInfoSize>> correlation_info;

  bool operator==(const NegotiationRequest&) const = default;
};

struct ConnectionRequest {
  uint16_t dst_ref = 0;
  uint16_t src_ref = 0;
  uint8_t class_option = 0;
  // The cookie / routing-token line without its CRLF ("Cookie: msts=abc"); nullopt if absent.
  std::optional<std::string> cookie;
  std::optional<NegotiationRequest> negotiation;

  bool operator==(const ConnectionRequest&) const = default;
};

// How many bytes the reader needs in total for the first PDU, judged from the bytes it has so
// far: kTpktHeaderSize while fewer than 4 are there, then the TPKT length. Fails as soon as the
// prefix cannot start a Connection Request (wrong version, length < 11 or > kMaxPduSize).
Result<size_t> needed_bytes(std::span<const uint8_t> prefix);

// Parses exactly one PDU: pdu.size() must equal the TPKT length.
Result<ConnectionRequest> parse_connection_request(std::span<const uint8_t> pdu);

// Builds the PDU for a request, with TPKT length and LI computed. Fails when the cookie line is
// not a valid line (CR, LF or NUL inside, empty, starts with 0x01) or the PDU would not fit LI.
Result<std::vector<uint8_t>> serialize(const ConnectionRequest& request);

// The request with its cookie line replaced (given without CRLF; empty removes the cookie),
// serialized. What the gateway sends to a session endpoint after redeeming a launch token.
Result<std::vector<uint8_t>> rewrite_cookie(const ConnectionRequest& request,
                                            std::string_view new_cookie_line);

}  // namespace appvirt::x224
