// hostd's VM sessions without a real guest: the [vm] config keys and their errors, the launch
// body's isolation, the persisted form, refusals (no [vm], too little memory) and a VM whose
// QEMU dies at once, which must fail only that launch and leave nothing behind. The real boot
// is covered by tests/e2e/vm_session_e2e_test.cc and tests/session-host/vm/vm_e2e_test.cc.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "session-host/hostd/control_api.h"
#include "session-host/hostd/hostd_config.h"
#include "session-host/hostd/session_manager.h"
#include "session-host/hostd/vm_activity.h"
#include "tests/session-host/hostd/fakes.h"

namespace appvirt::hostd {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

Result<HostdConfig> parse(std::string_view text) {
  return parse_hostd_config(text, "hostd.toml", "/opt/appvirt/bin");
}

TEST(VmConfigTest, DefaultsMeanNoVms) {
  auto c = parse("");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(c->vm.enabled());
  EXPECT_EQ(c->vm.capacity, 2);
  EXPECT_EQ(c->vm.accelerator, "auto");
}

TEST(VmConfigTest, ReadsEveryKey) {
  auto c = parse(R"(
[vm]
image_dir = "/var/lib/appvirt/images/full/current"
capacity = 3
accelerator = "tcg"
memory_mib = 2048
vcpus = 2
ready_timeout_ms = 90000
power_off_grace_ms = 5000
qemu = "/opt/qemu/bin/qemu-system-x86_64"
qemu_img = "/opt/qemu/bin/qemu-img"
)");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_TRUE(c->vm.enabled());
  EXPECT_EQ(c->vm.image_dir, "/var/lib/appvirt/images/full/current");
  EXPECT_EQ(c->vm.capacity, 3);
  EXPECT_EQ(c->vm.accelerator, "tcg");
  EXPECT_EQ(c->vm.memory_mib, 2048u);
  EXPECT_EQ(c->vm.vcpus, 2);
  EXPECT_EQ(c->vm.ready_timeout, 90000ms);
  EXPECT_EQ(c->vm.power_off_grace, 5000ms);
  EXPECT_EQ(c->vm.qemu, "/opt/qemu/bin/qemu-system-x86_64");
  EXPECT_EQ(c->vm.qemu_img, "/opt/qemu/bin/qemu-img");
}

TEST(VmConfigTest, ErrorsNameFileLineAndKey) {
  auto c = parse("[vm]\nimage_dir = \"relative/dir\"\ncapacity = -1\naccelerator = \"hvf\"\n"
                 "memory_mib = 16\nvcpus = 0\nbogus = 1\n");
  ASSERT_FALSE(c);
  const std::string e = c.error().str();
  EXPECT_NE(e.find("hostd.toml:2: vm.image_dir"), std::string::npos) << e;
  EXPECT_NE(e.find("hostd.toml:3: vm.capacity"), std::string::npos) << e;
  EXPECT_NE(e.find("hostd.toml:4: vm.accelerator: must be one of auto, tcg, kvm"), std::string::npos) << e;
  EXPECT_NE(e.find("hostd.toml:5: vm.memory_mib"), std::string::npos) << e;
  EXPECT_NE(e.find("hostd.toml:6: vm.vcpus"), std::string::npos) << e;
  EXPECT_NE(e.find("vm.bogus"), std::string::npos) << e;
}

TEST(VmLaunchRequestTest, IsolationIsContainerOrVm) {
  nlohmann::json base = {{"user", "alice"}, {"app_id", "a"}, {"command", {"/bin/true"}}};
  auto plain = launch_request_from_json(base);
  ASSERT_TRUE(plain) << plain.error().str();
  EXPECT_EQ(plain->isolation, "container");
  base["isolation"] = "vm";
  auto vm = launch_request_from_json(base);
  ASSERT_TRUE(vm) << vm.error().str();
  EXPECT_EQ(vm->isolation, "vm");
  for (nlohmann::json bad : {nlohmann::json("VM"), nlohmann::json(1), nlohmann::json("kvm")}) {
    base["isolation"] = bad;
    auto r = launch_request_from_json(base);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().str().find("isolation"), std::string::npos);
  }
}

