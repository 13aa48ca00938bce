// The cgroup v2 driver against a fake unified tree in a temporary directory.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/session-host/sandbox/fake_cgroup_tree.h"

namespace appvirt::sandbox {
namespace {

using testing::FakeCgroupTree;
using testing::get;
using testing::put;

struct CgroupV2Test : ::testing::Test {
  FakeCgroupTree tree{FakeCgroupTree::Kind::v2};
  std::unique_ptr<CgroupDriver> driver = make_cgroup_v2(tree, tree.root());

  std::string file(const std::string& rel) { return tree.root() + "/" + rel; }
};

TEST_F(CgroupV2Test, DetectFindsV2) {
  auto d = CgroupDriver::detect(tree, tree.root());
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ((*d)->version(), CgroupVersion::v2);
}

TEST_F(CgroupV2Test, CreateEnablesControllersOnTheWayDown) {
  auto r = driver->create("appvirt/u-alice/s-1");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("cgroup.subtree_control")), "cpu memory pids\n");
  EXPECT_EQ(get(file("appvirt/cgroup.subtree_control")), "cpu memory pids\n");
  EXPECT_EQ(get(file("appvirt/u-alice/cgroup.subtree_control")), "cpu memory pids\n");
  EXPECT_EQ(get(file("appvirt/u-alice/s-1/cgroup.subtree_control")), "") << "the leaf keeps none";
  EXPECT_EQ(get(file("appvirt/u-alice/s-1/cgroup.controllers")), "cpu memory pids\n");
  EXPECT_TRUE(driver->exists("appvirt/u-alice/s-1"));
  ASSERT_TRUE(driver->create("appvirt/u-alice/s-1")) << "idempotent";
}

TEST_F(CgroupV2Test, CreateOnlyEnablesWhatTheParentHas) {
  put(file("cgroup.controllers"), "cpu pids\n");
  auto r = driver->create("a/b");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("cgroup.subtree_control")), "cpu pids\n");
}

TEST_F(CgroupV2Test, CreateUnderAGroupWithProcessesExplainsWhy) {
  ASSERT_TRUE(driver->create("u"));
  ASSERT_TRUE(driver->add_proc("u", 55));
  auto r = driver->create("u/s-1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EBUSY);
  EXPECT_NE(r.error().message.find("for children of"), std::string::npos) << r.error().message;
}

TEST_F(CgroupV2Test, SetLimitsAndLiftThem) {
  ASSERT_TRUE(driver->create("u"));
  Limits l;
  l.memory_max = 512ull << 20;
  l.cpu_weight = 250;
  l.cpu_max_percent = 150;
  l.pids_max = 64;
  auto r = driver->set_limits("u", l);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("u/memory.max")), "536870912");
  EXPECT_EQ(get(file("u/memory.swap.max")), "0") << "no swap bypass";
  EXPECT_EQ(get(file("u/cpu.weight")), "250");
  EXPECT_EQ(get(file("u/cpu.max")), "150000 100000");
  EXPECT_EQ(get(file("u/pids.max")), "64");
  r = driver->set_limits("u", Limits{});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(get(file("u/memory.max")), "max");
  EXPECT_EQ(get(file("u/memory.swap.max")), "max");
  EXPECT_EQ(get(file("u/cpu.weight")), "100");
  EXPECT_EQ(get(file("u/cpu.max")), "max 100000");
  EXPECT_EQ(get(file("u/pids.max")), "max");
}

TEST_F(CgroupV2Test, SetLimitsOnAGroupWithoutControllersFails) {
  // Controllers reach a group only through its parent's subtree_control.
  std::filesystem::create_directory(file("raw"));
  put(file("raw/cgroup.procs"), "");
  auto r = driver->set_limits("raw", Limits{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().message.find("memory.max"), std::string::npos);
}

TEST_F(CgroupV2Test, KillAllUsesCgroupKill) {
  ASSERT_TRUE(driver->create("u/s-1"));
  ASSERT_TRUE(driver->create("u/init"));
  ASSERT_TRUE(driver->add_proc("u/s-1", 21));
  ASSERT_TRUE(driver->add_proc("u/init", 22));
  auto pids = driver->procs("u");
  ASSERT_TRUE(pids);
  EXPECT_EQ(pids->size(), 2u);
  auto r = driver->kill_all("u");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(tree.kills.size(), 2u);
  EXPECT_TRUE(driver->procs("u")->empty());
}

TEST(CgroupV2NoKill, KillAllFreezesWithoutCgroupKill) {
  FakeCgroupTree tree{FakeCgroupTree::Kind::v2, /*has_cgroup_kill=*/false};
  auto driver = make_cgroup_v2(tree, tree.root());
  ASSERT_TRUE(driver->create("u/s-1"));
  ASSERT_TRUE(driver->add_proc("u/s-1", 31));
  auto r = driver->kill_all("u");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(tree.kills.size(), 1u);
  EXPECT_EQ(tree.kills[0], (std::pair<pid_t, int>{31, SIGKILL}));
  EXPECT_EQ(get(tree.root() + "/u/cgroup.freeze"), "0") << "thawed again";
}

TEST_F(CgroupV2Test, KillAllTimesOut) {
  ASSERT_TRUE(driver->create("u"));
  ASSERT_TRUE(driver->add_proc("u", 41));
  tree.immortal.insert(41);
  auto r = driver->kill_all("u", std::chrono::milliseconds(50));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ETIMEDOUT);
}

TEST_F(CgroupV2Test, RemoveChildrenFirst) {
  ASSERT_TRUE(driver->create("u/s-1/x"));
  ASSERT_TRUE(driver->create("u/init"));
  auto r = driver->remove("u");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(std::filesystem::exists(file("u")));
  EXPECT_TRUE(driver->remove("u"));
}

TEST_F(CgroupV2Test, StatsReadTheV2Files) {
  ASSERT_TRUE(driver->create("u"));
  put(file("u/memory.current"), "8192\n");
  put(file("u/pids.current"), "3\n");
  put(file("u/memory.events"), "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n");
  put(file("u/cpu.stat"), "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n");
  auto s = driver->stats("u");
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_EQ(s->memory_current, 8192u);
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->oom_kills, 2u);
  EXPECT_EQ(s->cpu_usage_usec, 1234u);
}

}  // namespace
}  // namespace appvirt::sandbox
