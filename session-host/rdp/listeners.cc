#include "session-host/rdp/listeners.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "common/log.h"

namespace appvirt::rdp {
namespace {

constexpr int kBacklog = 64;

Result<void> remove_stale_socket(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail_errno("lstat(" + path.string() + ")");
  }
  if (!S_ISSOCK(st.st_mode)) return fail(path.string() + " exists and is not a socket");
  if (::unlink(path.c_str()) != 0) return fail_errno("unlink(" + path.string() + ")");
  return {};
}

// "127.0.0.1:0" -> {"127.0.0.1", "0"}; "[::1]:3389" -> {"::1", "3389"}.
Result<std::pair<std::string, std::string>> split_host_port(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size()) {
    return fail("--listen-tcp " + s + ": expected host:port");
  }
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::pair{host, s.substr(colon + 1)};
}

}  // namespace

void UnixListener::unlink_socket() {
  if (!dir_fd || name.empty()) return;
  if (::unlinkat(dir_fd.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
    spdlog::warn("rdp-socket-unlink-failed name={} error={}", log_quote(name),
                 log_quote(std::strerror(errno)));
  }
  name.clear();
}

Result<UnixListener> listen_unix(const std::filesystem::path& path, gid_t group) {
  UnixListener out;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path) return fail("--listen path too long");
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (auto ok = remove_stale_socket(path); !ok) return tl::unexpected(ok.error());
  std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  out.dir_fd.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!out.dir_fd) return fail_errno("open(" + dir.string() + ")");
  out.fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!out.fd) return fail_errno("socket(AF_UNIX)");
  // Bind with a restrictive umask so the socket is never connectable by others, even briefly.
  mode_t old_umask = ::umask(0177);
  int rc = ::bind(out.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old_umask);
  if (rc != 0) return fail_errno("bind(" + path.string() + ")");
  out.name = path.filename().string();
  if (::chown(path.c_str(), 0, group) != 0 || ::chmod(path.c_str(), 0660) != 0) {
    auto err = fail_errno("chown/chmod(" + path.string() + ")");
    out.unlink_socket();
    return err;
  }
  if (::listen(out.fd.get(), kBacklog) != 0) {
    auto err = fail_errno("listen(" + path.string() + ")");
    out.unlink_socket();
    return err;
  }
  return out;
}

Result<TcpListener> listen_tcp(const std::string& host_port) {
  auto hp = split_host_port(host_port);
  if (!hp) return tl::unexpected(hp.error());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &res); rc != 0) {
    return fail("--listen-tcp " + host_port + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  TcpListener out;
  out.fd.reset(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!out.fd) return fail_errno("socket(tcp)");
  int one = 1;
  ::setsockopt(out.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(out.fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
    return fail_errno("bind(" + host_port + ")");
  }
  if (::listen(out.fd.get(), kBacklog) != 0) return fail_errno("listen(" + host_port + ")");
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(out.fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return fail_errno("getsockname(" + host_port + ")");
  }
  out.port = ntohs(bound.ss_family == AF_INET6
                       ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return out;
}

}  // namespace appvirt::rdp
