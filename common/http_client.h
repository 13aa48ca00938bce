#pragma once
// HTTP/1.1 client helpers over Boost.Beast: an async request on any connected stream (daemons,
// e.g. the broker calling hostd over TLS later) and a blocking request over a Unix socket with a
// total deadline (CLIs and tests). Errors come back as Result, never as exceptions.
#include "common/beast.h"
#include <chrono>
#include <string>
#include <string_view>

#include "common/json_body.h"
#include "common/result.h"

namespace appvirt::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

struct ClientResponse {
  unsigned status = 0;
  std::string body;
};

// Builds a request; a non-empty body is sent as application/json.
Request make_request(bhttp::verb method, std::string_view target, std::string body = {});

// Writes req and reads one response on an already connected stream. max_body bounds the reply.
template <class Stream>
asio::awaitable<Result<ClientResponse>> async_request(Stream& stream, Request req,
                                                      std::size_t max_body = 16 * 1024 * 1024) {
  boost::system::error_code ec;
  req.prepare_payload();
  co_await bhttp::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  // A server may answer before reading the whole body (413) and close: the write then fails
  // but the answer is already waiting to be read, so read it before reporting the write error.
  boost::system::error_code write_ec = ec;
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(max_body);
  co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec && write_ec) co_return fail("http write: " + write_ec.message());
  if (ec) co_return fail("http read: " + ec.message());
  Response res = parser.release();
  co_return ClientResponse{res.result_int(), std::move(res.body())};
}

// Connects to the Unix socket at socket_path, sends one request and reads the response, all
// within timeout.
Result<ClientResponse> unix_request(const std::string& socket_path, bhttp::verb method,
                                    std::string_view target, std::string body,
                                    std::chrono::milliseconds timeout);

}  // namespace appvirt::http
