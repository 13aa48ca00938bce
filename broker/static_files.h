#pragma once
// The web portal's static files (web-portal/: HTML, CSS, JavaScript modules, SVG icons) served by
// the broker at "/", next to the API. Files are opened with openat2(RESOLVE_BENEATH) under a
// directory fd taken at start, so no request path (.., %2e%2e, absolute, a symlink pointing out)
// reaches a file outside the root. Every response carries the portal's security headers; files
// carry an ETag and "Cache-Control: no-cache" (revalidate: the files have no hashed names).
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_server.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::broker {

// The Content-Security-Policy of the portal pages: no inline script or style, nothing from
// another origin, no framing.
inline constexpr const char* kPortalCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

// CSP, X-Frame-Options, nosniff, Referrer-Policy and HSTS; `csp` replaces the portal's policy.
void add_security_headers(http::Response& res, std::string_view csp = kPortalCsp);

// Content-Type for a file name by its extension ("application/octet-stream" when unknown).
std::string_view content_type_for(std::string_view file_name);

// The request target's path as a path relative to the root: percent-decoded, the query dropped,
// "" for "/". Refuses (nullopt) "." and ".." segments, dot files, empty segments, NUL, backslash,
// bad percent escapes and an encoded "/" — whatever could mean something else once decoded.
std::optional<std::string> relative_path_of(std::string_view target);

class StaticFiles {
 public:
  // A root that cannot be opened is logged; every file request then answers 404.
  explicit StaticFiles(const std::filesystem::path& root);

  bool available() const { return root_.valid(); }
  const std::filesystem::path& root() const { return root_path_; }

  // GET of one file: 200, 304 (If-None-Match), 404 (missing, refused path, outside the root).
  http::Response serve(const http::Request& req) const;

  static constexpr std::size_t kMaxFileBytes = 8 << 20;

 private:
  Result<UniqueFd> open_beneath(const std::string& relative) const;

  std::filesystem::path root_path_;
  UniqueFd root_;
};

// Adds catch-all routes after the API's: GET on any path of up to kStaticMaxDepth segments
// serves a file. Paths under /api/ and /internal/, and other methods, keep the answers the API
// router alone would give (404, or 405 with Allow), so the API's behaviour does not change. Call
// it last: the router's first match wins, and the API routes must come first.
inline constexpr int kStaticMaxDepth = 8;
void add_static_routes(http::Router& router, std::shared_ptr<const StaticFiles> files);

}  // namespace appvirt::broker
