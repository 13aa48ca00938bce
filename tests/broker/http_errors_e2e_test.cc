// End to end (label e2e): the real appvirt-broker over HTTPS, provoking each error its HTTP
// server answers before any route runs — 408 (slow header, slow body), 413 (oversized body),
// 431 (oversized header), 400 (malformed request) — and checking that these carry the same
// security headers and JSON error body as the API's own answers. No hosts, users or PAM: none of
// these requests gets that far. (The broker's connection cap closes before the TLS handshake, so
// it has no HTTP answer to check; http_server_test covers the 503 of the generic server.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/broker/e2e_support.h"
#include "tests/tools/test_support.h"

namespace appvirt::broker::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kApiCsp = "default-src 'none'; frame-ancestors 'none'";

// A raw HTTP/1.1 answer as a Reply (lower-case header names).
Reply parse_raw(const std::string& raw) {
  Reply r;
  std::size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = static_cast<unsigned>(std::stoi(raw.substr(9, 3)));
  std::istringstream head(raw.substr(0, end));
  std::string line;
  std::getline(head, line);  // the status line
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t v = line.find_first_not_of(' ', colon + 1);
    r.headers[name] = v == std::string::npos ? "" : line.substr(v);
  }
  r.body = raw.substr(end + 4);
  return r;
}

void expect_security_headers(const Reply& r) {
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  EXPECT_EQ(r.header("referrer-policy"), "no-referrer");
  EXPECT_EQ(r.header("strict-transport-security"), "max-age=31536000");
  EXPECT_NE(r.header("content-security-policy").find("frame-ancestors 'none'"), std::string::npos)
      << r.header("content-security-policy");
}

// An error as the API answers it: the status, the security headers, no-store, {"error": "..."}.
void expect_json_error(const Reply& r, unsigned status) {
  EXPECT_EQ(r.status, status) << r.body;
  expect_security_headers(r);
  EXPECT_EQ(r.header("cache-control"), "no-store");
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_TRUE(body["error"].is_string()) << r.body;
}

// An error of the HTTP server itself: as the API's, with the API's CSP.
void expect_api_error(const Reply& r, unsigned status) {
  expect_json_error(r, status);
  EXPECT_EQ(r.header("content-security-policy"), kApiCsp);
}

class BrokerHttpErrorsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directory(dir_.path() + "/web");
    std::ofstream(dir_.path() + "/web/index.html") << "<!doctype html><title>portal</title>\n";
    std::ofstream(dir_.path() + "/broker.toml")
        << "state_dir = \"" << dir_.path() << "/broker\"\n"
        << "[web]\nroot = \"" << dir_.path() << "/web\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = 0\nmax_body_bytes = 8192\n"
        << "max_header_bytes = 4096\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000\n";
    auto b = start_broker(APPVIRT_BROKER, dir_.path() + "/broker.toml",
                          dir_.path() + "/broker.port", dir_.path() + "/broker.log", 0);
    ASSERT_TRUE(b) << b.error().str();
    broker_ = std::move(b->child);
    port_ = b->port;
  }

  Reply raw(const std::string& request) {
    auto r = raw_tls(port_, request, 10s);
    EXPECT_TRUE(r) << (r ? "" : r.error().str());
    if (!r) return {};
    EXPECT_TRUE(r->closed) << "still open after 10 s";
    return parse_raw(r->received);
  }

  testing::TempDir dir_;
  testing::Child broker_;
  uint16_t port_ = 0;
};

TEST_F(BrokerHttpErrorsE2eTest, SlowHeaderIs408WithTheSecurityHeaders) {
  expect_api_error(raw("GET /healthz HTTP/1.1\r\nHost: x\r\n"), 408);
}

TEST_F(BrokerHttpErrorsE2eTest, SlowBodyIs408WithTheSecurityHeaders) {
  expect_api_error(raw("POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100\r\n\r\n{\"username\":"),
                   408);
}

TEST_F(BrokerHttpErrorsE2eTest, OversizedBodyIs413WithTheSecurityHeaders) {
  // Refused from Content-Length; the body is never sent.
  expect_api_error(raw("POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100000\r\n\r\n"),
                   413);
}

TEST_F(BrokerHttpErrorsE2eTest, OversizedHeaderIs431WithTheSecurityHeaders) {
  // 5000 bytes: over max_header_bytes, and one TLS record, so the broker reads all of it.
  expect_api_error(raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(5000, 'f') +
                       "\r\n\r\n"),
                   431);
}

TEST_F(BrokerHttpErrorsE2eTest, MalformedRequestIs400WithTheSecurityHeaders) {
  expect_api_error(raw("NOT HTTP AT ALL\r\n\r\n"), 400);
}

TEST_F(BrokerHttpErrorsE2eTest, RoutedAnswersKeepTheirHeaders) {
  // The same decorator covers routed answers: the API's JSON and errors, and portal files,
  // which keep their own caching and the portal's CSP.
  auto health = https(port_, "GET", "/healthz");
  ASSERT_TRUE(health) << health.error().str();
  EXPECT_EQ(health->status, 200u);
  expect_security_headers(*health);
  EXPECT_EQ(health->header("content-security-policy"), kApiCsp);
  EXPECT_EQ(health->header("cache-control"), "no-store");
  auto missing = https(port_, "GET", "/api/v1/nothing-here");
  ASSERT_TRUE(missing) << missing.error().str();
  expect_json_error(*missing, 404);
  auto index = https(port_, "GET", "/");
  ASSERT_TRUE(index) << index.error().str();
  EXPECT_EQ(index->status, 200u) << index->body;
  expect_security_headers(*index);
  EXPECT_EQ(index->header("cache-control"), "no-cache");
  EXPECT_NE(index->header("content-security-policy").find("script-src 'self'"), std::string::npos);
}

}  // namespace
}  // namespace appvirt::broker::e2e
