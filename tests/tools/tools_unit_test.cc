// Unit tests of the test tools: the pattern, frame comparison, PNG files, the key map, target
// parsing, the byte-counting relay, the Sleep shortcut, and rdp-probe's behaviour on the wire
// (cookie, timeout).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <winpr/synch.h>

#include <chrono>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "tests/tools/byte_relay.h"
#include "tests/tools/frame.h"
#include "tests/tools/keymap.h"
#include "tests/tools/pattern.h"
#include "tests/tools/sleep_shortcut.h"
#include "tests/tools/test_support.h"

namespace appvirt::probe {
namespace {

using std::chrono::milliseconds;
using testpattern::pattern_pixel;

Frame pattern_frame(int w, int h, int variant) {
  Frame f{w, h, {}};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) f.pixels.push_back(pattern_pixel(x, y, variant));
  }
  return f;
}

TEST(Pattern, HasMarkerGridAndManyColours) {
  EXPECT_EQ(pattern_pixel(0, 0), 0xffffffu);    // marker's outer ring
  EXPECT_EQ(pattern_pixel(4, 4), 0xff0000u);    // next ring
  EXPECT_EQ(pattern_pixel(64, 40), 0x000000u);  // grid column
  EXPECT_EQ(pattern_pixel(40, 64), 0x000000u);  // grid row
  std::set<uint32_t> colours;
  for (int by = 0; by < 24; ++by) {
    for (int bx = 0; bx < 32; ++bx) colours.insert(pattern_pixel(bx * 32 + 5, by * 32 + 9));
  }
  EXPECT_GT(colours.size(), 700u);             // 768 blocks, nearly all distinct
  EXPECT_NE(pattern_pixel(5, 30), 0x000000u);  // block (0, 0) is not black
}

TEST(Pattern, DiagonalIsInvertedBlockColour) {
  uint32_t block = pattern_pixel(70, 75);
  EXPECT_EQ(pattern_pixel(64 + 7, 64 + 7), ~block & 0xffffffu);
}

TEST(Pattern, VariantsDifferAlmostEverywhere) {
  Frame f = pattern_frame(256, 256, 0);
  CompareResult r = compare_to_pattern(f, 1);
  EXPECT_GT(r.mismatched_pixels, 256u * 256u * 8 / 10);
}

TEST(Frame, FromBgrxAndExactCompare) {
  // B, G, R, X bytes per pixel, with row padding.
  const int w = 40, h = 30, stride = w * 4 + 8;
  std::vector<uint8_t> buf(static_cast<size_t>(stride) * h, 0xee);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint32_t p = pattern_pixel(x, y, 3);
      uint8_t* px = &buf[static_cast<size_t>(y) * stride + 4 * x];
      px[0] = p & 0xff;
      px[1] = (p >> 8) & 0xff;
      px[2] = (p >> 16) & 0xff;
      px[3] = 0x7f;  // X must be ignored
    }
  }
  Frame f = frame_from_bgrx(buf.data(), w, h, stride);
  EXPECT_TRUE(compare_to_pattern(f, 3).match());
  f.pixels[static_cast<size_t>(17) * w + 33] ^= 0x000001;  // one bit of one pixel
  CompareResult r = compare_to_pattern(f, 3);
  EXPECT_FALSE(r.match());
  EXPECT_EQ(r.mismatched_pixels, 1u);
  ASSERT_TRUE(r.first);
  EXPECT_EQ(r.first->x, 33);
  EXPECT_EQ(r.first->y, 17);
  EXPECT_EQ(r.first->want, pattern_pixel(33, 17, 3));
}

TEST(Frame, SizeMismatchNeverMatches) {
  CompareResult r = compare_frames(pattern_frame(10, 10, 0), pattern_frame(10, 11, 0));
  EXPECT_FALSE(r.match());
  EXPECT_TRUE(r.size_mismatch);
}

TEST(Frame, PngRoundTripIsExact) {
  testing::TempDir dir;
  Frame f = pattern_frame(100, 70, 2);
  std::string path = dir.path() + "/f.png";
  ASSERT_TRUE(write_png(f, path));
  auto back = read_png(path);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(compare_frames(*back, f).match());
  EXPECT_FALSE(read_png(dir.path() + "/missing.png"));
}

TEST(Keymap, UsLayoutScancodes) {
  EXPECT_EQ(ascii_to_key('a')->scancode, 0x1e);
  EXPECT_FALSE(ascii_to_key('a')->shift);
  EXPECT_EQ(ascii_to_key('A')->scancode, 0x1e);
  EXPECT_TRUE(ascii_to_key('A')->shift);
  EXPECT_EQ(ascii_to_key('1')->scancode, 0x02);
  EXPECT_EQ(ascii_to_key('/')->scancode, 0x35);
  EXPECT_EQ(ascii_to_key('~')->scancode, 0x29);
  EXPECT_TRUE(ascii_to_key('~')->shift);
  EXPECT_EQ(ascii_to_key('\n')->scancode, 0x1c);
  EXPECT_FALSE(ascii_to_key('\x01'));
}

TEST(Keymap, PlanTyping) {
  auto keys = plan_typing("hi!", false);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 3u);
  EXPECT_TRUE((*keys)[2].shift);
  EXPECT_FALSE(plan_typing("caf\xc3\xa9", false));  // é has no US scancode
  auto uni = plan_typing("caf\xc3\xa9", true);
  ASSERT_TRUE(uni);
  ASSERT_EQ(uni->size(), 4u);
  EXPECT_EQ((*uni)[3].code, 0xe9);
  EXPECT_FALSE(plan_typing("\xc3", true));              // truncated UTF-8
  EXPECT_FALSE(plan_typing("\xf0\x9f\x98\x80", true));  // beyond U+FFFF
}

