// Unit tests of `appvirt up` (label unit, no root): the generated configs are accepted by the
// daemons' own config loaders, option checks, the banner, and the supervisor with shell
// "daemons" (start, death, readiness timeout, ordered stop, SIGKILL after the stop timeout).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "broker/broker_config.h"
#include "gateway/gateway_config.h"
#include "session-host/hostd/hostd_config.h"
#include "tests/tools/test_support.h"
#include "tools/appvirt/readiness.h"
#include "tools/appvirt/supervisor.h"
#include "tools/appvirt/up.h"

namespace appvirt::up {
namespace {

using namespace std::chrono_literals;
using appvirt::testing::TempDir;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

UpOptions sample_options(const std::string& dir) {
  UpOptions o;
  o.state_dir = fs::path(dir) / "state \"quoted\" \\dir";  // escaping in every TOML string
  o.runtime_dir = fs::path(dir) / "run";
  o.http_port = 18443;
  o.rdp_port = 13389;
  o.bind = "127.0.0.1";
  o.public_host = "192.0.2.7";
  o.demo_user = "demo";
  o.demo_password = "pa'ss word\"x";
  o.bins = {"/opt/x/bin/appvirt-hostd", "/opt/x/bin/appvirt-broker", "/opt/x/bin/appvirt-gateway",
            "/opt/x/lib/appvirt/appvirt-sandbox", "/opt/x/lib/appvirt/appvirt-rdp",
            "/opt/x/lib/appvirt/appvirt-testpattern"};
  return o;
}

TEST(UpFiles, GeneratedConfigsLoadWithTheDaemonsOwnLoaders) {
  TempDir tmp;
  UpOptions o = sample_options(tmp.path());
  Layout l = make_layout(o, "/home/demo");
  auto apps = demo_apps(o, l);
  ASSERT_TRUE(write_state_files(o, l, apps));

  auto hostd = hostd::load_hostd_config(l.hostd_toml, "/nowhere");
  ASSERT_TRUE(hostd) << hostd.error().str();
  EXPECT_EQ(hostd->state_dir, l.hostd_state);
  EXPECT_EQ(hostd->control_socket, fs::path(tmp.path()) / "run" / "hostd.sock");
  EXPECT_EQ(hostd->sandbox_path, "/opt/x/lib/appvirt/appvirt-sandbox");
  EXPECT_EQ(hostd->rdp_path, "/opt/x/lib/appvirt/appvirt-rdp");

  auto broker = broker::load_broker_config(l.broker_toml);
  ASSERT_TRUE(broker) << broker.error().str();
  EXPECT_EQ(broker->gateway_address, "192.0.2.7:13389");
  EXPECT_EQ(broker->listen.port, 18443);
  EXPECT_EQ(broker->state_dir, l.broker_state);
  EXPECT_EQ(broker->gateway_secret_file, l.gateway_secret);
  ASSERT_EQ(broker->hosts.size(), 1u);
  EXPECT_EQ(broker->hosts[0].socket, hostd->control_socket.string());
  ASSERT_EQ(broker->apps.size(), apps.size());
  ASSERT_FALSE(apps.empty());
  EXPECT_EQ(apps.back().id, "testpattern");
  EXPECT_EQ(apps.back().command, std::vector<std::string>{"/home/demo/.appvirt/appvirt-testpattern"});

  auto gateway = gateway::load_gateway_config(l.gateway_toml);
  ASSERT_TRUE(gateway) << gateway.error().str();
  EXPECT_EQ(gateway->listen.port, 13389);
  EXPECT_EQ(gateway->listen.address, "127.0.0.1");
  EXPECT_EQ(gateway->broker.host, "127.0.0.1");
  EXPECT_EQ(gateway->broker.port, 18443);
  EXPECT_EQ(gateway->broker.ca_file, l.broker_cert);
  EXPECT_EQ(gateway->broker.secret_file, l.gateway_secret);
  EXPECT_EQ(gateway->logon.cert_file, l.logon_cert);
}

TEST(UpFiles, SecretAndFilesArePrivateAndTheSecretChangesPerStart) {
  TempDir tmp;
  UpOptions o = sample_options(tmp.path());
  Layout l = make_layout(o, "/home/demo");
  ASSERT_TRUE(write_state_files(o, l, demo_apps(o, l)));
  std::string first = read_file(l.gateway_secret);
  EXPECT_EQ(first.size(), 65u);  // 64 hex digits + newline
  for (const auto& p : {l.gateway_secret, l.broker_toml, l.gateway_toml, l.hostd_toml, l.catalog_toml}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
  }
  struct stat st {};
  ASSERT_EQ(::stat(l.state_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(write_state_files(o, l, demo_apps(o, l)));
  EXPECT_NE(read_file(l.gateway_secret), first);
  EXPECT_FALSE(fs::exists(l.gateway_secret.string() + ".tmp"));
}

TEST(UpFiles, CatalogEntitlesTheDemoUserAndOnlyItGetsTheTestPattern) {
  UpOptions o = sample_options("/tmp");
  std::vector<DemoApp> apps = {{"xterm", "XTerm", {"/usr/bin/xterm"}},
                               {"testpattern", "Test pattern", {"/home/demo/.appvirt/appvirt-testpattern"}}};
  std::string text = render_catalog_toml(o, apps);
  EXPECT_NE(text.find("id = \"xterm\"\nname = \"XTerm\"\ncommand = [\"/usr/bin/xterm\"]\n"
                      "users = [\"demo\"]\ngroups = [\"appvirt-users\"]\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("id = \"testpattern\"\nname = \"Test pattern\"\n"
                      "command = [\"/home/demo/.appvirt/appvirt-testpattern\"]\nusers = [\"demo\"]\n"),
            std::string::npos) << text;
  EXPECT_EQ(text.find("groups", text.find("testpattern")), std::string::npos);
  o.demo = false;
  text = render_catalog_toml(o, {apps[0]});
  EXPECT_EQ(text.find("users = "), std::string::npos);
  EXPECT_NE(text.find("groups = [\"appvirt-users\"]"), std::string::npos);
}

TEST(UpOptions, EveryProblemIsListed) {
  UpOptions o;
  o.bind = "localhost";
  o.rdp_port = o.http_port;
  o.bin_dir = "/nonexistent-appvirt-bin";
  auto r = finish_up_options(o, "nocolon");
  ASSERT_FALSE(r);
  const std::string& m = r.error().message;
  for (const char* want : {"--demo-user: expected USER:PASSWORD", "--bind: not a numeric",
                           "--http-port and --rdp-port are equal",
                           "appvirt-hostd: /nonexistent-appvirt-bin/appvirt-hostd is not an executable",
                           "appvirt-gateway:", "appvirt-testpattern:", "--testpattern-bin"}) {
    EXPECT_NE(m.find(want), std::string::npos) << want << " in:\n" << m;
  }
  UpOptions bad_user;
  r = finish_up_options(bad_user, "Root;rm:short");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("user name must match"), std::string::npos);
  EXPECT_NE(r.error().message.find("8 to 128 characters"), std::string::npos);
}

TEST(UpOptions, BinariesComeFromBinDirOrItsLibAppvirtAndFlagsWin) {
  TempDir tmp;
  fs::path bin = fs::path(tmp.path()) / "bin", lib = fs::path(tmp.path()) / "lib" / "appvirt";
  fs::create_directories(bin);
  fs::create_directories(lib);
  auto make_exe = [](const fs::path& p) {
    std::ofstream(p) << "#!/bin/sh\n";
    fs::permissions(p, fs::perms::owner_all);
  };
  for (const char* n : {"appvirt-hostd", "appvirt-broker", "appvirt-gateway"}) make_exe(bin / n);
  for (const char* n : {"appvirt-sandbox", "appvirt-rdp"}) make_exe(lib / n);
  fs::path own_pattern = fs::path(tmp.path()) / "pattern";
  make_exe(own_pattern);
  UpOptions o;
  o.bin_dir = bin;
  o.bins.testpattern = own_pattern;
  ASSERT_TRUE(finish_up_options(o, "")) ;
  EXPECT_EQ(o.bins.hostd, bin / "appvirt-hostd");
  EXPECT_EQ(o.bins.sandbox, lib / "appvirt-sandbox");
  EXPECT_EQ(o.bins.testpattern, own_pattern);
  EXPECT_EQ(o.demo_user, "demo");
  EXPECT_EQ(o.demo_password, "demo-password");
  EXPECT_FALSE(o.public_host.empty());
}

TEST(UpOptions, Addresses) {
  EXPECT_EQ(default_public_host("10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(host_port("::1", 3389), "[::1]:3389");
  EXPECT_EQ(host_port("10.0.0.1", 8443), "10.0.0.1:8443");
  EXPECT_EQ(local_address("0.0.0.0"), "127.0.0.1");
  EXPECT_EQ(local_address("::"), "::1");
  EXPECT_EQ(local_address("10.0.0.1"), "10.0.0.1");
}

TEST(UpBanner, ShowsWhereToConnectWithAQuotedPassword) {
  UpOptions o = sample_options("/tmp");
  Layout l = make_layout(o, "/home/demo");
  std::vector<DemoApp> apps = {{"xterm", "XTerm", {"/usr/bin/xterm"}}};
  std::string b = render_banner(o, l, apps, true);
  EXPECT_NE(b.find("Portal:   https://192.0.2.7:18443/"), std::string::npos) << b;
  EXPECT_NE(b.find("Gateway:  192.0.2.7:13389"), std::string::npos) << b;
  EXPECT_NE(b.find("Demo credentials: user demo, password pa'ss word\"x\n"), std::string::npos) << b;
  EXPECT_NE(b.find("xfreerdp /v:192.0.2.7:13389 /u:demo /p:'pa'\\''ss word\"x' /cert:ignore"),
            std::string::npos) << b;
  EXPECT_NE(b.find("/api/v1/apps/xterm/launch"), std::string::npos) << b;
  o.demo = false;
  b = render_banner(o, l, apps, false);
  EXPECT_EQ(b.find("pa'ss"), std::string::npos) << b;
  EXPECT_EQ(shell_quote("a'b"), "'a'\\''b'");
}

TEST(Readiness, HttpStatusAndGatewayLine) {
  EXPECT_EQ(http_status("HTTP/1.1 200 OK\r\n"), 200u);
  EXPECT_EQ(http_status("HTTP/1.0 503 x"), 503u);
  EXPECT_EQ(http_status("garbage"), 0u);
  TempDir tmp;
  std::string log = tmp.path() + "/gateway.log";
  std::ofstream(log) << "something\n{\"listening\":true,\"port\":4000}\n";
  EXPECT_TRUE(check_gateway(log, 4000));
  EXPECT_FALSE(check_gateway(log, 4001));
  EXPECT_FALSE(check_hostd(tmp.path() + "/no.sock", 200ms));
}

DaemonSpec shell_daemon(const std::string& name, const std::string& script, const std::string& dir,
                        std::chrono::milliseconds stop_timeout = 5s) {
  return {name, {"/bin/sh", "-c", script}, fs::path(dir) / (name + ".log"), stop_timeout};
}

TEST(Supervisor, ReportsWhichDaemonDied) {
  TempDir tmp;
  auto sup = Supervisor::create();
  ASSERT_TRUE(sup);
  ASSERT_TRUE(sup->start(shell_daemon("good", "trap 'exit 0' TERM; while :; do sleep 0.05; done", tmp.path())));
  ASSERT_TRUE(sup->start(shell_daemon("bad", "sleep 0.2; echo bye; exit 3", tmp.path())));
  EXPECT_EQ(sup->run(), Event::kDaemonDied);
  EXPECT_EQ(sup->died_name(), "bad");
  EXPECT_TRUE(WIFEXITED(sup->died_status()) && WEXITSTATUS(sup->died_status()) == 3);
  EXPECT_EQ(read_file(tmp.path() + "/bad.log"), "bye\n");
  EXPECT_FALSE(sup->stop_all());  // a death is never a clean stop
}

TEST(Supervisor, StopsNewestFirstAndKillsWhatIgnoresSigterm) {
  TempDir tmp;
  std::string order = tmp.path() + "/order";
  auto sup = Supervisor::create();
  ASSERT_TRUE(sup);
  for (const char* n : {"first", "second"}) {
    std::string script = std::string("trap 'echo ") + n + " >> " + order +
                         "; exit 0' TERM; while :; do sleep 0.05; done";
    ASSERT_TRUE(sup->start(shell_daemon(n, script, tmp.path())));
  }
  std::string err;
  EXPECT_EQ(sup->wait_ready([] { return Result<void>(fail("not yet")); }, 300ms, err), Event::kTimeout);
  EXPECT_EQ(err, "not yet");
  EXPECT_EQ(sup->wait_ready([] { return Result<void>(); }, 300ms, err), Event::kReady);
  EXPECT_TRUE(sup->stop_all());
  EXPECT_EQ(read_file(order), "second\nfirst\n");

  auto stubborn = Supervisor::create();
  ASSERT_TRUE(stubborn);
  ASSERT_TRUE(stubborn->start(shell_daemon("stubborn", "trap '' TERM; while :; do sleep 0.05; done",
                                           tmp.path(), 300ms)));
  ::usleep(200'000);  // let the shell install its trap
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(stubborn->stop_all());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(Supervisor, AStopSignalEndsTheWait) {
  TempDir tmp;
  auto sup = Supervisor::create();
  ASSERT_TRUE(sup);
  ASSERT_TRUE(sup->start(shell_daemon("d", "trap 'exit 0' TERM; while :; do sleep 0.05; done", tmp.path())));
  ::usleep(200'000);            // let the shell install its trap
  ::kill(::getpid(), SIGTERM);  // blocked, so it is read from the signalfd
  EXPECT_EQ(sup->run(), Event::kStopRequested);
  EXPECT_TRUE(sup->stop_all());
}

}  // namespace
}  // namespace appvirt::up
