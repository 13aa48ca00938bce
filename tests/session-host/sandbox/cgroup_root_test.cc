// The detected cgroup driver against this machine's real hierarchy (root). Every group lives
// under a random top-level name and is killed and removed in TearDown.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "session-host/sandbox/cgroup.h"
#include "tests/session-host/sandbox/root_test_support.h"

namespace appvirt::sandbox {
namespace {

using namespace testing;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

struct CgroupRootTest : ::testing::Test {
  std::unique_ptr<CgroupDriver> driver;
  std::string top = "avt-cgtest-" + random_suffix(8);
  std::vector<pid_t> children;

  void SetUp() override {
    auto d = CgroupDriver::detect(linux_sys());
    ASSERT_TRUE(d) << d.error().str();
    driver = std::move(*d);
  }
  void TearDown() override {
    if (driver) {
      auto k = driver->kill_all(top);
      EXPECT_TRUE(k) << k.error().str();
      auto r = driver->remove(top);
      EXPECT_TRUE(r) << r.error().str();
      EXPECT_FALSE(driver->exists(top));
    }
    for (pid_t pid : children) ::waitpid(pid, nullptr, WNOHANG);
  }

  // A child process that sleeps (bounded) until killed.
  pid_t spawn_sleeper() {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(60);
      for (;;) ::pause();
    }
    children.push_back(pid);
    return pid;
  }

  std::string v1(const std::string& controller, const std::string& rel) {
    return driver->root() + "/" + controller + "/" + top + "/" + rel;
  }
  std::string v2(const std::string& rel) { return driver->root() + "/" + top + "/" + rel; }
};

TEST_F(CgroupRootTest, DetectsThisMachine) {
  bool pure_v2 = std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers");
  EXPECT_EQ(driver->version(), pure_v2 ? CgroupVersion::v2 : CgroupVersion::v1);
}

TEST_F(CgroupRootTest, LimitsLandInTheKernelAndChangeLive) {
  ASSERT_TRUE(driver->create(top + "/u/s-1"));
  Limits l;
  l.memory_max = 64ull << 20;
  l.cpu_weight = 200;
  l.cpu_max_percent = 50;
  l.pids_max = 10;
  auto r = driver->set_limits(top + "/u", l);
  ASSERT_TRUE(r) << r.error().str();
  pid_t child = spawn_sleeper();
  ASSERT_TRUE(driver->add_proc(top + "/u/s-1", child));
  if (driver->version() == CgroupVersion::v1) {
    EXPECT_EQ(read_text(v1("memory", "u/memory.limit_in_bytes")), "67108864");
    if (std::filesystem::exists(v1("memory", "u/memory.memsw.limit_in_bytes"))) {
      EXPECT_EQ(read_text(v1("memory", "u/memory.memsw.limit_in_bytes")), "67108864");
    }
    EXPECT_EQ(read_text(v1("memory", "u/memory.use_hierarchy")), "1");
    EXPECT_EQ(read_text(v1("cpu", "u/cpu.shares")), "2048");
    EXPECT_EQ(read_text(v1("cpu", "u/cpu.cfs_quota_us")), "50000");
    EXPECT_EQ(read_text(v1("pids", "u/pids.max")), "10");
  } else {
    EXPECT_EQ(read_text(v2("u/memory.max")), "67108864");
    EXPECT_EQ(read_text(v2("u/cpu.weight")), "200");
    EXPECT_EQ(read_text(v2("u/cpu.max")), "50000 100000");
    EXPECT_EQ(read_text(v2("u/pids.max")), "10");
  }
  // Live change on a group with a running process, raising memory past the old memsw.
  l.memory_max = 256ull << 20;
  l.pids_max = 20;
  l.cpu_max_percent.reset();
  r = driver->set_limits(top + "/u", l);
  ASSERT_TRUE(r) << r.error().str();
  if (driver->version() == CgroupVersion::v1) {
    EXPECT_EQ(read_text(v1("memory", "u/memory.limit_in_bytes")), "268435456");
    EXPECT_EQ(read_text(v1("pids", "u/pids.max")), "20");
    EXPECT_EQ(read_text(v1("cpu", "u/cpu.cfs_quota_us")), "-1");
  } else {
    EXPECT_EQ(read_text(v2("u/memory.max")), "268435456");
    EXPECT_EQ(read_text(v2("u/pids.max")), "20");
  }
  EXPECT_TRUE(process_alive(child));
}

TEST_F(CgroupRootTest, ProcsStatsKillAllRemove) {
  ASSERT_TRUE(driver->create(top + "/u/init"));
  ASSERT_TRUE(driver->create(top + "/u/s-1"));
  pid_t a = spawn_sleeper(), b = spawn_sleeper();
  ASSERT_TRUE(driver->add_proc(top + "/u/init", a));
  ASSERT_TRUE(driver->add_proc(top + "/u/s-1", b));
  auto pids = driver->procs(top + "/u");
  ASSERT_TRUE(pids) << pids.error().str();
  std::sort(pids->begin(), pids->end());
  EXPECT_EQ(*pids, (std::vector<pid_t>{std::min(a, b), std::max(a, b)}));
  auto s = driver->stats(top + "/u");
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_EQ(s->pids_current, 2u);
  EXPECT_GT(s->memory_current, 0u);
  EXPECT_EQ(s->oom_kills, 0u);

  auto k = driver->kill_all(top + "/u");
  ASSERT_TRUE(k) << k.error().str();
  for (pid_t pid : {a, b}) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
  EXPECT_TRUE(driver->procs(top + "/u")->empty());
  auto r = driver->remove(top + "/u");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(driver->exists(top + "/u"));
  EXPECT_FALSE(driver->exists(top + "/u/s-1"));
  if (driver->version() == CgroupVersion::v1) {
    for (const std::string& c : cgroup_v1_controllers()) {
      EXPECT_FALSE(std::filesystem::exists(v1(c, "u"))) << c;
    }
  }
}

TEST_F(CgroupRootTest, RemoveRefusesABusyGroup) {
  ASSERT_TRUE(driver->create(top + "/u"));
  pid_t a = spawn_sleeper();
  ASSERT_TRUE(driver->add_proc(top + "/u", a));
  auto r = driver->remove(top + "/u");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EBUSY);
  EXPECT_TRUE(process_alive(a));
}

}  // namespace
}  // namespace appvirt::sandbox
