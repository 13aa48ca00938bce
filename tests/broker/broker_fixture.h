#pragma once
// The fixture of the broker's e2e tests (header only: it uses the test's APPVIRT_* paths). In a
// fresh directory: a private PAM service, the groups staff and admins, the users alice (staff),
// bob (staff if asked) and ada (admins) with appvirt-testpattern in alice's and bob's homes, and
// the real hostd (--terminate-sessions-on-exit). A test writes <dir>/broker.toml in
// write_broker_config() (sock_ is hostd's socket); SetUp then starts the broker. TearDown removes
// everything, also after a failure. Needs root.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/broker/e2e_support.h"
#include "tests/session-host/hostd/hostd_process.h"
#include "tests/tools/test_support.h"
#include "tests/tools/test_users.h"

namespace appvirt::broker::e2e {

struct BrokerFixtureNames {
  std::string dir;     // /tmp/<dir>-XXXXXX
  std::string prefix;  // of the groups and users: <prefix>s, <prefix>adm, <prefix>a, b, c
  bool bob_is_staff = false;
};

class BrokerHostdTest : public ::testing::Test {
 protected:
  explicit BrokerHostdTest(BrokerFixtureNames names) : names_(std::move(names)) {}

  virtual void write_broker_config() = 0;

  void SetUp() override {
    auto dir = testing::make_session_test_dir(names_.dir);
    ASSERT_TRUE(dir) << dir.error().str();
    dir_ = *dir;
    pam_ = std::make_unique<TempPamService>(APPVIRT_PAM_FILE);
    ASSERT_TRUE(pam_->ok());
    staff_ = std::make_unique<TempGroup>(names_.prefix + "s");
    admins_ = std::make_unique<TempGroup>(names_.prefix + "adm");
    ASSERT_TRUE(staff_->ok() && admins_->ok());
    std::vector<std::string> bob_groups;
    if (names_.bob_is_staff) bob_groups.push_back(staff_->name());
    alice_ = std::make_unique<TempUser>(names_.prefix + "a", std::vector<std::string>{staff_->name()});
    bob_ = std::make_unique<TempUser>(names_.prefix + "b", bob_groups);
    ada_ = std::make_unique<TempUser>(names_.prefix + "c", std::vector<std::string>{admins_->name()});
    ASSERT_TRUE(alice_->ok() && bob_->ok() && ada_->ok());
    for (const TempUser* u : {alice_.get(), bob_.get()}) {
      auto installed = testing::install_testpattern(*u, APPVIRT_TESTPATTERN);
      ASSERT_TRUE(installed) << installed.error().str();
    }
    testing::HostdSetup hostd{.binary = APPVIRT_HOSTD, .sandbox = APPVIRT_SANDBOX,
                              .rdp = APPVIRT_RDP, .dir = dir_};
    sock_ = testing::hostd_socket(dir_);
    auto written = testing::write_hostd_config(hostd);
    ASSERT_TRUE(written) << written.error().str();
    ASSERT_NO_FATAL_FAILURE(write_broker_config());
    auto started = testing::start_hostd(hostd, {"--terminate-sessions-on-exit"}, dir_ + "/hostd.log");
    ASSERT_TRUE(started) << started.error().str();
    hostd_ = std::move(*started);
    start_broker();
  }

  void TearDown() override {
    if (broker_.running()) stop_broker();
    testing::stop_hostd_and_clean_up(hostd_, dir_, {alice_.get(), bob_.get(), ada_.get()});
    alice_.reset();
    bob_.reset();
    ada_.reset();
    staff_.reset();
    admins_.reset();
    pam_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Each start logs to its own file, broker.log.<n>.
  void start_broker() {
    const std::string log = dir_ + "/broker.log." + std::to_string(++broker_runs_);
    auto b = e2e::start_broker(APPVIRT_BROKER, dir_ + "/broker.toml", dir_ + "/broker.port", log);
    ASSERT_TRUE(b) << b.error().str();
    broker_ = std::move(b->child);
    port_ = b->port;
  }

  // SIGTERM, as systemd stops it: the broker must exit 0 within 10 s.
  void stop_broker() {
    ::kill(broker_.pid(), SIGTERM);
    auto code = broker_.wait_exit(std::chrono::seconds(10));
    ASSERT_TRUE(code) << "broker did not stop within 10 s of SIGTERM";
    EXPECT_EQ(*code, 0);
  }

  void restart_broker() {
    ASSERT_NO_FATAL_FAILURE(stop_broker());
    start_broker();
  }

  // The log of the broker's latest start.
  std::string broker_log() const {
    return testing::read_text_file(dir_ + "/broker.log." + std::to_string(broker_runs_));
  }

  Reply must(Result<Reply> r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().str());
    return r ? *r : Reply{};
  }

  WebSession login(const TempUser& u) {
    auto web = e2e::login(port_, u.name(), u.password());
    EXPECT_TRUE(web) << web.error().str();
    return web ? *web : WebSession{};
  }

  std::string dir_, sock_;
  uint16_t port_ = 0;
  int broker_runs_ = 0;
  testing::Child hostd_, broker_;
  std::unique_ptr<TempPamService> pam_;
  std::unique_ptr<TempGroup> staff_, admins_;
  std::unique_ptr<TempUser> alice_, bob_, ada_;

 private:
  BrokerFixtureNames names_;
};

}  // namespace appvirt::broker::e2e
