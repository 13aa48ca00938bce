// The ordered container setup, through the recording fake Sys: no root, nothing touched.
#include <gtest/gtest.h>
#include <signal.h>

#include "session-host/sandbox/container.h"
#include "session-host/sandbox/exec.h"
#include "session-host/sandbox/privileges.h"
#include "tests/session-host/sandbox/fake_sys.h"

namespace appvirt::sandbox {
namespace {

using testing::FakeSys;

CreateRequest sample_request() {
  CreateRequest req;
  req.user = "alice";
  req.id = Identity{1001, 1001, {1001, 2000}};
  req.home = "/home/alice";
  req.runtime_dir = "/run/appvirt/u/alice";
  req.cgroup = "appvirt/u-alice";
  req.limits.memory_max = 512u << 20;
  req.limits.pids_max = 100;
  return req;
}

ContainerPlan sample_plan() {
  auto plan = plan_container(sample_request());
  EXPECT_TRUE(plan) << plan.error().str();
  return *plan;
}

// /proc/<pid>/stat with start time 777 in field 22 and a comm holding ") (" to be nasty.
std::string fake_stat(pid_t pid) {
  std::string s = std::to_string(pid) + " (a) (b) S";
  for (int field = 4; field <= 21; ++field) s += " " + std::to_string(field);
  return s + " 777 23 24\n";
}

TEST(ContainerChildSteps, RunInTheDocumentedOrder) {
  FakeSys sys;
  sys.messages = {"go"};
  ContainerPlan plan = sample_plan();
  auto r = run_child_steps(sys, plan, 3);
  ASSERT_TRUE(r) << r.error().str();

  const std::string root = plan.rootfs.new_root;
  EXPECT_EQ(sys.index_of("recv_msg"), 0) << "the child waits for the parent's go first";
  EXPECT_EQ(sys.index_of("unshare CLONE_NEWCGROUP"), 1) << "cgroup ns right after joining";
  int private_mounts = sys.index_of("mount  / ");
  int root_tmpfs = sys.index_of("mount tmpfs " + root + " tmpfs");
  int usr = sys.index_of("mount /usr " + root + "/usr");
  int proc = sys.index_of("mount proc " + root + "/proc proc");
  int pivot = sys.index_of("pivot_root . .");
  int detach = sys.index_of("umount2 .");
  int lo = sys.index_of("link_up lo");
  ASSERT_GE(private_mounts, 0);
  EXPECT_LT(sys.index_of("sethostname appvirt"), private_mounts);
  EXPECT_LT(private_mounts, root_tmpfs) << "propagation private before anything is mounted";
  EXPECT_LT(root_tmpfs, usr);
  EXPECT_LT(usr, proc);
  // pivot_root after every bind and mount into the new root.
  for (size_t i = 0; i < sys.calls.size(); ++i) {
    if (sys.calls[i].find(" " + root) != std::string::npos && sys.calls[i].rfind("mount", 0) == 0) {
      EXPECT_LT(static_cast<int>(i), pivot) << sys.calls[i];
    }
  }
  EXPECT_EQ(detach, pivot + 1) << "old root detached right after pivot_root";
  EXPECT_GT(sys.last_index_of("mount  /  MS_RDONLY"), detach) << "read-only remount of / follows";
  EXPECT_GT(lo, pivot);
  // Identity after every mount, seccomp strictly last.
  int uid = sys.index_of("setresuid 1001");
  EXPECT_GT(uid, sys.last_index_of("mount"));
  EXPECT_GT(uid, lo);
  EXPECT_LT(sys.index_of("setgroups 1001 2000"), sys.index_of("setresgid 1001"));
  EXPECT_LT(sys.index_of("setresgid 1001"), sys.index_of("drop_bounding_caps"));
  EXPECT_LT(sys.index_of("drop_bounding_caps"), uid) << "bounding set needs CAP_SETPCAP";
  EXPECT_LT(uid, sys.index_of("clear_caps"));
  EXPECT_LT(sys.index_of("clear_caps"), sys.index_of("no_new_privs"));
  EXPECT_EQ(sys.index_of("no_new_privs") + 1, sys.index_of("seccomp"));
  EXPECT_EQ(sys.calls.back(), "seccomp");
}

TEST(ContainerChildSteps, BuildsTheRootFilesystem) {
  FakeSys sys;
  sys.messages = {"go"};
  ContainerPlan plan = sample_plan();
  ASSERT_TRUE(run_child_steps(sys, plan, 3));
  const std::string root = plan.rootfs.new_root;
  // Read-only binds: bind then a remount with MS_RDONLY on the same target.
  int usr_bind = sys.index_of("mount /usr " + root + "/usr  MS_BIND|MS_REC");
  ASSERT_GE(usr_bind, 0);
  EXPECT_EQ(sys.calls[usr_bind + 1],
            "mount  " + root + "/usr  MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND");
  EXPECT_GE(sys.index_of("symlink usr/bin " + root + "/bin"), 0) << "merged /usr: /bin symlink";
  EXPECT_GE(sys.index_of("create_file " + root + "/etc/passwd"), 0);
  EXPECT_EQ(sys.index_of("create_file " + root + "/etc/shadow"), -1);
  EXPECT_EQ(sys.index_of("mount /etc/shadow"), -1);
  EXPECT_EQ(sys.index_of("mount /etc/sudoers"), -1);
  EXPECT_GE(sys.index_of("mount /home/alice " + root + "/home/alice  MS_BIND|MS_REC"), 0);
  EXPECT_EQ(sys.index_of("mount /home " + root), -1) << "nothing else of /home";
  int tmp = sys.index_of("mount tmpfs " + root + "/tmp tmpfs");
  int x11 = sys.index_of("mount " + plan.rootfs.x11_dir + " " + root + "/tmp/.X11-unix");
  EXPECT_LT(tmp, x11);
  EXPECT_GE(sys.index_of("mount " + plan.rootfs.run_dir + " " + root + "/run/appvirt"), 0);
  for (const char* dev : {"null", "zero", "full", "random", "urandom", "tty"}) {
    EXPECT_GE(sys.index_of(std::string("mount /dev/") + dev + " " + root + "/dev/" + dev), 0)
        << dev;
  }
  EXPECT_EQ(sys.index_of("mount /dev/sda"), -1);
  EXPECT_GE(sys.index_of("mount tmpfs " + root + "/dev/shm tmpfs"), 0);
  EXPECT_GE(sys.index_of("mount devpts " + root + "/dev/pts devpts"), 0);
  EXPECT_GE(sys.index_of("symlink /proc/self/fd " + root + "/dev/fd"), 0);
}

TEST(ContainerChildSteps, StopAtTheFirstFailure) {
  FakeSys sys;
  sys.messages = {"go"};
  sys.fail_on["pivot_root"] = EINVAL;
  ContainerPlan plan = sample_plan();
  auto r = run_child_steps(sys, plan, 3);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("pivot_root"), std::string::npos);
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_EQ(sys.index_of("setresuid"), -1);
  EXPECT_EQ(sys.index_of("seccomp"), -1);
  EXPECT_EQ(sys.calls.back(), "pivot_root . .");
}

TEST(ContainerChildSteps, RefuseAnUnexpectedSyncMessage) {
  FakeSys sys;
  sys.messages = {"nope"};
  auto r = run_child_steps(sys, sample_plan(), 3);
  ASSERT_FALSE(r);
  EXPECT_EQ(sys.calls.size(), 1u) << "nothing done before the parent's go";
}

struct ParentFixture : ::testing::Test {
  FakeSys sys;
  ContainerPlan plan = sample_plan();
  std::unique_ptr<CgroupDriver> cgroups;