TEST(VmSessionStateTest, IsolationAndRecordArePersisted) {
  Session s;
  s.id = "abc";
  s.user = "alice";
  s.app_id = "desk";
  s.command = {"/usr/bin/xterm"};
  s.isolation = "vm";
  s.tcp_port = 40123;
  s.state = SessionState::running;
  s.vm = {{"session_id", "abc"}, {"pid", 42}, {"start_time", 7}, {"session_dir", "/x"},
          {"host_port", 40123}, {"accel", "tcg"}};
  auto back = session_from_state(session_to_state(s));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(back->is_vm());
  EXPECT_EQ(back->vm, s.vm);
  auto api = session_to_api(s);
  EXPECT_EQ(api["isolation"], "vm");
  EXPECT_TRUE(api["endpoint"]["unix"].is_null());
  EXPECT_EQ(api["endpoint"]["tcp"], "127.0.0.1:40123");
  // Records of a hostd before VM sessions: containers.
  auto old = session_to_state(s);
  old.erase("isolation");
  old.erase("vm");
  auto container = session_from_state(old);
  ASSERT_TRUE(container);
  EXPECT_FALSE(container->is_vm());
  old["isolation"] = "jail";
  EXPECT_FALSE(session_from_state(old));
}

class VmSessionManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hostd-vm-test-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    config_.state_dir = root_ + "/state";
    config_.runtime_dir = root_ + "/run";
    bool root = ::geteuid() == 0;
    uid_t u = root ? 1001 : ::geteuid();
    gid_t g = root ? 1001 : ::getegid();
    config_.min_uid = std::min<uid_t>(1000, u);
    users_.users["alice"] = {"alice", u, g, {g}, root_ + "/home/alice"};
    store_ = std::make_unique<SessionStore>(config_.state_dir);
    ASSERT_TRUE(store_->init());
    reaper_ = std::make_unique<ChildReaper>(io_.get_executor());
    reaper_->start();
  }

  void TearDown() override {
    if (manager_) manager_->terminate_all("test-end");
    manager_.reset();
    reaper_->stop();
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    fs::remove_all(root_);
  }

  // A golden image of dummy files and a qemu-img that makes the overlay file: enough for
  // everything up to QEMU's start. `qemu_script` plays QEMU.
  void configure_vms(const std::string& qemu_script) {
    const std::string img = root_ + "/image";
    fs::create_directories(img);
    for (const char* f : {"vmlinuz", "initrd.img", "rootfs.qcow2"}) std::ofstream(img + "/" + f) << "x";
    std::ofstream(img + "/manifest.json") << R"({"cmdline": "console=ttyS0"})";
    write_script(root_ + "/qemu-img", "#!/bin/bash\ntouch \"${@: -1}\"\n");
    write_script(root_ + "/qemu", qemu_script);
    config_.vm.image_dir = img;
    config_.vm.accelerator = "tcg";
    config_.vm.capacity = 1;
    config_.vm.qemu = root_ + "/qemu";
    config_.vm.qemu_img = root_ + "/qemu-img";
  }

  static void write_script(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0755);
  }

  void make_manager() {
    displays_ = std::make_unique<DisplayAllocator>(500, 502, [] { return std::set<int>{}; });
    SessionManagerDeps deps{users_, sandbox_, cgroups_, rdp_, clock_, *store_, *displays_,
                            reaper_.get()};
    manager_ = std::make_unique<SessionManager>(io_.get_executor(), config_, deps);
  }

  ApiResult<LaunchResult> launch(LaunchRequest req) {
    std::optional<ApiResult<LaunchResult>> out;
    asio::co_spawn(io_, manager_->launch(std::move(req)),
                   [&](std::exception_ptr, ApiResult<LaunchResult> r) { out = std::move(r); });
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!out && std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_for(20ms);
    }
    if (!out) return api_error(599, "launch did not complete");
    return std::move(*out);
  }

  static LaunchRequest vm_req() {
    LaunchRequest r;
    r.user = "alice";
    r.app_id = "desk";
    r.command = {"/usr/local/bin/appvirt-testpattern"};
    r.isolation = "vm";
    return r;
  }

  std::string root_;
  HostdConfig config_;
  asio::io_context io_;
  testing::FakeUserDb users_;
  testing::FakeCgroups cgroups_;
  testing::FakeSandbox sandbox_{cgroups_, "/fake/Xvfb"};
  testing::FakeRdp rdp_;
  testing::FakeClock clock_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<DisplayAllocator> displays_;
  std::unique_ptr<ChildReaper> reaper_;
  std::unique_ptr<SessionManager> manager_;
};

