#pragma once
// BrokerClient over HTTPS (one TLS connection per call; the calls are rare: one per connection
// routed or logged on). The broker's certificate is pinned: only the configured PEM file (the
// broker's self-signed certificate or its CA) is trusted, partial chains allowed, so a leaf
// certificate can be pinned directly. The shared secret goes in `Authorization: Bearer`, the one
// header the broker checks.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/result.h"
#include "gateway/broker_client.h"
#include "gateway/gateway_config.h"

namespace appvirt::gateway {

class HttpsBrokerClient : public BrokerClient {
 public:
  // Loads the pinned certificate and the secret; fails on unreadable or empty files.
  static Result<std::unique_ptr<HttpsBrokerClient>> create(boost::asio::any_io_executor executor,
                                                           const BrokerConfig& config);

  boost::asio::awaitable<BrokerResult<Redemption>> redeem(std::string token) override;
  boost::asio::awaitable<BrokerResult<LogonReply>> logon(LogonRequest request) override;

  struct Reply {
    unsigned status = 0;
    std::string body;
    std::optional<std::chrono::seconds> retry_after;
  };
  // One POST with a JSON body, within timeout. Public for tests.
  boost::asio::awaitable<BrokerResult<Reply>> post(std::string target, std::string body,
                                                   std::chrono::milliseconds timeout);

 private:
  HttpsBrokerClient(boost::asio::any_io_executor executor, BrokerConfig config, std::string secret);

  boost::asio::any_io_executor executor_;
  BrokerConfig config_;
  std::string secret_;
  boost::asio::ssl::context tls_;
};

// Turns a redeem / logon reply into the result; exposed for unit tests.
BrokerResult<Redemption> parse_redemption(const HttpsBrokerClient::Reply& reply);
BrokerResult<LogonReply> parse_logon_reply(const HttpsBrokerClient::Reply& reply);

}  // namespace appvirt::gateway
