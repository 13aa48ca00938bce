#pragma once
// Reading a child's pipe from the io_context with a deadline: the sandbox helper's reply (until
// EOF) and appvirt-rdp's ready line (until newline).
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <chrono>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::hostd {

// Reads fd until EOF (stop_at_newline: until the first '\n') or max_bytes, failing after
// timeout. Takes ownership of fd.
boost::asio::awaitable<Result<std::string>> async_read_pipe(UniqueFd fd,
                                                            std::chrono::milliseconds timeout,
                                                            bool stop_at_newline,
                                                            std::size_t max_bytes = 65536);

// Creates a pipe; [0] read end, [1] write end, both O_CLOEXEC.
Result<std::pair<UniqueFd, UniqueFd>> make_pipe();

}  // namespace appvirt::hostd