  void SetUp() override {
    sys.existing = {plan.req.home, "/cg/memory", "/cg/cpu", "/cg/pids", "/cg/freezer"};
    sys.files["/proc/4242/stat"] = fake_stat(4242);
    cgroups = make_cgroup_v1(sys, "/cg");
  }
};

TEST_F(ParentFixture, CgroupBeforeCloneChildJoinsBeforeGo) {
  sys.messages = {"ok"};
  auto created = create_container(sys, *cgroups, plan);
  ASSERT_TRUE(created) << created.error().str();
  EXPECT_EQ(created->init_pid, 4242);
  EXPECT_EQ(created->init_start_time, 777u);

  int mkdir_group = sys.index_of("mkdir /cg/memory/appvirt/u-alice");
  int limit = sys.index_of("write_file /cg/memory/appvirt/u-alice/memory.limit_in_bytes 536870912");
  int pids = sys.index_of("write_file /cg/pids/appvirt/u-alice/pids.max 100");
  int init_group = sys.index_of("mkdir /cg/memory/appvirt/u-alice/init");
  int clone = sys.index_of("clone CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWNET");
  int join = sys.index_of("write_file /cg/memory/appvirt/u-alice/init/cgroup.procs 4242");
  int go = sys.index_of("send_msg go");
  int ready = sys.index_of("recv_msg");
  ASSERT_GE(mkdir_group, 0);
  EXPECT_LT(mkdir_group, limit);
  EXPECT_LT(limit, clone) << "limits are in place before the child exists";
  EXPECT_LT(pids, clone);
  EXPECT_LT(init_group, clone);
  EXPECT_LT(clone, join);
  EXPECT_LT(join, go) << "the child runs nothing before it is in its cgroup";
  EXPECT_LT(go, ready);
  EXPECT_EQ(sys.index_of("kill"), -1);
  // The runtime dirs exist before anything else; x11 and run belong to the user.
  EXPECT_LT(sys.index_of("mkdir /run/appvirt/u/alice/x11"), mkdir_group);
  EXPECT_GE(sys.index_of("chown /run/appvirt/u/alice/x11 1001:1001"), 0);
  EXPECT_GE(sys.index_of("chown /run/appvirt/u/alice/root 0:0"), 0);
}

TEST_F(ParentFixture, ChildErrorKillsItAndRemovesTheGroups) {
  sys.messages = {"error:mount(/usr, ...): Permission denied"};
  auto created = create_container(sys, *cgroups, plan);
  ASSERT_FALSE(created);
  EXPECT_NE(created.error().message.find("mount(/usr"), std::string::npos)
      << created.error().message;
  int kill = sys.index_of("kill 4242 " + std::to_string(SIGKILL));
  ASSERT_GE(kill, 0);
  EXPECT_GT(sys.index_of("waitpid 4242"), kill);
}

TEST_F(ParentFixture, MissingHomeFailsBeforeAnyCgroup) {
  sys.existing = {"/cg/memory", "/cg/cpu", "/cg/pids", "/cg/freezer"};
  auto created = create_container(sys, *cgroups, plan);
  ASSERT_FALSE(created);
  EXPECT_NE(created.error().message.find("/home/alice"), std::string::npos);
  EXPECT_EQ(sys.index_of("mkdir /cg"), -1);
  EXPECT_EQ(sys.index_of("clone"), -1);
}

TEST(PrivilegeDrop, OneFunctionFixedOrder) {
  FakeSys sys;
  ASSERT_TRUE(drop_privileges(sys, Identity{1234, 1235, {}}));
  std::vector<std::string> want = {"setgroups 1235",     "setresgid 1235", "drop_bounding_caps",
                                   "clear_ambient_caps", "setresuid 1234", "clear_caps",
                                   "no_new_privs",       "seccomp"};
  EXPECT_EQ(sys.calls, want) << "no supplementary groups: only the primary one, not root's";
}

TEST(PrivilegeDrop, FailedUidChangeStopsBeforeSeccomp) {
  FakeSys sys;
  sys.fail_on["setresuid"] = EPERM;
  auto r = drop_privileges(sys, Identity{1234, 1235, {7}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EPERM);
  EXPECT_EQ(sys.index_of("no_new_privs"), -1);
  EXPECT_EQ(sys.index_of("seccomp"), -1);
}

TEST(ExecSteps, NamespacesJoinedMountLast) {
  std::vector<std::string> names;
  for (const auto& [name, type] : container_namespaces()) names.push_back(name);
  std::vector<std::string> want = {"cgroup", "ipc", "uts", "net", "pid", "mnt"};
  EXPECT_EQ(names, want);
}

TEST(ExecSteps, RefusesAProcessInTheHostNamespaces) {
  FakeSys sys;
  sys.links = {{"/proc/self/ns/pid", "pid:[1]"},
               {"/proc/99/ns/pid", "pid:[1]"},
               {"/proc/self/ns/mnt", "mnt:[2]"},
               {"/proc/99/ns/mnt", "mnt:[5]"}};
  ExecRequest req;
  req.init_pid = 99;
  auto r = check_container_init(sys, req);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a container init"), std::string::npos);
}

TEST(ExecSteps, RefusesAReusedPid) {
  FakeSys sys;
  sys.links = {{"/proc/self/ns/pid", "pid:[1]"},
               {"/proc/99/ns/pid", "pid:[3]"},
               {"/proc/self/ns/mnt", "mnt:[2]"},
               {"/proc/99/ns/mnt", "mnt:[5]"}};
  sys.files["/proc/99/stat"] = fake_stat(99);
  ExecRequest req;
  req.init_pid = 99;
  req.init_start_time = 777;
  EXPECT_TRUE(check_container_init(sys, req));
  req.init_start_time = 778;
  auto r = check_container_init(sys, req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ESRCH);
}

TEST(ExecSteps, OpensAndJoinsEveryNamespace) {
  FakeSys sys;
  auto ns = open_namespaces(sys, 77);
  ASSERT_TRUE(ns);
  ASSERT_TRUE(join_namespaces(sys, *ns));
  EXPECT_EQ(sys.index_of("open /proc/77/ns/cgroup"), 0);
  EXPECT_EQ(sys.count("setns"), 6);
  EXPECT_EQ(sys.calls.back(), "setns CLONE_NEWNS");
  EXPECT_LT(sys.last_index_of("open"), sys.index_of("setns")) << "all fds opened before joining";
}

TEST(ExecSteps, SessionGroupMustLieBelowTheContainer) {
  FakeSys sys;
  sys.files["/proc/99/cgroup"] =
      "9:name=systemd:/\n4:memory:/appvirt/u-alice/init\n1:cpu,cpuacct:/appvirt/u-alice/init\n"
      "0::/\n";
  auto group = container_cgroup_of(sys, 99, CgroupVersion::v1);
  ASSERT_TRUE(group) << group.error().str();
  EXPECT_EQ(*group, "appvirt/u-alice");
  ExecRequest req;
  req.init_pid = 99;
  for (const char* ok : {"appvirt/u-alice/s-1", "appvirt/u-alice/s-1/deeper"}) {
    req.cgroup = ok;
    EXPECT_TRUE(check_session_cgroup(sys, req, CgroupVersion::v1)) << ok;
  }
  for (const char* bad : {"appvirt/u-bob/s-1", "appvirt/u-alice", "appvirt/u-alice/init",
                          "appvirt/u-alicex/s-1", "other"}) {
    req.cgroup = bad;
    auto r = check_session_cgroup(sys, req, CgroupVersion::v1);
    EXPECT_FALSE(r) << bad;
  }
  sys.files["/proc/98/cgroup"] = "0::/appvirt/u-carol/init\n";
  EXPECT_EQ(*container_cgroup_of(sys, 98, CgroupVersion::v2), "appvirt/u-carol");
  sys.files["/proc/97/cgroup"] = "0::/\n";
  EXPECT_FALSE(container_cgroup_of(sys, 97, CgroupVersion::v2)) << "the root group is no container";
}

TEST(ProcessStartTime, ParsesField22AfterTheComm) {
  FakeSys sys;
  sys.files["/proc/5/stat"] = fake_stat(5);
  auto t = process_start_time(sys, 5);
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_EQ(*t, 777u);
  sys.files["/proc/6/stat"] = "6 (x) S 1 2";
  EXPECT_FALSE(process_start_time(sys, 6));
}

}  // namespace
}  // namespace appvirt::sandbox