TEST(Target, Parse) {
  auto u = parse_target("/run/x/rdp.sock");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->unix_path, "/run/x/rdp.sock");
  auto t = parse_target("127.0.0.1:3389");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, 3389);
  auto v6 = parse_target("[::1]:5");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_FALSE(parse_target("localhost"));
  EXPECT_FALSE(parse_target("host:0"));
  EXPECT_FALSE(parse_target("host:99999"));
  EXPECT_FALSE(parse_target("host:12x"));
}

void write_all(int fd, const std::string& s) {
  ASSERT_EQ(write(fd, s.data(), s.size()), ssize_t(s.size()));
}

std::string read_n(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, out.data() + got, n - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

TEST(ByteRelay, CopiesAndCountsBothDirections) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd server_side(sv[1]);
  ByteRelay relay;
  auto client = relay.start(UniqueFd(sv[0]));
  ASSERT_TRUE(client) << client.error().str();
  UniqueFd client_fd(*client);
  write_all(client_fd.get(), "hello");
  EXPECT_EQ(read_n(server_side.get(), 5), "hello");
  write_all(server_side.get(), "0123456");
  EXPECT_EQ(read_n(client_fd.get(), 7), "0123456");
  server_side.reset();  // server hangs up: the client must see EOF
  char c;
  EXPECT_EQ(read(client_fd.get(), &c, 1), 0);
  relay.stop();
  EXPECT_EQ(relay.bytes_sent(), 5u);
  EXPECT_EQ(relay.bytes_received(), 7u);
}

TEST(SleepShortcut, WakesOnServerDataAndOnlyOnItsThread) {
  // ::Sleep here is the probe's definition (this binary needs no libwinpr); that FreeRDP's calls
  // reach it in rdp-probe is checked end to end (ToolsE2e.ConnectLoopWakesOnServerData).
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd server_side(sv[1]);
  ByteRelay relay;
  auto client = relay.start(UniqueFd(sv[0]));
  ASSERT_TRUE(client) << client.error().str();
  UniqueFd client_fd(*client);
  auto timed_sleep = [](uint32_t ms) {
    auto t0 = std::chrono::steady_clock::now();
    ::Sleep(ms);
    return std::chrono::steady_clock::now() - t0;
  };
  // Without a shortcut on this thread Sleep sleeps the full time.
  EXPECT_GE(timed_sleep(50), milliseconds(50));
  SleepShortcut shortcut(&relay);
  std::thread server([&] {
    std::this_thread::sleep_for(milliseconds(100));
    write_all(server_side.get(), "x");
  });
  uint64_t cut_before = SleepShortcut::shortcut_count();
  EXPECT_LT(timed_sleep(5000), milliseconds(2500));  // woken by the delivery, not the timeout
  server.join();
  EXPECT_EQ(SleepShortcut::shortcut_count(), cut_before + 1);
  EXPECT_EQ(read_n(client_fd.get(), 1), "x");
  // Nothing new since: the next Sleep waits its full time again.
  EXPECT_GE(timed_sleep(50), milliseconds(50));
  // Another thread is not affected by this thread's shortcut.
  std::chrono::steady_clock::duration other{};
  std::thread([&] { other = timed_sleep(50); }).join();
  EXPECT_GE(other, milliseconds(50));
  relay.stop();
}

// rdp-probe against a Unix socket that records the X.224 Connection Request and hangs up.
TEST(RdpProbe, SendsCookieVerbatimAndOffersTlsOnly) {
  testing::TempDir dir;
  std::string path = dir.path() + "/cap.sock";
  UniqueFd listener(socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(listener.get(), 1), 0);
  std::string request;
  std::thread server([&] {
    UniqueFd c(accept(listener.get(), nullptr, nullptr));
    request = read_n(c.get(), 40);  // TPKT length of this request
  });
  auto r = testing::run_capture(
      {RDP_PROBE, path, "--cookie", "Cookie: msts=s3cret", "--timeout-ms", "5000"},
      milliseconds(20000));
  server.join();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->exit_code, 1);
  std::string expected = std::string("\x03\x00\x00\x28\x23\xe0\x00\x00\x00\x00\x00", 11) +
                         "Cookie: msts=s3cret\r\n" +
                         std::string("\x01\x00\x08\x00\x01\x00\x00\x00", 8);
  EXPECT_EQ(request.substr(0, expected.size()), expected);
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  EXPECT_EQ(j["connected"], false) << r->out;
  EXPECT_EQ(j["bytes_sent"], expected.size()) << r->out;
}

TEST(RdpProbe, GivesUpAtTheTimeout) {
  // A server that accepts and never answers.
  UniqueFd listener(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(listen(listener.get(), 1), 0);
  ASSERT_EQ(getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  auto start = std::chrono::steady_clock::now();
  auto r = testing::run_capture(
      {RDP_PROBE, "127.0.0.1:" + std::to_string(ntohs(a.sin_port)), "--timeout-ms", "1000"},
      milliseconds(20000));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_LT(took, milliseconds(5000));
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  EXPECT_EQ(j["connected"], false) << r->out;
  EXPECT_TRUE(j["error"].is_string()) << r->out;
}

}  // namespace
}  // namespace appvirt::probe
