// hostd.toml parsing: defaults, every key, and errors that name file, line and key.
#include "session-host/hostd/hostd_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace appvirt::hostd {
namespace {

Result<HostdConfig> parse(std::string_view text) {
  return parse_hostd_config(text, "hostd.toml", "/opt/appvirt/bin");
}

TEST(HostdConfigTest, EmptyFileGivesDefaults) {
  auto c = parse("");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->state_dir, "/var/lib/appvirt/hostd");
  EXPECT_EQ(c->runtime_dir, "/run/appvirt");
  EXPECT_EQ(c->control_socket, "/run/appvirt/hostd.sock");
  EXPECT_EQ(c->rdp_user, "appvirt-rdp");
  EXPECT_FALSE(c->rdp_listen_tcp);
  EXPECT_EQ(c->tls_cert, "/var/lib/appvirt/hostd/tls/rdp.crt");
  EXPECT_EQ(c->tls_key, "/var/lib/appvirt/hostd/tls/rdp.key");
  EXPECT_EQ(c->display_first, 200);
  EXPECT_EQ(c->display_last, 999);
  EXPECT_EQ(c->default_width, 1024);
  EXPECT_EQ(c->default_height, 768);
  EXPECT_EQ(c->sandbox_path, "/opt/appvirt/bin/appvirt-sandbox");
  EXPECT_EQ(c->rdp_path, "/opt/appvirt/bin/appvirt-rdp");
  EXPECT_EQ(c->xvfb_path, "/usr/bin/Xvfb");
  EXPECT_FALSE(c->xvfb_glx);
  EXPECT_EQ(c->min_uid, 1000u);
  EXPECT_FALSE(c->default_limits.memory_max);
}

TEST(HostdConfigTest, ReadsEveryKey) {
  auto c = parse(R"(
state_dir = "/srv/state"
runtime_dir = "/srv/run"
control_socket = "/srv/ctl.sock"
log_level = "debug"
min_uid = 500
ended_retention_seconds = 30
sandbox_timeout_ms = 5000
[rdp]
user = "rdpsvc"
listen_tcp = true
tls_cert = "/etc/appvirt/rdp.crt"
tls_key = "/etc/appvirt/rdp.key"
ready_timeout_ms = 3000
log_level = "warn"
[display]
first = 300
last = 310
width = 1280
height = 800
start_timeout_ms = 2000
glx = true
[limits]
memory_max = "1G"
cpu_weight = 50
cpu_max_percent = 150
pids_max = 256
[paths]
sandbox = "/usr/lib/appvirt/appvirt-sandbox"
rdp = "/usr/lib/appvirt/appvirt-rdp"
xvfb = "/opt/X/Xvfb"
)");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->state_dir, "/srv/state");
  EXPECT_EQ(c->control_socket, "/srv/ctl.sock");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->min_uid, 500u);
  EXPECT_EQ(c->ended_retention, std::chrono::seconds(30));
  EXPECT_EQ(c->rdp_user, "rdpsvc");
  EXPECT_TRUE(c->rdp_listen_tcp);
  EXPECT_EQ(c->tls_key, "/etc/appvirt/rdp.key");
  EXPECT_EQ(c->display_first, 300);
  EXPECT_EQ(c->display_last, 310);
  EXPECT_EQ(c->default_width, 1280);
  EXPECT_TRUE(c->xvfb_glx);
  EXPECT_EQ(c->default_limits.memory_max, 1ull << 30);
  EXPECT_EQ(c->default_limits.cpu_weight, 50);
  EXPECT_EQ(c->default_limits.cpu_max_percent, 150);
  EXPECT_EQ(c->default_limits.pids_max, 256);
  EXPECT_EQ(c->xvfb_path, "/opt/X/Xvfb");
}

TEST(HostdConfigTest, ControlSocketDefaultFollowsRuntimeDir) {
  auto c = parse("runtime_dir = \"/tmp/rt\"\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->control_socket, "/tmp/rt/hostd.sock");
}

// Each bad file must fail with a message naming file, line and key.
struct BadCase {
  const char* text;
  const char* expect;
};

class HostdConfigBadTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(HostdConfigBadTest, NamesFileLineAndKey) {
  auto c = parse(GetParam().text);
  ASSERT_FALSE(c) << "accepted: " << GetParam().text;
  EXPECT_NE(c.error().message.find(GetParam().expect), std::string::npos)
      << "message: " << c.error().message << "\nexpected to contain: " << GetParam().expect;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HostdConfigBadTest,
    ::testing::Values(
        BadCase{"state_dir = \"/a\"\nstat_dir = \"/b\"\n", "hostd.toml:2: stat_dir: unknown key"},
        BadCase{"[rdp]\nuser = \"x\"\nlisten = true\n", "hostd.toml:3: rdp.listen: unknown key"},
        BadCase{"\n\nmin_uid = \"1000\"\n", "hostd.toml:3: min_uid: must be an integer"},
        BadCase{"[display]\nfirst = 0\n", "hostd.toml:2: display.first: must be between 1"},
        BadCase{"[display]\nfirst = 500\nlast = 400\n",
                "hostd.toml:3: display.last: must not be below display.first"},
        BadCase{"state_dir = \"relative/dir\"\n", "hostd.toml:1: state_dir: must be an absolute path"},
        BadCase{"log_level = \"loud\"\n", "hostd.toml:1: log_level: must be one of"},
        BadCase{"[rdp]\nlisten_tcp = \"yes\"\n", "hostd.toml:2: rdp.listen_tcp: must be true or false"},
        BadCase{"[limits]\nmemory_max = \"lots\"\n", "hostd.toml:2: limits.memory_max: must be a size"},
        BadCase{"[limits]\nmemory_max = \"1M\"\n", "hostd.toml:2: limits.memory_max: must be between"},
        BadCase{"[limits]\ncpu_weight = 0\n", "hostd.toml:2: limits.cpu_weight: must be between 1 and 10000"},
        BadCase{"[paths]\nxvfb = \"Xvfb\"\n", "hostd.toml:2: paths.xvfb: must be an absolute path"},
        BadCase{"[display]\nwidth = 10\n", "hostd.toml:2: display.width: must be between 64 and 8192"},
        BadCase{"state_dir = \n", "hostd.toml:1:"}));

TEST(HostdConfigTest, ReportsAllIssuesAtOnce) {
  auto c = parse("min_uid = -1\nbogus = 1\n[display]\nheight = 99999\n");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("hostd.toml:1: min_uid"), std::string::npos);
  EXPECT_NE(c.error().message.find("hostd.toml:2: bogus: unknown key"), std::string::npos);
  EXPECT_NE(c.error().message.find("hostd.toml:4: display.height"), std::string::npos);
}

TEST(HostdConfigTest, LoadNamesTheFileOnDisk) {
  auto dir = std::filesystem::temp_directory_path() / ("hostd-cfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "hostd.toml";
  std::ofstream(file) << "# comment\n[rdp]\nuser = 5\n";
  auto c = load_hostd_config(file, "/bin");
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(file.string() + ":3: rdp.user: must be a string"),
            std::string::npos)
      << c.error().message;
  auto missing = load_hostd_config(dir / "nope.toml", "/bin");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("nope.toml"), std::string::npos);
}

}  // namespace
}  // namespace appvirt::hostd
