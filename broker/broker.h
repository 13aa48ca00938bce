#pragma once
// appvirt-broker as an object: builds the store, the authenticator, the host client, the service
// and the HTTPS listener from a config, then runs the I/O loop until SIGTERM/SIGINT.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <optional>
#include <string>

#include "broker/api.h"
#include "broker/broker_config.h"
#include "broker/broker_service.h"
#include "broker/sqlite_store.h"
#include "broker/tls_server.h"
#include "broker/web_sessions.h"

namespace appvirt::broker {

class Broker {
 public:
  // port_file: when not empty, the bound port is written there (atomically) once listening.
  Broker(BrokerConfig config, std::string port_file);
  ~Broker();
  int run();

 private:
  Result<void> setup();
  Result<void> setup_tls();
  Result<ApiSecrets> load_secrets();
  void build_service(ApiSecrets secrets);
  Result<void> start_server();
  void on_stop(int sig);

  BrokerConfig config_;
  std::string port_file_;
  // Destroyed explicitly in ~Broker, after the pool and the I/O objects and before the service:
  // destroying the io_context destroys suspended coroutine frames, whose cleanup touches the
  // service's state.
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  boost::asio::ssl::context tls_;
  std::unique_ptr<boost::asio::thread_pool> auth_pool_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<PolicyStore> policy_store_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<UserDirectory> users_;
  std::unique_ptr<HostClient> host_client_;
  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<WebSessionTable> web_;
  std::unique_ptr<BrokerApi> api_;
  std::unique_ptr<TlsServer> server_;
};

}  // namespace appvirt::broker
