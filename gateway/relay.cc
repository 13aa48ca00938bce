#include "gateway/relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <cstring>
#include <vector>

namespace appvirt::gateway {

namespace asio = boost::asio;
using stream_descriptor = asio::posix::stream_descriptor;

namespace {

// One pipe's default capacity: a splice moves at most this much per call.
constexpr size_t kChunk = 64 * 1024;
constexpr const char* kEof = "eof";
constexpr const char* kAborted = "aborted";

std::string side_error(const char* side, int err) {
  return std::string(side) + "-error: " + std::strerror(err);
}

}  // namespace

std::shared_ptr<Relay> Relay::create(asio::any_io_executor executor, UniqueFd client,
                                     UniqueFd endpoint, RelayMode mode) {
  return std::shared_ptr<Relay>(
      new Relay(std::move(executor), std::move(client), std::move(endpoint), mode));
}

Relay::Relay(asio::any_io_executor executor, UniqueFd client, UniqueFd endpoint, RelayMode mode)
    : client_(executor, client.release()),
      endpoint_(executor, endpoint.release()),
      done_(executor),
      mode_(mode) {
  boost::system::error_code ec;
  client_.non_blocking(true, ec);
  endpoint_.non_blocking(true, ec);
}

asio::awaitable<RelayStats> Relay::run() {
  auto executor = co_await asio::this_coro::executor;
  running_ = 2;
  asio::co_spawn(executor, pump(shared_from_this(), 0), asio::detached);
  asio::co_spawn(executor, pump(shared_from_this(), 1), asio::detached);
  boost::system::error_code ec;
  while (running_ > 0) {
    done_.expires_at(asio::steady_timer::time_point::max());
    co_await done_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  stats_.spliced = mode_ == RelayMode::kSplice && !copied_;
  client_.close(ec);
  endpoint_.close(ec);
  co_return stats_;
}

void Relay::close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  if (stats_.reason.empty()) stats_.reason = reason;
  boost::system::error_code ec;
  client_.close(ec);
  endpoint_.close(ec);
}

asio::awaitable<void> Relay::pump(std::shared_ptr<Relay> self, int direction) {
  std::string outcome;
  bool unsupported = self->mode_ == RelayMode::kCopy;
  if (!unsupported) outcome = co_await self->pump_splice(direction, unsupported);
  if (unsupported) {
    self->copied_ = true;
    outcome = co_await self->pump_copy(direction);
  }
  self->finish(direction, outcome);
}

asio::awaitable<std::string> Relay::pump_splice(int direction, bool& unsupported) {
  stream_descriptor& src = direction == 0 ? client_ : endpoint_;
  stream_descriptor& dst = direction == 0 ? endpoint_ : client_;
  const char* src_name = direction == 0 ? "client" : "endpoint";
  const char* dst_name = direction == 0 ? "endpoint" : "client";
  uint64_t& bytes = direction == 0 ? stats_.from_client : stats_.to_client;
  int p[2];
  if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
    unsupported = true;  // out of fds for pipes: copying still works
    co_return std::string();
  }
  UniqueFd pipe_read(p[0]), pipe_write(p[1]);
  boost::system::error_code ec;
  for (;;) {
    if (closed_) co_return kAborted;
    ssize_t n = ::splice(src.native_handle(), nullptr, pipe_write.get(), nullptr, kChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) co_return kEof;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        co_await src.async_wait(stream_descriptor::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
        if (ec || closed_) co_return kAborted;
        continue;
      }
      if (errno == EINVAL && bytes == 0) {
        unsupported = true;
        co_return std::string();
      }
      co_return side_error(src_name, errno);
    }
    size_t in_pipe = static_cast<size_t>(n);
    while (in_pipe > 0) {
      ssize_t m = ::splice(pipe_read.get(), nullptr, dst.native_handle(), nullptr, in_pipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        in_pipe -= static_cast<size_t>(m);
        bytes += static_cast<uint64_t>(m);
      } else if (m < 0 && errno == EINTR) {
        continue;
      } else if (m < 0 && errno == EAGAIN) {
        co_await dst.async_wait(stream_descriptor::wait_write,
                                asio::redirect_error(asio::use_awaitable, ec));
        if (ec || closed_) co_return kAborted;
      } else {
        co_return side_error(dst_name, m < 0 ? errno : EPIPE);
      }
    }
  }
}

asio::awaitable<std::string> Relay::pump_copy(int direction) {
  stream_descriptor& src = direction == 0 ? client_ : endpoint_;
  stream_descriptor& dst = direction == 0 ? endpoint_ : client_;
  const char* src_name = direction == 0 ? "client" : "endpoint";
  const char* dst_name = direction == 0 ? "endpoint" : "client";
  uint64_t& bytes = direction == 0 ? stats_.from_client : stats_.to_client;
  std::vector<char> buffer(kChunk);
  boost::system::error_code ec;
  for (;;) {
    if (closed_) co_return kAborted;
    ssize_t n = ::read(src.native_handle(), buffer.data(), buffer.size());
    if (n == 0) co_return kEof;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) co_return side_error(src_name, errno);
      co_await src.async_wait(stream_descriptor::wait_read,
                              asio::redirect_error(asio::use_awaitable, ec));
      if (ec || closed_) co_return kAborted;
      continue;
    }
    size_t done = 0;
    while (done < static_cast<size_t>(n)) {
      ssize_t m = ::send(dst.native_handle(), buffer.data() + done, static_cast<size_t>(n) - done,
                         MSG_NOSIGNAL);
      if (m > 0) {
        done += static_cast<size_t>(m);
        bytes += static_cast<uint64_t>(m);
      } else if (m < 0 && errno == EINTR) {
        continue;
      } else if (m < 0 && errno == EAGAIN) {
        co_await dst.async_wait(stream_descriptor::wait_write,
                                asio::redirect_error(asio::use_awaitable, ec));
        if (ec || closed_) co_return kAborted;
      } else {
        co_return side_error(dst_name, m < 0 ? errno : EPIPE);
      }
    }
  }
}

void Relay::finish(int direction, const std::string& outcome) {
  if (outcome == kEof) {
    if (stats_.reason.empty()) stats_.reason = direction == 0 ? "client-closed" : "endpoint-closed";
    // Pass the end of stream on; the other direction keeps flowing until its own end.
    stream_descriptor& dst = direction == 0 ? endpoint_ : client_;
    if (!closed_ && dst.is_open()) ::shutdown(dst.native_handle(), SHUT_WR);
  } else if (outcome != kAborted) {
    if (stats_.reason.empty()) stats_.reason = outcome;
    close(outcome);
  }
  if (--running_ == 0) done_.cancel();
}

}  // namespace appvirt::gateway
