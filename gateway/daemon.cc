#include "gateway/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <boost/asio.hpp>
#include <filesystem>
#include <iostream>

#include "common/log.h"
#include "common/tls_cert.h"
#include "gateway/gateway_server.h"
#include "gateway/https_broker_client.h"
#include "gateway/logon_front.h"

namespace appvirt::gateway {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// A routed connection holds six descriptors (two sockets, two pipes), so raise the soft limit
// to the hard one.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

Result<void> check_gateway(const GatewayConfig& config) {
  asio::io_context io;
  auto broker = HttpsBrokerClient::create(io.get_executor(), config.broker);
  if (!broker) return tl::unexpected(broker.error());
  const LogonConfig& l = config.logon;
  if (!l.enabled) return {};
  bool have_cert = fs::exists(l.cert_file), have_key = fs::exists(l.key_file);
  if (have_cert != have_key) {
    return fail("logon.cert_file / logon.key_file: only one of the two exists");
  }
  if (!have_cert) return {};  // generated at the first start
  auto cert = read_small_file(l.cert_file);
  if (!cert) return tl::unexpected(cert.error());
  auto key = read_small_file(l.key_file);
  if (!key) return tl::unexpected(key.error());
  return check_cert_key_pair(*cert, *key, true);
}

int run_gateway(const GatewayConfig& config) {
  ::signal(SIGPIPE, SIG_IGN);  // splice and FreeRDP write to sockets without MSG_NOSIGNAL
  raise_fd_limit();
  asio::io_context io(1);
  auto broker = HttpsBrokerClient::create(io.get_executor(), config.broker);
  if (!broker) {
    spdlog::error("gateway-start-failed error={}", log_quote(broker.error().str()));
    return 1;
  }
  std::unique_ptr<LogonFront> logon;
  if (config.logon.enabled) {
    auto made = LogonFront::create(io.get_executor(), **broker, config.logon,
                                   config.broker.logon_timeout);
    if (!made) {
      spdlog::error("gateway-start-failed error={}", log_quote(made.error().str()));
      return 1;
    }
    logon = std::move(*made);
  }
  GatewayServer server(io, config, **broker, logon.get());
  auto port = server.listen();
  if (!port) {
    spdlog::error("gateway-start-failed error={}", log_quote(port.error().str()));
    return 1;
  }
  server.start();
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("gateway-stopping signal={} connections={}", signo, server.active_connections());
    server.stop();
    if (logon) logon->stop();
  });
  spdlog::info("gateway-listening address={} port={} logon_front={}", config.listen.address, *port,
               logon ? "on" : "off");
  std::cout << "{\"listening\":true,\"port\":" << *port << "}" << std::endl;
  io.run();
  if (logon) logon->join_all();
  spdlog::info("gateway-stopped");
  return 0;
}

}  // namespace appvirt::gateway