TEST_F(VmSessionManagerTest, WithoutVmConfigAVmLaunchIsRefused) {
  make_manager();
  ASSERT_TRUE(manager_->init_vms());
  EXPECT_EQ(manager_->isolation_offered(), std::vector<std::string>{"container"});
  EXPECT_TRUE(manager_->vm_health().is_null());
  auto r = launch(vm_req());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_TRUE(sandbox_.creates.empty()) << "no container for a VM launch";
}

TEST_F(VmSessionManagerTest, MissingImageFailsInitNamingTheKey) {
  config_.vm.image_dir = root_ + "/no-such-image";
  make_manager();
  auto r = manager_->init_vms();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("vm.image_dir"), std::string::npos) << r.error().str();
}

TEST_F(VmSessionManagerTest, HealthAndIsolationWhenConfigured) {
  configure_vms("#!/bin/sh\nexit 1\n");
  make_manager();
  ASSERT_TRUE(manager_->init_vms());
  EXPECT_EQ(manager_->isolation_offered(), (std::vector<std::string>{"container", "vm"}));
  auto h = manager_->vm_health();
  EXPECT_EQ(h["capacity"], 1);
  EXPECT_EQ(h["sessions"], 0);
  EXPECT_EQ(h["accelerator"], "tcg");
}

TEST_F(VmSessionManagerTest, TooLittleMemoryIsRefusedBeforeAnythingStarts) {
  configure_vms("#!/bin/sh\nexit 1\n");
  make_manager();
  ASSERT_TRUE(manager_->init_vms());
  LaunchRequest r = vm_req();
  r.limits.memory_max = 100ull << 20;
  auto out = launch(r);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().status, 400);
  EXPECT_NE(out.error().message.find("memory_max"), std::string::npos) << out.error().message;
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_TRUE(fs::is_empty(config_.state_dir / "vm"));
}

TEST_F(VmSessionManagerTest, QemuDyingAtOnceFailsOnlyThatLaunchAndLeavesNothing) {
  configure_vms("#!/bin/sh\necho 'qemu: could not start' >&2\nexit 1\n");
  make_manager();
  ASSERT_TRUE(manager_->init_vms());
  auto out = launch(vm_req());
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().status, 500);
  EXPECT_NE(out.error().message.find("start VM"), std::string::npos) << out.error().message;
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_EQ(manager_->active_vm_sessions(), 0u);
  EXPECT_TRUE(fs::is_empty(config_.state_dir / "vm")) << "session dir left";
  EXPECT_TRUE(fs::is_empty(config_.state_dir / "sessions")) << "state or secret left";
  EXPECT_TRUE(sandbox_.creates.empty());
  // The host still launches (capacity 1 is free again): the same failure, not a 503.
  auto again = launch(vm_req());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().status, 500);
}

// The guest's relay (ages) stamped with the host's clock gives what a container endpoint writes,
// and the same timeout verdicts follow from it.
TEST(VmActivityTest, AgesBecomeHostTimesAndDriveTheVerdicts) {
  const int64_t now = 1'000'000;
  EndpointActivity a = activity_from_agent({0, 4'000, -1}, now);
  EXPECT_EQ(a.clients, 0);
  EXPECT_EQ(a.since_ms, 996'000);
  EXPECT_EQ(a.last_input_ms, 0);  // no input yet
  EXPECT_EQ(timeout_verdict(a, {0, 5}, now).reason, "");
  EXPECT_EQ(timeout_verdict(a, {0, 5}, now).next_check_ms, 1'001'000);
  EXPECT_EQ(timeout_verdict(a, {0, 4}, now).reason, "disconnect-timeout");

  EndpointActivity b = activity_from_agent({1, 60'000, 2'000}, now);
  EXPECT_EQ(b.last_input_ms, 998'000);
  EXPECT_EQ(timeout_verdict(b, {3, 0}, now).reason, "");
  EXPECT_EQ(timeout_verdict(b, {2, 0}, now).reason, "idle-timeout");
  // An input "just now" is still an input (0 would mean none).
  EXPECT_GT(activity_from_agent({1, 0, 0}, 0).last_input_ms, 0);
  // Ages longer than this host's monotonic clock clamp to its start.
  EXPECT_EQ(activity_from_agent({1, 5'000, 5'000}, 1'000).since_ms, 0);
}

}  // namespace
}  // namespace appvirt::hostd
