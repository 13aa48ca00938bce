#include "common/x224.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace appvirt::x224 {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes(std::initializer_list<int> v) {
  Bytes out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

Bytes concat(const Bytes& a, const std::string& s, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), s.begin(), s.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// Exactly what xfreerdp 2.11 sends for /u:alice (FREERDP-NOTES.md).
Bytes xfreerdp_alice() {
  return concat(bytes({0x03, 0x00, 0x00, 0x2b, 0x26, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00}),
                "Cookie: mstshash=alice\r\n",
                bytes({0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00}));
}

// A PDU built by hand with correct lengths around an arbitrary variable part.
Bytes with_header(const Bytes& variable) {
  Bytes out = bytes({0x03, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x12, 0x34, 0x00});
  out.insert(out.end(), variable.begin(), variable.end());
  out[2] = static_cast<uint8_t>(out.size() >> 8);
  out[3] = static_cast<uint8_t>(out.size() & 0xff);
  out[4] = static_cast<uint8_t>(out.size() - 5);
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string error_of(const Bytes& pdu) {
  auto r = parse_connection_request(pdu);
  EXPECT_FALSE(r.has_value());
  return r ? std::string() : r.error().message;
}

TEST(X224, ParsesRealXfreerdpRequest) {
  Bytes pdu = xfreerdp_alice();
  ASSERT_EQ(pdu.size(), 0x2bu);
  auto r = parse_connection_request(pdu);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->cookie, "Cookie: mstshash=alice");
  EXPECT_EQ(r->dst_ref, 0);
  EXPECT_EQ(r->src_ref, 0);
  EXPECT_EQ(r->class_option, 0);
  ASSERT_TRUE(r->negotiation);
  EXPECT_EQ(r->negotiation->flags, 0);
  EXPECT_EQ(r->negotiation->requested_protocols, 3u);  // TLS | HYBRID
  EXPECT_FALSE(r->negotiation->correlation_info);
}

TEST(X224, SerializeReproducesTheInput) {
  Bytes pdu = xfreerdp_alice();
  auto r = parse_connection_request(pdu);
  ASSERT_TRUE(r);
  auto again = serialize(*r);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, pdu);
}

TEST(X224, RoutingTokenCookie) {
  Bytes pdu = with_header(concat({}, "Cookie: msts=0123456789abcdef\r\n",
                                 bytes({0x01, 0x08, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00})));
  auto r = parse_connection_request(pdu);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->cookie, "Cookie: msts=0123456789abcdef");
  EXPECT_EQ(r->src_ref, 0x1234);
  EXPECT_EQ(r->negotiation->flags, 0x08);
  EXPECT_EQ(r->negotiation->requested_protocols, 1u);
}

TEST(X224, AnyLoadBalanceLineIsACookie) {
  auto r = parse_connection_request(with_header(text("tsv://MS Terminal Services Plugin.1\r\n")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->cookie, "tsv://MS Terminal Services Plugin.1");
  EXPECT_FALSE(r->negotiation);
}

TEST(X224, NoCookieNoNegotiation) {
  auto r = parse_connection_request(with_header({}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->cookie);
  EXPECT_FALSE(r->negotiation);
}

TEST(X224, NegotiationWithoutCookie) {
  auto r = parse_connection_request(with_header(bytes({1, 0, 8, 0, 0x0b, 0, 0, 0})));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->cookie);
  EXPECT_EQ(r->negotiation->requested_protocols, 0x0bu);
}

TEST(X224, CorrelationInfoIsKeptVerbatim) {
  Bytes variable = bytes({1, 0, 8, 0, 3, 0, 0, 0, 6, 0, 36, 0});
  for (int i = 0; i < 16; ++i) variable.push_back(static_cast<uint8_t>(0xa0 + i));
  variable.resize(variable.size() + 16, 0);
  Bytes pdu = with_header(concat({}, "Cookie: msts=x\r\n", variable));
  auto r = parse_connection_request(pdu);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->negotiation->correlation_info);
  EXPECT_EQ((*r->negotiation->correlation_info)[4], 0xa0);
  EXPECT_EQ(*serialize(*r), pdu);
}

TEST(X224, RejectsShortInput) {
  EXPECT_NE(error_of({}).find("shorter"), std::string::npos);
  EXPECT_NE(error_of(bytes({3, 0, 0, 11, 6, 0xe0})).find("shorter"), std::string::npos);
}

TEST(X224, RejectsWrongVersion) {
  Bytes pdu = xfreerdp_alice();
  pdu[0] = 0x16;  // a TLS ClientHello sent without X.224
  EXPECT_NE(error_of(pdu).find("version"), std::string::npos);
}

TEST(X224, RejectsNonZeroReservedByte) {
  Bytes pdu = xfreerdp_alice();
  pdu[1] = 1;
  EXPECT_NE(error_of(pdu).find("reserved"), std::string::npos);
}

TEST(X224, RejectsTpktLengthMismatch) {
  Bytes pdu = xfreerdp_alice();
  pdu.push_back(0);  // one byte more than announced
  EXPECT_NE(error_of(pdu).find("but PDU has"), std::string::npos);
  pdu = xfreerdp_alice();
  pdu.pop_back();  // truncated
  EXPECT_NE(error_of(pdu).find("but PDU has"), std::string::npos);
}

TEST(X224, RejectsInconsistentLengthIndicator) {
  Bytes pdu = xfreerdp_alice();
  pdu[4] = 0x25;
  EXPECT_NE(error_of(pdu).find("length indicator"), std::string::npos);
}

