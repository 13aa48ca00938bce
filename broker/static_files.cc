#include "broker/static_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One decoded path segment, or nullopt for anything that could be read as a different path:
// empty, ".", "..", dot files (".git", ".htaccess"), NUL, "\" and an encoded "/".
std::optional<std::string> decode_segment(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      if (i + 2 >= raw.size()) return std::nullopt;
      int hi = hex_digit(raw[i + 1]), lo = hex_digit(raw[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
      if (c == '/') return std::nullopt;
    }
    if (c == '\0' || c == '\\') return std::nullopt;
    out.push_back(c);
  }
  if (out.empty() || out.front() == '.') return std::nullopt;
  return out;
}

std::string etag_of(const struct stat& st) {
  char buf[80];
  std::snprintf(buf, sizeof(buf), "\"%llx-%llx-%lx\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
  return buf;
}

// If-None-Match: a list of entity tags (weak ones compare equal too, RFC 9110 §13.1.2) or "*".
bool etag_matches(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    std::size_t comma = header.find(',');
    std::string_view tag = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

Result<std::string> read_file_fd(int fd, std::size_t size) {
  std::string data(size, '\0');
  std::size_t got = 0;
  while (got < size) {
    ssize_t n = ::read(fd, data.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read");
    if (n == 0) break;  // shrank meanwhile: serve what is there
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  return data;
}

http::Response static_error(bhttp::status status, std::string_view message) {
  http::Response res = http::error_response(status, message);
  add_security_headers(res);
  res.set(bhttp::field::cache_control, "no-store");
  return res;
}

bool is_api_path(std::string_view path) {
  return path.rfind("/api/", 0) == 0 || path == "/api" || path.rfind("/internal/", 0) == 0 ||
         path == "/internal";
}

// The answer for a request that no API route took: what the API router alone would say for API
// paths and other methods, else a file.
http::Response fallback(const StaticFiles& files, const http::Router& api, const http::Request& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  http::Router::Match m = api.match(req.method(), target);
  if (m.status == bhttp::status::method_not_allowed) {
    http::Response res = static_error(m.status, "method not allowed");
    res.set(bhttp::field::allow, m.allow);
    return res;
  }
  if (is_api_path(path)) return static_error(bhttp::status::not_found, "no such resource");
  if (req.method() != bhttp::verb::get) {
    http::Response res = static_error(bhttp::status::method_not_allowed, "method not allowed");
    res.set(bhttp::field::allow, "GET");
    return res;
  }
  return files.serve(req);
}

}  // namespace

void add_security_headers(http::Response& res, std::string_view csp) {
  res.set("Content-Security-Policy", boost::beast::string_view(csp.data(), csp.size()));
  res.set("X-Frame-Options", "DENY");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set(bhttp::field::strict_transport_security, "max-age=31536000");
}

std::string_view content_type_for(std::string_view file_name) {
  static const std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"},       {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},   {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},               {".svg", "image/svg+xml"},
      {".png", "image/png"},                       {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},       {".woff2", "font/woff2"},
      {".webmanifest", "application/manifest+json"},
  };
  std::size_t dot = file_name.rfind('.');
  std::size_t slash = file_name.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return "application/octet-stream";
  }
  std::string_view ext = file_name.substr(dot);
  for (const auto& [e, type] : types) {
    if (e.size() == ext.size() &&
        std::equal(e.begin(), e.end(), ext.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      return type;
    }
  }
  return "application/octet-stream";
}

std::optional<std::string> relative_path_of(std::string_view target) {
  std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path.empty() || path.front() != '/') return std::nullopt;  // absolute-form, "*"
  path.remove_prefix(1);
  if (path.empty()) return std::string();
  std::string out;
  while (true) {
    std::size_t slash = path.find('/');
    auto segment = decode_segment(path.substr(0, slash));
    if (!segment) return std::nullopt;
    if (!out.empty()) out += '/';
    out += *segment;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
    if (path.empty()) break;  // "dir/": the folder (its index.html)
  }
  return out;
}

StaticFiles::StaticFiles(const fs::path& root) : root_path_(root) {
  root_.reset(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_) {
    spdlog::warn("broker web_root_unavailable path={} error={}", log_quote(root.string()),
                 log_quote(std::strerror(errno)));
  }
}

Result<UniqueFd> StaticFiles::open_beneath(const std::string& relative) const {
  struct open_how how {};
  // O_NONBLOCK: a FIFO planted in the root must not hang the I/O thread; only regular files
  // are served anyway.
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const char* path = relative.empty() ? "." : relative.c_str();
  long fd = ::syscall(SYS_openat2, root_.get(), path, &how, sizeof(how));
  if (fd < 0) return fail_errno("openat2(" + relative + ")");
  return UniqueFd(static_cast<int>(fd));
}

http::Response StaticFiles::serve(const http::Request& req) const {
  auto relative = relative_path_of(std::string_view(req.target().data(), req.target().size()));
  if (!relative || !root_) return static_error(bhttp::status::not_found, "not found");
  std::string name = relative->empty() ? "index.html" : *relative;
  auto fd = open_beneath(name);
  struct stat st {};
  if (fd && ::fstat(fd->get(), &st) == 0 && S_ISDIR(st.st_mode)) {
    name += "/index.html";  // a folder stands for its index page
    fd = open_beneath(name);
    if (fd && ::fstat(fd->get(), &st) != 0) fd = fail_errno("fstat");
  }
  if (!fd || !S_ISREG(st.st_mode) || static_cast<std::size_t>(st.st_size) > kMaxFileBytes) {
    if (!fd && fd.error().err == EXDEV) {
      spdlog::warn("broker static_refused path={} reason=outside_root", log_quote(name));
    }
    return static_error(bhttp::status::not_found, "not found");
  }
  std::string etag = etag_of(st);
  auto inm = req[bhttp::field::if_none_match];
  http::Response res{bhttp::status::ok, req.version()};
  if (!inm.empty() && etag_matches(std::string_view(inm.data(), inm.size()), etag)) {
    res.result(bhttp::status::not_modified);
  } else {
    auto data = read_file_fd(fd->get(), static_cast<std::size_t>(st.st_size));
    if (!data) return static_error(bhttp::status::internal_server_error, "read failed");
    res.body() = std::move(*data);
    std::string_view type = content_type_for(name);
    res.set(bhttp::field::content_type, boost::beast::string_view(type.data(), type.size()));
  }
  res.set(bhttp::field::etag, etag);
  res.set(bhttp::field::cache_control, "no-cache");
  add_security_headers(res);
  return res;
}

void add_static_routes(http::Router& router, std::shared_ptr<const StaticFiles> files) {
  // A copy holding only the routes added so far: the API's own 404/405 answers.
  auto api = std::make_shared<const http::Router>(router);
  http::Handler handler = [files = std::move(files), api](
                              const http::Request& req,
                              const http::PathParams&) -> asio::awaitable<http::Response> {
    co_return fallback(*files, *api, req);
  };
  static constexpr bhttp::verb kVerbs[] = {bhttp::verb::get,    bhttp::verb::head,
                                           bhttp::verb::post,   bhttp::verb::put,
                                           bhttp::verb::delete_, bhttp::verb::patch,
                                           bhttp::verb::options};
  std::string pattern = "/";
  for (int depth = 0; depth <= kStaticMaxDepth; ++depth) {
    if (depth > 0) pattern += (depth > 1 ? "/{p" : "{p") + std::to_string(depth) + "}";
    for (bhttp::verb v : kVerbs) router.add(v, pattern, handler);
  }
}

}  // namespace appvirt::broker
