#include "session-host/hostd/pipe_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>

namespace appvirt::hostd {

namespace asio = boost::asio;

asio::awaitable<Result<std::string>> async_read_pipe(UniqueFd fd,
                                                     std::chrono::milliseconds timeout,
                                                     bool stop_at_newline, std::size_t max_bytes) {
  auto executor = co_await asio::this_coro::executor;
  // Shared with the timer handler, which may run after this coroutine has returned.
  struct State {
    asio::posix::stream_descriptor pipe;
    bool timed_out = false;
  };
  auto st = std::make_shared<State>(State{asio::posix::stream_descriptor(executor, fd.release())});
  asio::steady_timer deadline(executor, timeout);
  deadline.async_wait([weak = std::weak_ptr<State>(st)](const boost::system::error_code& ec) {
    auto s = weak.lock();
    if (ec || !s) return;
    s->timed_out = true;
    boost::system::error_code ignored;
    s->pipe.cancel(ignored);
  });
  std::string out;
  char buf[4096];
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = co_await st->pipe.async_read_some(
        asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    out.append(buf, n);
    if (st->timed_out) {
      co_return fail("read from child: timed out after " + std::to_string(timeout.count()) + " ms");
    }
    if (ec == asio::error::eof) break;
    if (ec) co_return fail("read from child: " + ec.message());
    if (stop_at_newline && out.find('\n') != std::string::npos) break;
    if (out.size() > max_bytes) {
      co_return fail("read from child: more than " + std::to_string(max_bytes) + " bytes");
    }
  }
  co_return out;
}

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return fail_errno("pipe2");
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

}  // namespace appvirt::hostd
