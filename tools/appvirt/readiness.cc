#include "tools/appvirt/readiness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>

#include "common/unique_fd.h"

namespace appvirt::up {

namespace {

void set_timeouts(int fd, milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // also bounds connect()
}

std::string get_request(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
}

Result<void> expect_ok(const std::string& what, const std::string& response) {
  unsigned status = http_status(response);
  if (status != 200) return fail(what + ": HTTP status " + std::to_string(status));
  if (response.find("\"ok\":true") == std::string::npos) return fail(what + ": not ok");
  return {};
}

}  // namespace

unsigned http_status(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  unsigned code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (response[i] < '0' || response[i] > '9') return 0;
    code = code * 10 + static_cast<unsigned>(response[i] - '0');
  }
  return code;
}

Result<void> check_hostd(const std::string& socket_path, milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) return fail("socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket(AF_UNIX)");
  set_timeouts(fd.get(), timeout);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail_errno("connect(" + socket_path + ")");
  }
  std::string req = get_request("/v1/health");
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return fail_errno("send(" + socket_path + ")");
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while (response.size() < 65536 && (n = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0) {
    response.append(buf, static_cast<size_t>(n));
  }
  return expect_ok("hostd health", response);
}

namespace {

using SslCtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;

std::string ssl_error() {
  char buf[256] = {};
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return buf;
}

Result<SslCtxPtr> pinned_context(const std::string& pinned_cert) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free);
  if (!ctx) return fail("SSL_CTX_new: " + ssl_error());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (SSL_CTX_load_verify_locations(ctx.get(), pinned_cert.c_str(), nullptr) != 1) {
    return fail("load " + pinned_cert + ": " + ssl_error());
  }
  // A self-signed leaf is its own trust anchor; no host name check (it is pinned).
  X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx.get()), X509_V_FLAG_PARTIAL_CHAIN);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

Result<UniqueFd> connect_tcp(const std::string& address, uint16_t port, milliseconds timeout) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return fail("not a numeric address: " + address);
  }
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  set_timeouts(fd.get(), timeout);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return fail_errno("connect(" + address + ":" + std::to_string(port) + ")");
  }
  return fd;
}

}  // namespace

Result<void> check_broker(const std::string& address, uint16_t port, const std::string& pinned_cert,
                          milliseconds timeout) {
  if (::access(pinned_cert.c_str(), R_OK) != 0) return fail_errno("access(" + pinned_cert + ")");
  auto ctx = pinned_context(pinned_cert);
  if (!ctx) return tl::unexpected(ctx.error());
  auto fd = connect_tcp(address, port, timeout);
  if (!fd) return tl::unexpected(fd.error());
  SslPtr ssl(SSL_new(ctx->get()), &SSL_free);
  if (!ssl || SSL_set_fd(ssl.get(), fd->get()) != 1) return fail("SSL_new: " + ssl_error());
  if (SSL_connect(ssl.get()) != 1) return fail("TLS handshake with the broker: " + ssl_error());
  std::string req = get_request("/healthz");
  if (SSL_write(ssl.get(), req.data(), static_cast<int>(req.size())) <= 0) {
    return fail("TLS write: " + ssl_error());
  }
  std::string response;
  char buf[4096];
  int n;
  while (response.size() < 65536 && (n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0) {
    response.append(buf, static_cast<size_t>(n));
  }
  ERR_clear_error();
  return expect_ok("broker /healthz", response);
}

Result<void> check_gateway(const std::string& log_file, uint16_t port) {
  std::ifstream in(log_file);
  if (!in) return fail("open(" + log_file + ")", errno);
  std::string want = "{\"listening\":true,\"port\":" + std::to_string(port) + "}";
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(want) != std::string::npos) return {};
  }
  return fail("gateway has not reported listening on port " + std::to_string(port));
}

}  // namespace appvirt::up
