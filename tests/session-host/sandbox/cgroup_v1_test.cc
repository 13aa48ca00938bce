// The cgroup v1 driver against a fake per-controller tree in a temporary directory.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/session-host/sandbox/fake_cgroup_tree.h"

namespace appvirt::sandbox {
namespace {

using testing::FakeCgroupTree;
using testing::get;
using testing::put;

struct CgroupV1Test : ::testing::Test {
  FakeCgroupTree tree{FakeCgroupTree::Kind::v1};
  std::unique_ptr<CgroupDriver> driver = make_cgroup_v1(tree, tree.root());

  std::string file(const std::string& controller, const std::string& rel) {
    return tree.root() + "/" + controller + "/" + rel;
  }
};

TEST_F(CgroupV1Test, DetectFindsV1) {
  auto d = CgroupDriver::detect(tree, tree.root());
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ((*d)->version(), CgroupVersion::v1);
}

TEST_F(CgroupV1Test, CreateMakesTheGroupInEveryHierarchy) {
  ASSERT_TRUE(driver->create("appvirt/u-alice/s-1"));
  for (const std::string& c : cgroup_v1_controllers()) {
    EXPECT_TRUE(std::filesystem::is_directory(file(c, "appvirt/u-alice/s-1"))) << c;
  }
  EXPECT_TRUE(driver->exists("appvirt/u-alice/s-1"));
  EXPECT_FALSE(driver->exists("appvirt/u-bob"));
  // Every level, so a session's memory counts against the user's limit.
  EXPECT_EQ(get(file("memory", "appvirt/memory.use_hierarchy")), "1");
  EXPECT_EQ(get(file("memory", "appvirt/u-alice/memory.use_hierarchy")), "1");
  ASSERT_TRUE(driver->create("appvirt/u-alice/s-1")) << "idempotent";
}

TEST_F(CgroupV1Test, SetLimitsWritesEveryControllerAndLiftsThemAgain) {
  ASSERT_TRUE(driver->create("u"));
  Limits l;
  l.memory_max = 512ull << 20;
  l.cpu_weight = 200;
  l.cpu_max_percent = 150;
  l.pids_max = 64;
  auto r = driver->set_limits("u", l);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("memory", "u/memory.limit_in_bytes")), "536870912");
  EXPECT_EQ(get(file("memory", "u/memory.memsw.limit_in_bytes")), "536870912") << "no swap bypass";
  EXPECT_EQ(get(file("cpu", "u/cpu.shares")), "2048");
  EXPECT_EQ(get(file("cpu", "u/cpu.cfs_period_us")), "100000");
  EXPECT_EQ(get(file("cpu", "u/cpu.cfs_quota_us")), "150000");
  EXPECT_EQ(get(file("pids", "u/pids.max")), "64");

  // Raising memory must raise memsw first (the fake enforces memory <= memsw like the kernel).
  l.memory_max = 1ull << 30;
  r = driver->set_limits("u", l);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("memory", "u/memory.limit_in_bytes")), "1073741824");
  l.memory_max = 256ull << 20;
  r = driver->set_limits("u", l);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("memory", "u/memory.memsw.limit_in_bytes")), "268435456");

  r = driver->set_limits("u", Limits{});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("memory", "u/memory.limit_in_bytes")), "-1");
  EXPECT_EQ(get(file("memory", "u/memory.memsw.limit_in_bytes")), "-1");
  EXPECT_EQ(get(file("cpu", "u/cpu.shares")), "1024");
  EXPECT_EQ(get(file("cpu", "u/cpu.cfs_quota_us")), "-1");
  EXPECT_EQ(get(file("pids", "u/pids.max")), "max");
}

TEST_F(CgroupV1Test, WeightToShares) {
  EXPECT_EQ(cpu_weight_to_shares(100), 1024u);
  EXPECT_EQ(cpu_weight_to_shares(1), 10u);
  EXPECT_EQ(cpu_weight_to_shares(10000), 102400u);
}

