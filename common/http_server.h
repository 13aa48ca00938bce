#pragma once
// A small HTTP/1.1 server on Boost.Beast coroutines, generic over the stream: the hostd control
// API serves it on a Unix socket, the broker will serve it on TLS streams. It bounds what a
// client can make it hold: header size (431), body size (413, checked against Content-Length
// before the body is read), the time to send a header and a body (408), and the number of open
// connections (503). Handlers are coroutines so a slow request (a session launch) does not block
// the others. Asio errors never escape as exceptions: every operation uses redirect_error.
// An optional decorator sees every response before it is written — the handlers' and the
// server's own (408, 413, 431, 400, 404/405, 500, 503) — so a server can add its headers once.
#include "common/beast.h"
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_body.h"

namespace appvirt::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

using PathParams = std::map<std::string, std::string, std::less<>>;
using Handler = std::function<asio::awaitable<Response>(const Request&, const PathParams&)>;
// Called on every response the server writes, just before it is written.
using ResponseDecorator = std::function<void(Response&)>;

// Routes by method and path. Patterns are literal segments and "{name}" parameters, matched
// segment by segment: "/v1/sessions/{id}". The query string is ignored for routing.
class Router {
 public:
  void add(bhttp::verb method, std::string_view pattern, Handler handler);

  struct Match {
    const Handler* handler = nullptr;     // null when nothing matched
    PathParams params;
    bhttp::status status = bhttp::status::not_found;  // not_found or method_not_allowed
    std::string allow;                    // methods of the matched path, for a 405
  };
  Match match(bhttp::verb method, std::string_view target) const;

 private:
  struct Route {
    bhttp::verb method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

struct ServerLimits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};  // also the keep-alive idle timeout
  std::chrono::milliseconds body_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  std::size_t max_connections = 64;
};

class HttpServer {
 public:
  struct State {
    Router router;
    ServerLimits limits;
    std::size_t active;
    ResponseDecorator decorate = {};  // may be empty
  };

  HttpServer(Router router, ServerLimits limits, ResponseDecorator decorate = {})
      : state_(std::make_shared<State>(State{std::move(router), limits, 0, std::move(decorate)})) {}

  // Accepts on the acceptor until it is closed; each connection runs as its own coroutine.
  // The acceptor must outlive the loop; connections keep the server state alive themselves.
  template <class Acceptor>
  void start(Acceptor& acceptor) {
    asio::co_spawn(acceptor.get_executor(), accept_loop(state_, acceptor), asio::detached);
  }

  // Serves one already connected stream (plain socket, or a TLS stream after its handshake)
  // until the peer closes, a limit is hit or an error occurs. Counts against max_connections.
  template <class Stream>
  static asio::awaitable<void> serve(std::shared_ptr<State> state, Stream stream);

  std::size_t active_connections() const { return state_->active; }
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  template <class Acceptor>
  static asio::awaitable<void> accept_loop(std::shared_ptr<State> state, Acceptor& acceptor);

  std::shared_ptr<State> state_;
};

namespace detail {

// Cancels the stream's pending operations when the deadline passes; expired() tells the reader
// afterwards that the failure was a timeout, not the peer. Connections run on one thread (or a
// strand): the timer handler and the coroutine never run at the same time.
template <class Stream>
class Deadline {
 public:
  Deadline(Stream& stream, std::chrono::milliseconds after)
      : timer_(stream.get_executor()), state_(std::make_shared<State>()) {
    timer_.expires_after(after);
    auto* lowest = &beast::get_lowest_layer(stream);
    timer_.async_wait([lowest, st = state_](const boost::system::error_code& ec) {
      // Disarmed: the operation finished and the stream may already be gone.
      if (ec || !st->armed) return;
      st->expired = true;
      boost::system::error_code ignored;
      lowest->cancel(ignored);
    });
  }
  ~Deadline() {
    state_->armed = false;
    timer_.cancel();
  }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    bool armed = true;
    bool expired = false;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

// Routes one parsed request and runs its handler; a throwing handler becomes a 500.
asio::awaitable<Response> dispatch(const Router& router, const Request& req);

// Maps a read error of the parser to the status sent back, or 0 to close silently.
unsigned status_for_read_error(const boost::system::error_code& ec, bool timed_out,
                               bool got_bytes);

template <class Stream>
asio::awaitable<bool> write_response(Stream& stream, Response res, bool keep_alive,
                                     const ServerLimits& limits, const ResponseDecorator& decorate) {
  if (decorate) decorate(res);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  boost::system::error_code ec;
  Deadline<Stream> deadline(stream, limits.write_timeout);
  co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec && !deadline.expired();
}

template <class Stream>
void close_stream(Stream& stream) {
  boost::system::error_code ec;
  auto& lowest = beast::get_lowest_layer(stream);
  lowest.shutdown(asio::socket_base::shutdown_both, ec);
  lowest.close(ec);
}

}  // namespace detail

template <class Stream>
asio::awaitable<void> HttpServer::serve(std::shared_ptr<State> state, Stream stream) {
  const ServerLimits& limits = state->limits;
  ++state->active;
  struct Release {
    State* s;
    ~Release() { --s->active; }
  } release{state.get()};
  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
    boost::system::error_code ec;
    bool timed_out = false;
    {
      detail::Deadline<Stream> deadline(stream, limits.header_timeout);
      co_await bhttp::async_read_header(stream, buffer, parser,
                                        asio::redirect_error(asio::use_awaitable, ec));
      timed_out = deadline.expired();
    }
    if (!ec && !timed_out) {
      auto length = parser.content_length();
      if (length && *length > limits.max_body_bytes) {
        // Named, not a temporary: g++ 12 destroys temporaries in a co_await full-expression twice.
        Response too_large = error_response(bhttp::status::payload_too_large, "request body too large");
        co_await detail::write_response(stream, std::move(too_large), false, limits,
                                        state->decorate);
        break;
      }
      detail::Deadline<Stream> deadline(stream, limits.body_timeout);
      co_await bhttp::async_read(stream, buffer, parser,
                                 asio::redirect_error(asio::use_awaitable, ec));
      timed_out = deadline.expired();
    }
    if (ec || timed_out) {
      unsigned code = detail::status_for_read_error(ec, timed_out, parser.got_some());
      if (code != 0) {
        Response err = error_response(static_cast<bhttp::status>(code),
                                      timed_out ? "timeout" : ec.message());
        co_await detail::write_response(stream, std::move(err), false, limits, state->decorate);
      }
      break;
    }
    Request req = parser.release();
    bool keep_alive = req.keep_alive();
    Response res = co_await detail::dispatch(state->router, req);
    if (!co_await detail::write_response(stream, std::move(res), keep_alive, limits,
                                         state->decorate)) {
      break;
    }
    if (!keep_alive) break;
  }
  detail::close_stream(stream);
}

template <class Acceptor>
asio::awaitable<void> HttpServer::accept_loop(std::shared_ptr<State> state, Acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE and friends: back off briefly instead of spinning on the error.
      spdlog::warn("http accept_failed error={}", ec.message());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (state->active >= state->limits.max_connections) {
      auto refuse = [](auto s, std::shared_ptr<State> st) -> asio::awaitable<void> {
        Response busy = error_response(bhttp::status::service_unavailable, "too many connections");
        co_await detail::write_response(s, std::move(busy), false, st->limits, st->decorate);
        detail::close_stream(s);
      };
      asio::co_spawn(acceptor.get_executor(), refuse(std::move(socket), state), asio::detached);
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), serve(state, std::move(socket)), asio::detached);
  }
}

}  // namespace appvirt::http
