#pragma once
// The endpoint's listening sockets, created as root before the privilege drop.
#include <sys/types.h>

#include <filesystem>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::rdp {

struct UnixListener {
  UniqueFd fd;
  // The socket's directory (O_PATH) and name, so the unprivileged process can unlink it at exit
  // even though its own /tmp is a private tmpfs that may hide the path.
  UniqueFd dir_fd;
  std::string name;

  // Removes the socket file; logs and ignores failure (hostd removes the directory anyway).
  void unlink_socket();
};

// Binds a Unix stream socket at path (replacing a stale socket file, never another kind of
// file), mode 0660, owner root:group, non-blocking, listening.
Result<UnixListener> listen_unix(const std::filesystem::path& path, gid_t group);

struct TcpListener {
  UniqueFd fd;
  uint16_t port = 0;  // the bound port (useful with port 0)
};

// Binds "host:port" / "[v6]:port" (numeric addresses only), non-blocking, listening.
Result<TcpListener> listen_tcp(const std::string& host_port);

}  // namespace appvirt::rdp
