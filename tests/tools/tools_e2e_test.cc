// End-to-end check of the test tools themselves against the stock FreeRDP shadow server:
// Xvfb (with an X cookie) + appvirt-testpattern + freerdp-shadow-cli on a loopback port, and
// rdp-probe comparing every pixel of what arrives over RDP.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iterator>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/tools/test_support.h"

namespace appvirt::testing {
namespace {

constexpr int kWidth = 1024;
constexpr int kHeight = 768;

class ToolsE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto x = Xvfb::start(dir_->path(), kWidth, kHeight);
    ASSERT_TRUE(x) << x.error().str();
    xvfb_ = new Xvfb(std::move(*x));
    start_app();
    start_shadow();
  }

  static void TearDownTestSuite() {
    // Children first (their destructors terminate and reap them), then the display, then files.
    delete shadow_;
    delete app_;
    delete xvfb_;
    delete dir_;
    shadow_ = app_ = nullptr;
    xvfb_ = nullptr;
    dir_ = nullptr;
  }

  static void start_app() {
    SpawnOptions o;
    o.env = xvfb_->client_env();
    o.stderr_file = dir_->path() + "/app.log";
    o.stdout_file = dir_->path() + "/app.ready";
    auto app = Child::spawn({APPVIRT_TESTPATTERN, "--keys-advance", "--ready-fd", "1"}, o);
    ASSERT_TRUE(app) << app.error().str();
    app_ = new Child(std::move(*app));
    // --ready-fd 1 writes "ready" to stdout once the pattern is on the screen.
    ASSERT_TRUE(wait_file_contains(o.stdout_file, "ready", milliseconds(10000)));
  }

  static void start_shadow() {
    auto port = free_tcp_port();
    ASSERT_TRUE(port) << port.error().str();
    port_ = *port;
    SpawnOptions o;
    o.env = xvfb_->client_env();
    // The shadow server keeps its generated certificate under $XDG_CONFIG_HOME/freerdp.
    o.env["HOME"] = dir_->path();
    o.env["XDG_CONFIG_HOME"] = dir_->path() + "/config";
    o.stdout_file = o.stderr_file = dir_->path() + "/shadow.log";
    auto shadow = Child::spawn({"freerdp-shadow-cli", "/port:" + std::to_string(port_),
                                "/bind-address:127.0.0.1", "/sec:tls", "-auth"},
                               o);
    ASSERT_TRUE(shadow) << shadow.error().str();
    shadow_ = new Child(std::move(*shadow));
    ASSERT_TRUE(wait_tcp_listening(port_, milliseconds(15000))) << "shadow server not listening";
  }