TEST_F(CgroupV1Test, AddProcAndProcsCoverTheSubtree) {
  ASSERT_TRUE(driver->create("u/init"));
  ASSERT_TRUE(driver->create("u/s-1"));
  ASSERT_TRUE(driver->add_proc("u/init", 101));
  ASSERT_TRUE(driver->add_proc("u/s-1", 202));
  for (const std::string& c : cgroup_v1_controllers()) {
    EXPECT_EQ(get(file(c, "u/init/cgroup.procs")), "101\n") << c;
  }
  // A stray in one hierarchy only still counts.
  tree.add_pid(file("memory", "u/s-1"), 303);
  auto pids = driver->procs("u");
  ASSERT_TRUE(pids);
  EXPECT_EQ(*pids, (std::vector<pid_t>{101, 202, 303}));
}

TEST_F(CgroupV1Test, KillAllFreezesKillsThawsAndWaits) {
  ASSERT_TRUE(driver->create("u/s-1"));
  ASSERT_TRUE(driver->add_proc("u", 11));
  ASSERT_TRUE(driver->add_proc("u/s-1", 12));
  auto r = driver->kill_all("u");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(tree.kills.size(), 2u);
  for (auto [pid, sig] : tree.kills) EXPECT_EQ(sig, SIGKILL) << pid;
  for (const std::string& state : tree.freezer_at_kill) EXPECT_EQ(state, "FROZEN");
  EXPECT_EQ(get(file("freezer", "u/freezer.state")), "THAWED");
  EXPECT_TRUE(driver->procs("u")->empty());
}

TEST_F(CgroupV1Test, KillAllGivesUpAfterTheTimeout) {
  ASSERT_TRUE(driver->create("u"));
  ASSERT_TRUE(driver->add_proc("u", 13));
  tree.immortal.insert(13);
  auto r = driver->kill_all("u", std::chrono::milliseconds(50));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ETIMEDOUT);
  EXPECT_NE(r.error().message.find("1 processes left"), std::string::npos);
  EXPECT_EQ(get(file("freezer", "u/freezer.state")), "THAWED") << "never left frozen";
}

TEST_F(CgroupV1Test, RemoveGoesChildrenFirstAndIsIdempotent) {
  ASSERT_TRUE(driver->create("u/s-1/deep"));
  ASSERT_TRUE(driver->create("u/s-2"));
  auto r = driver->remove("u");
  ASSERT_TRUE(r) << r.error().str();
  for (const std::string& c : cgroup_v1_controllers()) {
    EXPECT_FALSE(std::filesystem::exists(file(c, "u"))) << c;
  }
  EXPECT_TRUE(driver->remove("u")) << "already gone is fine";
}

TEST_F(CgroupV1Test, RemoveRefusesAGroupWithProcesses) {
  ASSERT_TRUE(driver->create("u/s-1"));
  ASSERT_TRUE(driver->add_proc("u/s-1", 77));
  auto r = driver->remove("u");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EBUSY);
}

TEST_F(CgroupV1Test, StatsSumOomKillsOverTheSubtree) {
  ASSERT_TRUE(driver->create("u/s-1"));
  put(file("memory", "u/memory.usage_in_bytes"), "4096\n");
  put(file("pids", "u/pids.current"), "7\n");
  put(file("cpuacct", "u/cpuacct.usage"), "5000000\n");
  put(file("memory", "u/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  // v1 counts a kill only in the victim's group.
  put(file("memory", "u/s-1/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  auto s = driver->stats("u");
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_EQ(s->memory_current, 4096u);
  EXPECT_EQ(s->pids_current, 7u);
  EXPECT_EQ(s->cpu_usage_usec, 5000u);
  EXPECT_EQ(s->oom_kills, 3u);
  EXPECT_EQ(driver->stats("u/s-1")->oom_kills, 2u);
}

TEST_F(CgroupV1Test, BadPathsAreRejected) {
  for (const char* bad : {"../x", "/u", "u/../../x", "", "u//v"}) {
    EXPECT_FALSE(driver->create(bad)) << bad;
    EXPECT_FALSE(driver->remove(bad)) << bad;
    EXPECT_FALSE(driver->kill_all(bad)) << bad;
  }
  EXPECT_FALSE(std::filesystem::exists(tree.root() + "/x"));
}

TEST(CgroupDetect, NothingMountedIsAnError) {
  LinuxSys sys;
  auto d = CgroupDriver::detect(sys, "/nonexistent-cgroup-root");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("neither"), std::string::npos);
}

}  // namespace
}  // namespace appvirt::sandbox
