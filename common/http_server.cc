#include "common/http_server.h"

#include <exception>

namespace appvirt::http {

namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Matches literal segments exactly and binds "{name}" segments; false on any mismatch.
bool match_segments(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                    PathParams* params) {
  if (pattern.size() != path.size()) return false;
  PathParams bound;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (is_param(pattern[i])) {
      bound[pattern[i].substr(1, pattern[i].size() - 2)] = path[i];
    } else if (pattern[i] != path[i]) {
      return false;
    }
  }
  *params = std::move(bound);
  return true;
}

}  // namespace

void Router::add(bhttp::verb method, std::string_view pattern, Handler handler) {
  routes_.push_back(Route{method, split_path(pattern), std::move(handler)});
}

Router::Match Router::match(bhttp::verb method, std::string_view target) const {
  std::string_view path = target.substr(0, target.find('?'));
  std::vector<std::string> segments = split_path(path);
  Match m;
  for (const Route& r : routes_) {
    PathParams params;
    if (!match_segments(r.segments, segments, &params)) continue;
    if (r.method == method) {
      m.handler = &r.handler;
      m.params = std::move(params);
      return m;
    }
    m.status = bhttp::status::method_not_allowed;
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += std::string(bhttp::to_string(r.method));
  }
  return m;
}

namespace detail {

asio::awaitable<Response> dispatch(const Router& router, const Request& req) {
  Router::Match m =
      router.match(req.method(), std::string_view(req.target().data(), req.target().size()));
  if (!m.handler) {
    if (m.status == bhttp::status::method_not_allowed) {
      Response res = error_response(m.status, "method not allowed");
      res.set(bhttp::field::allow, m.allow);
      co_return res;
    }
    co_return error_response(bhttp::status::not_found, "no such resource");
  }
  // Handlers are written not to throw; this is the last guard so that a bug in one request
  // (a json type_error, bad_alloc) answers 500 instead of tearing down the daemon.
  try {
    co_return co_await (*m.handler)(req, m.params);
  } catch (const std::exception& e) {
    spdlog::error("http handler_failed target={} error={}", std::string(req.target()), e.what());
  }
  co_return error_response(bhttp::status::internal_server_error, "internal error");
}

unsigned status_for_read_error(const boost::system::error_code& ec, bool timed_out,
                               bool got_bytes) {
  if (timed_out) return got_bytes ? 408 : 0;  // an idle keep-alive connection just closes
  if (ec == bhttp::error::body_limit) return 413;
  if (ec == bhttp::error::header_limit) return 431;
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
    return 0;
  }
  if (ec == bhttp::error::partial_message) return 0;
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) return 400;
  return 0;
}

}  // namespace detail

}  // namespace appvirt::http
