// The broker's static file handler (web portal): path decoding and traversal refusals, symlinks
// out of the root, Content-Types, ETag/304, security headers, and the catch-all routes keeping
// the API's own 404/405 answers.
#include "broker/static_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/tools/test_support.h"

namespace appvirt::broker {
namespace {

namespace fs = std::filesystem;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;

const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

http::Request get(const std::string& target) {
  http::Request req{bhttp::verb::get, target, 11};
  return req;
}

void expect_security_headers(const http::Response& res) {
  EXPECT_EQ(res["Content-Security-Policy"], kCsp);
  EXPECT_EQ(res["X-Frame-Options"], "DENY");
  EXPECT_EQ(res["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(res["Referrer-Policy"], "no-referrer");
}

TEST(StaticPath, DecodesPlainPaths) {
  EXPECT_EQ(relative_path_of("/"), "");
  EXPECT_EQ(relative_path_of("/index.html"), "index.html");
  EXPECT_EQ(relative_path_of("/js/app.js?v=1"), "js/app.js");
  EXPECT_EQ(relative_path_of("/icons/x%20y.svg"), "icons/x y.svg");
  EXPECT_EQ(relative_path_of("/a?../../etc/passwd"), "a");
  EXPECT_EQ(relative_path_of("/admin/"), "admin") << "a trailing slash names the folder";
}

TEST(StaticPath, RefusesTraversalAndAmbiguousForms) {
  for (const char* bad :
       {"/..", "/../etc/passwd", "/js/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E/x",
        "/js/%2e%2e/%2e%2e/etc/passwd", "/.%2e/x", "/%2e/x", "/./index.html", "/a%2f..%2f..%2fetc",
        "/a%5c..%5cetc", "/a\\..\\etc", "/.git/config", "/js/.hidden", "//etc/passwd",
        "/a//b", "/a%00.html", "/a%zz", "/a%2", "/a%", "http://example.com/index.html", "*",
        "", "etc/passwd"}) {
    EXPECT_FALSE(relative_path_of(bad).has_value()) << bad;
  }
}

TEST(StaticPath, ContentTypes) {
  EXPECT_EQ(content_type_for("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type_for("css/portal.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type_for("js/app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type_for("icons/xterm.svg"), "image/svg+xml");
  EXPECT_EQ(content_type_for("ICON.PNG"), "image/png");
  EXPECT_EQ(content_type_for("data.json"), "application/json");
  EXPECT_EQ(content_type_for("README"), "application/octet-stream");
  EXPECT_EQ(content_type_for("dir.d/README"), "application/octet-stream");
  EXPECT_EQ(content_type_for("x.exe"), "application/octet-stream");
}

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/root";
    outside_ = dir_.path() + "/outside";
    write(root_ / "index.html", "<!doctype html><title>portal</title>");
    write(root_ / "js/app.js", "export const x = 1;\n");
    write(root_ / "css/portal.css", "body{}\n");
    write(root_ / "icons/xterm.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    write(root_ / "admin/index.html", "admin");
    write(outside_ / "secret.txt", "SECRET");
    fs::create_symlink(outside_ / "secret.txt", root_ / "abs-link.txt");
    fs::create_symlink("../outside/secret.txt", root_ / "rel-link.txt");
    fs::create_symlink(outside_, root_ / "outdir");
    fs::create_symlink("js/app.js", root_ / "inside-link.js");
    ASSERT_EQ(::mkfifo((root_ / "fifo.html").c_str(), 0600), 0);
    files_ = std::make_shared<StaticFiles>(root_);
    ASSERT_TRUE(files_->available());
  }

  appvirt::testing::TempDir dir_;
  fs::path root_, outside_;
  std::shared_ptr<StaticFiles> files_;
};

TEST_F(StaticFilesTest, ServesFilesWithTypesCachingAndHeaders) {
  http::Response index = files_->serve(get("/"));
  EXPECT_EQ(index.result_int(), 200u);
  EXPECT_EQ(index.body(), "<!doctype html><title>portal</title>");
  EXPECT_EQ(index[bhttp::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(index[bhttp::field::cache_control], "no-cache");
  EXPECT_FALSE(index[bhttp::field::etag].empty());
  expect_security_headers(index);

  http::Response js = files_->serve(get("/js/app.js"));
  EXPECT_EQ(js.result_int(), 200u);
  EXPECT_EQ(js[bhttp::field::content_type], "text/javascript; charset=utf-8");
  EXPECT_EQ(files_->serve(get("/css/portal.css"))[bhttp::field::content_type],
            "text/css; charset=utf-8");
  EXPECT_EQ(files_->serve(get("/icons/xterm.svg"))[bhttp::field::content_type], "image/svg+xml");
  EXPECT_EQ(files_->serve(get("/admin/")).body(), "admin") << "a folder serves its index.html";
  EXPECT_EQ(files_->serve(get("/inside-link.js")).body(), "export const x = 1;\n")
      << "symlinks that stay inside the root are fine";
}

TEST_F(StaticFilesTest, EtagRevalidation) {
  http::Response first = files_->serve(get("/js/app.js"));
  std::string etag(first[bhttp::field::etag]);
  http::Request again = get("/js/app.js");
  again.set(bhttp::field::if_none_match, etag);
  http::Response cached = files_->serve(again);
  EXPECT_EQ(cached.result_int(), 304u);
  EXPECT_TRUE(cached.body().empty());
  EXPECT_EQ(cached[bhttp::field::etag], etag);
  expect_security_headers(cached);
  // A changed file gets a new tag (size and mtime are in it).
  write(root_ / "js/app.js", "export const x = 22;\n");
  http::Response changed = files_->serve(again);
  EXPECT_EQ(changed.result_int(), 200u);
  EXPECT_NE(std::string(changed[bhttp::field::etag]), etag);
}

TEST_F(StaticFilesTest, NothingOutsideTheRootIsServed) {
  for (const char* target :
       {"/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/js/%2E%2E/%2E%2E/outside/secret.txt",
        "/abs-link.txt", "/rel-link.txt", "/outdir/secret.txt", "/fifo.html", "/missing.html",
        "/js", "/%2fetc%2fpasswd"}) {
    http::Response res = files_->serve(get(target));
    EXPECT_EQ(res.result_int(), 404u) << target;
    EXPECT_EQ(res.body().find("SECRET"), std::string::npos) << target;
    expect_security_headers(res);
  }
  // An absolute path in the request never names a host file: it is relative to the root.
  write(root_ / "etc/passwd", "root-relative");
  EXPECT_EQ(files_->serve(get("/etc/passwd")).body(), "root-relative");
}

TEST_F(StaticFilesTest, MissingRootAnswers404) {
  StaticFiles none(dir_.path() + "/no-such-dir");
  EXPECT_FALSE(none.available());
  EXPECT_EQ(none.serve(get("/")).result_int(), 404u);
}

// Runs a request through a router the way the HTTP server does.
http::Response dispatch(const http::Router& router, http::Request req) {
  asio::io_context io;
  http::Response out;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> { out = co_await http::detail::dispatch(router, req); },
      asio::detached);
  io.run();
  return out;
}

TEST_F(StaticFilesTest, RoutesKeepTheApiAnswers) {
  http::Router router;
  router.add(bhttp::verb::post, "/api/v1/login",
             [](const http::Request&, const http::PathParams&) -> asio::awaitable<http::Response> {
               co_return http::json_response(bhttp::status::ok, {{"route", "login"}});
             });
  router.add(bhttp::verb::get, "/metrics",
             [](const http::Request&, const http::PathParams&) -> asio::awaitable<http::Response> {
               co_return http::json_response(bhttp::status::ok, {{"route", "metrics"}});
             });
  add_static_routes(router, files_);

  http::Request login{bhttp::verb::post, "/api/v1/login", 11};
  EXPECT_EQ(dispatch(router, login).body(), "{\"route\":\"login\"}\n") << "the API route wins";
  EXPECT_EQ(dispatch(router, get("/metrics")).body(), "{\"route\":\"metrics\"}\n");
  http::Response wrong_method = dispatch(router, get("/api/v1/login"));
  EXPECT_EQ(wrong_method.result_int(), 405u);
  EXPECT_EQ(wrong_method[bhttp::field::allow], "POST");
  http::Response post_metrics = dispatch(router, http::Request{bhttp::verb::post, "/metrics", 11});
  EXPECT_EQ(post_metrics.result_int(), 405u);
  EXPECT_EQ(post_metrics[bhttp::field::allow], "GET");
  EXPECT_EQ(dispatch(router, get("/api/v1/nothing")).result_int(), 404u);
  EXPECT_EQ(dispatch(router, http::Request{bhttp::verb::delete_, "/api/v1/x/y", 11}).result_int(), 404u);
  EXPECT_EQ(dispatch(router, get("/internal/v1/anything")).result_int(), 404u);
  EXPECT_EQ(dispatch(router, get("/api/index.html")).result_int(), 404u)
      << "no file is served under /api/";

  http::Response page = dispatch(router, get("/"));
  EXPECT_EQ(page.result_int(), 200u);
  EXPECT_EQ(page.body(), "<!doctype html><title>portal</title>");
  EXPECT_EQ(dispatch(router, get("/icons/xterm.svg")).result_int(), 200u);
  http::Response post_file = dispatch(router, http::Request{bhttp::verb::post, "/index.html", 11});
  EXPECT_EQ(post_file.result_int(), 405u);
  EXPECT_EQ(post_file[bhttp::field::allow], "GET");
  expect_security_headers(post_file);
  EXPECT_EQ(dispatch(router, get("/../outside/secret.txt")).result_int(), 404u);
  EXPECT_EQ(dispatch(router, get("/%2e%2e/outside/secret.txt")).result_int(), 404u);
}

}  // namespace
}  // namespace appvirt::broker
