#include "gateway/https_broker_client.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>

#include "common/tls_cert.h"

namespace appvirt::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kMaxReplyBytes = 64 * 1024;

BrokerError error(unsigned status, std::string message) {
  return BrokerError{status, std::move(message), std::nullopt};
}

// Reads {"error": "..."} from a refusal, or falls back to the status alone.
BrokerError refusal(const HttpsBrokerClient::Reply& reply) {
  BrokerError e = error(reply.status, "broker answered " + std::to_string(reply.status));
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    e.message += ": " + j["error"].get<std::string>();
  }
  e.retry_after = reply.retry_after;
  return e;
}

std::optional<std::string> string_field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return std::nullopt;
  return j[key].get<std::string>();
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return std::chrono::seconds(value);
}

Result<std::string> read_secret(const std::filesystem::path& file) {
  auto text = read_small_file(file, 4096);
  if (!text) return tl::unexpected(text.error());
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
  if (text->empty()) return fail("broker secret file " + file.string() + " is empty");
  if (text->find_first_of("\r\n") != std::string::npos) {
    return fail("broker secret file " + file.string() + " must hold one line");
  }
  return text;
}

}  // namespace

bool is_cookie_safe(std::string_view value) {
  if (value.empty() || value.size() > 200) return false;
  for (char c : value) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

Result<std::unique_ptr<HttpsBrokerClient>> HttpsBrokerClient::create(
    asio::any_io_executor executor, const BrokerConfig& config) {
  auto secret = read_secret(config.secret_file);
  if (!secret) return tl::unexpected(secret.error());
  std::unique_ptr<HttpsBrokerClient> client(
      new HttpsBrokerClient(std::move(executor), config, std::move(*secret)));
  SSL_CTX* native = client->tls_.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return fail("SSL_CTX_set_min_proto_version(TLS1_2)");
  }
  boost::system::error_code ec;
  client->tls_.load_verify_file(config.ca_file.string(), ec);
  if (ec) return fail("broker.ca_file " + config.ca_file.string() + ": " + ec.message());
  client->tls_.set_verify_mode(ssl::verify_peer, ec);
  // Trusting the pinned file itself, even when it is a leaf and not a root.
  X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(native), X509_V_FLAG_PARTIAL_CHAIN);
  return client;
}

HttpsBrokerClient::HttpsBrokerClient(asio::any_io_executor executor, BrokerConfig config,
                                     std::string secret)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      secret_(std::move(secret)),
      tls_(ssl::context::tls_client) {}

asio::awaitable<BrokerResult<HttpsBrokerClient::Reply>> HttpsBrokerClient::post(
    std::string target, std::string body, std::chrono::milliseconds timeout) {
  beast::ssl_stream<beast::tcp_stream> stream(executor_, tls_);
  beast::get_lowest_layer(stream).expires_after(timeout);
  boost::system::error_code ec;
  tcp::resolver resolver(executor_);
  auto endpoints = co_await resolver.async_resolve(config_.host, std::to_string(config_.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return tl::unexpected(error(0, "resolve " + config_.host + ": " + ec.message()));
  co_await beast::get_lowest_layer(stream).async_connect(
      endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return tl::unexpected(error(0, "connect to the broker: " + ec.message()));
  if (!config_.server_name.empty()) {
    SSL_set_tlsext_host_name(stream.native_handle(), config_.server_name.c_str());
    SSL_set1_host(stream.native_handle(), config_.server_name.c_str());
  }
  co_await stream.async_handshake(ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return tl::unexpected(error(0, "TLS handshake with the broker: " + ec.message()));

  bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
  req.set(bhttp::field::host, config_.server_name.empty() ? config_.host : config_.server_name);
  req.set(bhttp::field::user_agent, "appvirt-gateway");
  req.set(bhttp::field::content_type, "application/json");
  req.set(bhttp::field::authorization, "Bearer " + secret_);
  req.keep_alive(false);
  req.body() = std::move(body);
  req.prepare_payload();
  co_await bhttp::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  OPENSSL_cleanse(req.body().data(), req.body().size());  // may hold a password
  if (ec) co_return tl::unexpected(error(0, "send to the broker: " + ec.message()));
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxReplyBytes);
  co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return tl::unexpected(error(0, "read from the broker: " + ec.message()));
  auto& res = parser.get();
  Reply reply{res.result_int(), std::move(res.body()), std::nullopt};
  if (auto it = res.find(bhttp::field::retry_after); it != res.end()) {
    reply.retry_after = parse_retry_after(std::string_view(it->value().data(), it->value().size()));
  }
  // No TLS close_notify round trip: the broker closes after a Connection: close reply anyway.
  co_return reply;
}

asio::awaitable<BrokerResult<Redemption>> HttpsBrokerClient::redeem(std::string token) {
  std::string body = nlohmann::json{{"token", token}}.dump();
  OPENSSL_cleanse(token.data(), token.size());
  auto reply = co_await post("/internal/v1/tokens/redeem", std::move(body), config_.timeout);
  if (!reply) co_return tl::unexpected(reply.error());
  co_return parse_redemption(*reply);
}

asio::awaitable<BrokerResult<LogonReply>> HttpsBrokerClient::logon(LogonRequest request) {
  nlohmann::json j = {{"username", request.username},
                      {"password", request.password},
                      {"client_address", request.client_address}};
  if (request.app) j["app"] = *request.app;
  OPENSSL_cleanse(request.password.data(), request.password.size());
  std::string body = j.dump();
  OPENSSL_cleanse(j["password"].get_ref<std::string&>().data(),
                  j["password"].get_ref<std::string&>().size());
  auto reply = co_await post("/internal/v1/logon", std::move(body), config_.logon_timeout);
  if (!reply) co_return tl::unexpected(reply.error());
  co_return parse_logon_reply(*reply);
}

BrokerResult<Redemption> parse_redemption(const HttpsBrokerClient::Reply& reply) {
  if (reply.status != 200) return tl::unexpected(refusal(reply));
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (!j.is_object()) return tl::unexpected(error(0, "redeem reply is not a JSON object"));
  Redemption r;
  auto session = string_field(j, "session_id");
  auto user = string_field(j, "user");
  auto secret = string_field(j, "secret");
  if (!session || !user || !secret || !j.contains("endpoint") || !j["endpoint"].is_object()) {
    return tl::unexpected(error(0, "redeem reply lacks session_id, user, secret or endpoint"));
  }
  if (!is_cookie_safe(*secret)) return tl::unexpected(error(0, "redeem reply: unusable secret"));
  r.session_id = *session;
  r.user = *user;
  r.secret = *secret;
  const auto& e = j["endpoint"];
  r.endpoint.unix_path = string_field(e, "unix").value_or("");
  r.endpoint.tcp = string_field(e, "tcp").value_or("");
  if (r.endpoint.unix_path.empty() && r.endpoint.tcp.empty()) {
    return tl::unexpected(error(0, "redeem reply: endpoint has neither unix nor tcp"));
  }
  return r;
}

BrokerResult<LogonReply> parse_logon_reply(const HttpsBrokerClient::Reply& reply) {
  if (reply.status != 200) return tl::unexpected(refusal(reply));
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (!j.is_object()) return tl::unexpected(error(0, "logon reply is not a JSON object"));
  auto token = string_field(j, "token");
  if (!token || !is_cookie_safe(*token)) {
    return tl::unexpected(error(0, "logon reply lacks a usable token"));
  }
  return LogonReply{*token, string_field(j, "session_id").value_or(""),
                    string_field(j, "user").value_or("")};
}

}  // namespace appvirt::gateway
