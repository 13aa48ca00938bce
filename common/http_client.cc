#include "common/http_client.h"

#include <optional>

namespace appvirt::http {

Request make_request(bhttp::verb method, std::string_view target, std::string body) {
  Request req{method, std::string(target), 11};
  req.set(bhttp::field::host, "localhost");
  req.set(bhttp::field::user_agent, "appvirt");
  if (!body.empty()) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.keep_alive(false);
  return req;
}

Result<ClientResponse> unix_request(const std::string& socket_path, bhttp::verb method,
                                    std::string_view target, std::string body,
                                    std::chrono::milliseconds timeout) {
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  std::optional<Result<ClientResponse>> result;
  auto run = [&]() -> asio::awaitable<void> {
    boost::system::error_code ec;
    asio::local::stream_protocol::endpoint endpoint(socket_path);
    co_await socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      result = fail("connect(" + socket_path + "): " + ec.message());
      co_return;
    }
    Request req = make_request(method, target, std::move(body));
    result = co_await async_request(socket, std::move(req));
  };
  asio::co_spawn(io, run(), asio::detached);
  // run_for returns when the coroutine finished or the deadline passed, whichever is first.
  io.run_for(timeout);
  if (!result) return fail(std::string(bhttp::to_string(method)) + " " + std::string(target) +
                           " via " + socket_path + ": timed out");
  return std::move(*result);
}

}  // namespace appvirt::http
