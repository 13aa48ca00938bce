// VM placement (docs/vm.md, docs/broker.md): hosts learn to offer VMs from hostd's health, VM
// sessions fill a host's VM capacity and containers its container capacity, a policy with
// isolation = "vm" gets a VM, and overflow_to_vm turns "containers full" into a VM session.
#include <gtest/gtest.h>

#include <filesystem>

#include "broker/broker_service.h"
#include "broker/host_registry.h"
#include "broker/sqlite_store.h"
#include "policies/policy_file.h"
#include "tests/broker/fakes.h"

namespace appvirt::broker {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

HostRecord host(const std::string& name, int capacity) {
  HostRecord h;
  h.name = name;
  h.socket = "/run/" + name + ".sock";
  h.capacity = capacity;
  return h;
}

TEST(VmPlacementRegistryTest, VmsFillVmCapacityContainersTheirOwn) {
  HostRegistry r(std::chrono::seconds(30));
  r.add_configured(host("a", 2));
  r.add_configured(host("b", 1));
  auto now = Clock::now();
  r.probe_ok("a", 0, now);
  r.probe_ok("b", 0, now);
  EXPECT_FALSE(r.pick(Isolation::vm, {})) << "no host said it offers VMs";
  r.vm_report("b", "", 0, 0);
  EXPECT_FALSE(r.pick(Isolation::vm, {})) << "an empty isolation list changes nothing";
  r.vm_report("b", "container,vm", 1, 0);
  auto vm = r.pick(Isolation::vm, {});
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->name, "b");
  r.placed("b", Isolation::vm);
  EXPECT_FALSE(r.pick(Isolation::vm, {{"b", 1}})) << "VM capacity 1 is used";
  // The VM does not count against b's container capacity (1): a container still fits there.
  r.probe_failed("a", "down for this check");
  auto c = r.pick(Isolation::container, {{"b", 1}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "b");
  EXPECT_FALSE(r.pick(Isolation::container, {{"b", 2}})) << "VM + one container: full";
  // The next health report is the truth again.
  r.probe_ok("b", 0, now);
  r.vm_report("b", "container,vm", 1, 0);
  EXPECT_TRUE(r.pick(Isolation::vm, {}));
}

class VmPlacementServiceTest : public ::testing::Test {
 protected:
  VmPlacementServiceTest() : pool_(1) {
    char tmpl[] = "/tmp/broker-vm-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_.hosts.push_back({"local", "/run/fake-hostd.sock", 1});
    config_.gateway_address = "gw.test:3389";
    store_ = std::move(*SqliteStore::open(dir_ + "/broker.db"));
  }
  ~VmPlacementServiceTest() override {
    pool_.join();
    fs::remove_all(dir_);
  }

  void start(const std::string& policy_toml) {
    auto set = policies::parse_policy_toml(policy_toml, "policies.toml");
    ASSERT_TRUE(set) << set.error().report();
    config_.policies = *set;
    BrokerDeps deps{*store_, auth_, users_, host_, pool_, [this] { return now_ms_; }};
    std::vector<App> apps;
    for (const char* id : {"one", "two"}) {
      App a;
      a.id = id;
      a.name = id;
      a.command = {"/usr/bin/xterm"};
      a.users = {"*"};
      apps.push_back(a);
    }
    svc_ = std::make_unique<BrokerService>(io_.get_executor(), config_, Catalog(apps), deps);
    testing::run_coro(io_, poll());
  }
  boost::asio::awaitable<bool> poll() {
    co_await svc_->poll_once();
    co_return true;
  }
  LaunchOutcome launch(const std::string& user, const std::string& app) {
    return testing::run_coro(io_, svc_->launch(user, {user}, app, 0, 0, "test"));
  }

  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_;
  BrokerConfig config_;
  testing::FakeAuthenticator auth_;
  testing::FakeUserDirectory users_;
  testing::FakeHostClient host_;
  std::unique_ptr<SqliteStore> store_;
  int64_t now_ms_ = 1'700'000'000'000;
  std::unique_ptr<BrokerService> svc_;
};

TEST_F(VmPlacementServiceTest, PolicyVmAsksTheHostForAVmOnlyWhereVmsAreOffered) {
  start("[users.bob]\nisolation = \"vm\"\n");
  auto refused = launch("bob", "one");
  EXPECT_EQ(refused.status, 503u) << "the host has not said it offers VMs: " << refused.error;
  host_.isolation = "container,vm";
  host_.vm_capacity = 1;
  testing::run_coro(io_, poll());
  auto ok = launch("bob", "one");
  ASSERT_EQ(ok.status, 200u) << ok.error;
  EXPECT_EQ(host_.last_launch.isolation, "vm");
  auto alice = launch("alice", "one");
  ASSERT_EQ(alice.status, 200u) << alice.error;
  EXPECT_EQ(host_.last_launch.isolation, "container") << "alice's policy is the default";
  auto full = launch("bob", "two");
  EXPECT_EQ(full.status, 503u) << "VM capacity 1 is taken: " << full.error;
}

TEST_F(VmPlacementServiceTest, OverflowToVmWhenContainersAreFull) {
  start("[users.carol]\noverflow_to_vm = true\n");
  host_.isolation = "container,vm";
  host_.vm_capacity = 1;
  testing::run_coro(io_, poll());
  ASSERT_EQ(launch("alice", "one").status, 200u);  // the one container slot
  EXPECT_EQ(host_.last_launch.isolation, "container");
  auto bob = launch("bob", "one");
  EXPECT_EQ(bob.status, 503u) << "no overflow in bob's policy";
  auto carol = launch("carol", "one");
  ASSERT_EQ(carol.status, 200u) << carol.error;
  EXPECT_EQ(host_.last_launch.isolation, "vm") << "containers full: carol overflows to a VM";
}

}  // namespace
}  // namespace appvirt::broker
