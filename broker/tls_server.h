#pragma once
// The broker's HTTPS listener: TLS 1.2+ handshakes with a deadline, a cap on open connections
// (handshakes included), then common/http_server.h's HttpServer on the TLS stream with a router
// built for the connection's peer address and a decorator applied to every response it writes.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/result.h"

namespace appvirt::broker {

// A server context: TLS 1.2 minimum, forward-secret AEAD ciphers for 1.2, no compression or
// renegotiation, the certificate chain and key from PEM files.
Result<void> configure_server_tls(boost::asio::ssl::context& ctx,
                                  const std::filesystem::path& cert,
                                  const std::filesystem::path& key);

class TlsServer {
 public:
  using RouterFactory = std::function<http::Router(std::string peer)>;

  TlsServer(boost::asio::io_context& io, boost::asio::ssl::context& tls, RouterFactory routers,
            http::ServerLimits limits, std::chrono::milliseconds handshake_timeout,
            http::ResponseDecorator decorate);

  // Binds and listens; returns the bound port (useful with port 0).
  Result<uint16_t> listen(const std::string& address, uint16_t port);
  void start();
  // Stops accepting; open connections end on their own timeouts or when the loop stops.
  void stop();
  std::size_t active_connections() const { return shared_->active; }

 private:
  struct Shared {
    boost::asio::ssl::context& tls;
    RouterFactory routers;
    http::ServerLimits limits;
    std::chrono::milliseconds handshake_timeout;
    http::ResponseDecorator decorate;
    std::size_t active = 0;
  };
  static boost::asio::awaitable<void> accept_loop(std::shared_ptr<Shared> shared,
                                                  boost::asio::ip::tcp::acceptor& acceptor);
  static boost::asio::awaitable<void> connection(std::shared_ptr<Shared> shared,
                                                 boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace appvirt::broker