  static bool wait_file_contains(const std::string& path, const std::string& text,
                                 milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(path);
      std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (s.find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  // Runs rdp-probe against the shadow server; returns its exit code and parsed JSON.
  static std::pair<int, nlohmann::json> probe(std::vector<std::string> args) {
    std::vector<std::string> argv = {RDP_PROBE, "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_capture(argv, milliseconds(30000));
    if (!r) return {-1, nlohmann::json{{"spawn_error", r.error().str()}}};
    auto j = nlohmann::json::parse(r->out, nullptr, /*allow_exceptions=*/false);
    return {r->exit_code, j};
  }

  static TempDir* dir_;
  static Xvfb* xvfb_;
  static Child* app_;
  static Child* shadow_;
  static int port_;
  static int variant_;  // what the app shows now
};

TempDir* ToolsE2e::dir_ = nullptr;
Xvfb* ToolsE2e::xvfb_ = nullptr;
Child* ToolsE2e::app_ = nullptr;
Child* ToolsE2e::shadow_ = nullptr;
int ToolsE2e::port_ = 0;
int ToolsE2e::variant_ = 0;

TEST_F(ToolsE2e, CookieIsRequiredByXvfb) {
  SpawnOptions o;
  o.env = xvfb_->client_env();
  o.env["XAUTHORITY"] = dir_->path() + "/no-such-file";
  auto r = run_capture({APPVIRT_TESTPATTERN}, milliseconds(10000), o);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_NE(r->exit_code, 0) << "testpattern drew without the X cookie";
}

TEST_F(ToolsE2e, LosslessFrameMatchesPatternExactly) {
  std::string png = dir_->path() + "/frame.png";
  auto [rc, j] = probe({"--lossless", "--expect-pattern", std::to_string(variant_), "--wait-match",
                        "--timeout-ms", "15000", "--out", png});
  ASSERT_EQ(rc, 0) << j.dump();
  EXPECT_EQ(j["connected"], true);
  EXPECT_EQ(j["match"], true);
  EXPECT_EQ(j["mismatched_pixels"], 0);
  EXPECT_EQ(j["width"], kWidth);
  EXPECT_EQ(j["height"], kHeight);
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_GT(j["first_frame_ms"].get<int>(), 0);
  EXPECT_GE(j["match_ms"].get<int>(), j["first_frame_ms"].get<int>());
  // A 1024x768 frame cannot arrive in fewer bytes than this, even compressed.
  EXPECT_GT(j["bytes_received"].get<uint64_t>(), 50000u);
  EXPECT_GT(j["bytes_sent"].get<uint64_t>(), 0u);

  // The written PNG holds the same frame: comparing against it must match too.
  auto [rc2, j2] =
      probe({"--lossless", "--expect-png", png, "--wait-match", "--timeout-ms", "15000"});
  EXPECT_EQ(rc2, 0) << j2.dump();
  EXPECT_EQ(j2["match"], true);
}

TEST_F(ToolsE2e, ConnectLoopWakesOnServerData) {
  // By default FreeRDP's Sleep(100) ticks in the connect loop end when server data arrives.
  // A connection whose answers all arrive before the loop's first check never sleeps, so try
  // a few times: one cut-short sleep proves the probe's Sleep is the one libfreerdp2 calls.
  int shortcuts = 0;
  for (int attempt = 0; attempt < 5 && shortcuts == 0; ++attempt) {
    auto [rc, j] = probe({"--lossless", "--timeout-ms", "15000"});
    ASSERT_EQ(rc, 0) << j.dump();
    EXPECT_LE(j["connect_shortcuts"].get<int>(), j["connect_sleeps"].get<int>()) << j.dump();
    EXPECT_LE(j["connected_ms"].get<int>(), j["first_frame_ms"].get<int>()) << j.dump();
    shortcuts = j["connect_shortcuts"].get<int>();
  }
  EXPECT_GT(shortcuts, 0);
  // --stock-sleep keeps them: whatever the loop sleeps, it is never cut short.
  auto [rc2, j2] = probe({"--lossless", "--stock-sleep", "--timeout-ms", "15000"});
  ASSERT_EQ(rc2, 0) << j2.dump();
  EXPECT_EQ(j2["connect_shortcuts"], 0) << j2.dump();
}

TEST_F(ToolsE2e, WrongVariantIsReportedAsMismatch) {
  auto [rc, j] = probe(
      {"--lossless", "--expect-pattern", std::to_string(variant_ + 1), "--timeout-ms", "15000"});
  EXPECT_EQ(rc, 1) << j.dump();
  EXPECT_EQ(j["connected"], true);
  EXPECT_EQ(j["match"], false);
  // Variants differ in every block colour: most of the screen must mismatch.
  EXPECT_GT(j["mismatched_pixels"].get<uint64_t>(), uint64_t{kWidth} * kHeight / 2);
  ASSERT_TRUE(j["first_mismatch"].is_object()) << j.dump();
}

TEST_F(ToolsE2e, ChangedFrameArrivesAfterSigusr1) {
  ASSERT_EQ(kill(app_->pid(), SIGUSR1), 0);
  ++variant_;
  auto [rc, j] = probe({"--lossless", "--expect-pattern", std::to_string(variant_), "--wait-match",
                        "--timeout-ms", "15000"});
  EXPECT_EQ(rc, 0) << j.dump();
  EXPECT_EQ(j["match"], true);
}

TEST_F(ToolsE2e, TypedKeyReachesTheApp) {
  // The app advances its variant on every key press; 'a' is one press (no shift).
  auto [rc, j] = probe({"--lossless", "--type-text", "a", "--expect-pattern",
                        std::to_string(variant_ + 1), "--wait-match", "--timeout-ms", "15000"});
  ++variant_;
  EXPECT_EQ(rc, 0) << j.dump();
  EXPECT_EQ(j["keys_sent"], 1);
  EXPECT_EQ(j["match"], true);
  EXPECT_GE(j["match_ms"].get<int>(), j["last_key_ms"].get<int>());
}

TEST_F(ToolsE2e, LossyCodecsAreNotExact) {
  // Without --lossless the probe offers RemoteFX/NSCodec; the shadow server then encodes lossily,
  // so an exact compare must fail. Proves --lossless is what makes the exact compare possible.
  auto [rc, j] = probe({"--expect-pattern", std::to_string(variant_), "--timeout-ms", "15000"});
  EXPECT_EQ(rc, 1) << j.dump();
  EXPECT_EQ(j["connected"], true);
  EXPECT_EQ(j["match"], false);
}

}  // namespace
}  // namespace appvirt::testing