TEST(X224, RejectsOtherTpdu) {
  Bytes pdu = xfreerdp_alice();
  pdu[5] = 0xd0;  // Connection Confirm
  EXPECT_NE(error_of(pdu).find("not a Connection Request"), std::string::npos);
}

TEST(X224, RejectsCookieWithoutCrlf) {
  EXPECT_NE(error_of(with_header(text("Cookie: msts=abc"))).find("CRLF"), std::string::npos);
  EXPECT_NE(error_of(with_header(text("Cookie: msts=abc\r"))).find("CRLF"), std::string::npos);
}

TEST(X224, RejectsNulOrBareLfInCookie) {
  Bytes nul = text("Cookie: ms");
  nul.push_back(0);
  nul.push_back('\r');
  nul.push_back('\n');
  EXPECT_NE(error_of(with_header(nul)).find("NUL"), std::string::npos);
  EXPECT_NE(error_of(with_header(text("Cookie:\nx\r\n"))).find("NUL"), std::string::npos);
  EXPECT_NE(error_of(with_header(text("\r\n"))).find("empty"), std::string::npos);
}

TEST(X224, RejectsBadNegotiation) {
  EXPECT_NE(error_of(with_header(bytes({1, 0, 8, 0, 3}))).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(with_header(concat({}, "c\r\n", bytes({2, 0, 8, 0, 3, 0, 0, 0}))))
                .find("negotiation type"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(bytes({1, 0, 9, 0, 3, 0, 0, 0}))).find("length field"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(bytes({1, 0, 8, 0, 3, 0, 0, 0, 6}))).find("after RDP_NEG_REQ"),
            std::string::npos);
}

TEST(X224, RejectsOversizedTpkt) {
  Bytes big(5000, 'A');
  big[0] = 3;
  big[1] = 0;
  big[2] = static_cast<uint8_t>(5000 >> 8);
  big[3] = static_cast<uint8_t>(5000 & 0xff);
  EXPECT_NE(error_of(big).find("exceeds 4 KiB"), std::string::npos);
  // 4 KiB is readable, but a CR that long cannot have a consistent one-byte LI.
  Bytes pdu = with_header(concat({}, std::string(300, 'a') + "\r\n", {}));
  EXPECT_NE(error_of(pdu).find("length indicator"), std::string::npos);
}

TEST(X224, NeededBytesGuidesAnIncrementalReader) {
  Bytes pdu = xfreerdp_alice();
  EXPECT_EQ(*needed_bytes({}), kTpktHeaderSize);
  EXPECT_EQ(*needed_bytes(std::span(pdu).first(1)), kTpktHeaderSize);
  EXPECT_EQ(*needed_bytes(std::span(pdu).first(3)), kTpktHeaderSize);
  EXPECT_EQ(*needed_bytes(std::span(pdu).first(4)), pdu.size());
  EXPECT_EQ(*needed_bytes(pdu), pdu.size());
  EXPECT_FALSE(needed_bytes(bytes({'G'})));                 // "GET / HTTP/1.1"
  EXPECT_FALSE(needed_bytes(bytes({3, 0, 0, 5})));          // shorter than a CR can be
  EXPECT_FALSE(needed_bytes(bytes({3, 0, 0x10, 0x01})));    // 4097
  EXPECT_EQ(*needed_bytes(bytes({3, 0, 0x10, 0x00})), 4096u);
}

TEST(X224, RewriteCookieFixesLengths) {
  auto r = parse_connection_request(xfreerdp_alice());
  ASSERT_TRUE(r);
  const std::string secret_line = "Cookie: msts=" + std::string(64, 'f');
  auto out = rewrite_cookie(*r, secret_line);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->size(), 0x2bu - 22 + secret_line.size());
  EXPECT_EQ((*out)[2] << 8 | (*out)[3], static_cast<int>(out->size()));
  EXPECT_EQ((*out)[4], out->size() - 5);
  auto back = parse_connection_request(*out);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->cookie, secret_line);
  EXPECT_EQ(back->negotiation, r->negotiation);
}

TEST(X224, RewriteCookieCanAddAndRemove) {
  auto r = parse_connection_request(with_header(bytes({1, 0, 8, 0, 1, 0, 0, 0})));
  ASSERT_TRUE(r);
  auto added = rewrite_cookie(*r, "Cookie: msts=abc");
  ASSERT_TRUE(added);
  EXPECT_EQ(parse_connection_request(*added)->cookie, "Cookie: msts=abc");
  auto removed = rewrite_cookie(*parse_connection_request(*added), "");
  ASSERT_TRUE(removed);
  EXPECT_FALSE(parse_connection_request(*removed)->cookie);
  EXPECT_EQ(removed->size(), 19u);
}

TEST(X224, RewriteCookieRejectsBadLines) {
  auto r = parse_connection_request(xfreerdp_alice());
  ASSERT_TRUE(r);
  EXPECT_FALSE(rewrite_cookie(*r, "Cookie: msts=a\r\nInjected: x"));
  EXPECT_FALSE(rewrite_cookie(*r, std::string("Cookie: msts=a\0b", 16)));
  EXPECT_FALSE(rewrite_cookie(*r, "\x01oops"));
  EXPECT_FALSE(rewrite_cookie(*r, "Cookie: msts=" + std::string(300, 'x')));  // LI overflow
  EXPECT_TRUE(rewrite_cookie(*r, "Cookie: msts=" + std::string(200, 'x')));
}

}  // namespace
}  // namespace appvirt::x224
