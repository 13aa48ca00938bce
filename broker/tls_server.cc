#include "broker/tls_server.h"

#include <openssl/ssl.h>

#include "common/log.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

Result<void> configure_server_tls(ssl::context& ctx, const std::filesystem::path& cert,
                                  const std::filesystem::path& key) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use | ssl::context::no_compression);
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return fail("SSL_CTX_set_min_proto_version(TLS1_2)");
  }
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!RC4") != 1) {
    return fail("SSL_CTX_set_cipher_list");
  }
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(cert.string(), ec);
  if (ec) return fail("TLS certificate " + cert.string() + ": " + ec.message());
  ctx.use_private_key_file(key.string(), ssl::context::pem, ec);
  if (ec) return fail("TLS key " + key.string() + ": " + ec.message());
  if (SSL_CTX_check_private_key(native) != 1) {
    return fail("TLS key " + key.string() + " does not belong to " + cert.string());
  }
  return {};
}

TlsServer::TlsServer(asio::io_context& io, ssl::context& tls, RouterFactory routers,
                     http::ServerLimits limits, std::chrono::milliseconds handshake_timeout,
                     http::ResponseDecorator decorate)
    : io_(io),
      acceptor_(io),
      shared_(std::make_shared<Shared>(
          Shared{tls, std::move(routers), limits, handshake_timeout, std::move(decorate)})) {}

Result<uint16_t> TlsServer::listen(const std::string& address, uint16_t port) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) return fail("listen address " + address + ": " + ec.message());
  tcp::endpoint ep(ip, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen " + address + ":" + std::to_string(port) + ": " + ec.message());
  return acceptor_.local_endpoint().port();
}

void TlsServer::start() { asio::co_spawn(io_, accept_loop(shared_, acceptor_), asio::detached); }

void TlsServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> TlsServer::accept_loop(std::shared_ptr<Shared> shared, tcp::acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE and the like: pause instead of spinning on the error.
      spdlog::warn("broker accept_failed error={}", ec.message());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (shared->active >= shared->limits.max_connections) {
      // Before the handshake there is no HTTP to answer with: close at once.
      socket.close(ec);
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), connection(shared, std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> TlsServer::connection(std::shared_ptr<Shared> shared, tcp::socket socket) {
  ++shared->active;
  struct Release {
    Shared* s;
    ~Release() { --s->active; }
  } release{shared.get()};
  boost::system::error_code ec;
  tcp::endpoint remote = socket.remote_endpoint(ec);
  std::string peer = ec ? std::string("unknown") : remote.address().to_string();
  ssl::stream<tcp::socket> stream(std::move(socket), shared->tls);
  // The flag outlives this frame's use of the stream: a deadline handler already queued when the
  // handshake finishes must not touch the stream afterwards.
  auto phase = std::make_shared<int>(0);  // 0 handshaking, 1 done, 2 timed out
  {
    asio::steady_timer deadline(stream.get_executor());
    deadline.expires_after(shared->handshake_timeout);
    deadline.async_wait([&stream, phase](const boost::system::error_code& e) {
      if (e || *phase != 0) return;
      *phase = 2;
      boost::system::error_code ignored;
      stream.lowest_layer().close(ignored);
    });
    co_await stream.async_handshake(ssl::stream_base::server,
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (*phase == 0) *phase = 1;
    deadline.cancel();
  }
  bool expired = *phase == 2;
  if (ec || expired) {
    spdlog::debug("broker handshake_failed peer={} error={}", peer,
                  expired ? std::string("timeout") : ec.message());
    co_return;
  }
  // The HttpServer's own connection count stays at one per state: the cap is enforced above.
  auto state = std::make_shared<http::HttpServer::State>(
      http::HttpServer::State{shared->routers(peer), shared->limits, 0, shared->decorate});
  co_await http::HttpServer::serve(state, std::move(stream));
}

}  // namespace appvirt::broker
