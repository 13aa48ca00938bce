// VM sessions end to end (root): the minimal golden image (built by the vm_minimal_image test
// fixture), a linked clone, QEMU under the accelerator the probe picks, the guest agent's
// readiness report, rdp-probe through the forwarded port seeing appvirt-testpattern's exact
// pixels in the guest, re-adoption from the record, power-off, and nothing left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "session-host/vm/accel_probe.h"
#include "session-host/vm/vm_process.h"
#include "session-host/vm/vm_session.h"
#include "tests/tools/test_support.h"

namespace appvirt::vm {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
namespace fs = std::filesystem;

std::string image_dir() {
  const char* env = std::getenv("APPVIRT_VM_IMAGE");
  return env ? env : APPVIRT_VM_IMAGE;
}

// Any process whose command line names this session's QEMU (-name appvirt-<sid>).
bool qemu_of_session_running(const std::string& session_id) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::ifstream in(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(std::string("appvirt-") + session_id + '\0') != std::string::npos) return true;
  }
  return false;
}

// Powers the VM off whatever happens in the test body.
struct VmGuard {
  std::optional<VmSession> vm;
  ~VmGuard() {
    if (vm) (void)vm->power_off(milliseconds(3000));
  }
};

class VmE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "VM e2e tests run as root (CI does)";
    auto img = load_image(image_dir());
    ASSERT_TRUE(img) << img.error().str() << " (run the vm_minimal_image test first)";
    image_ = *img;
  }

  VmSpec spec(const std::string& id, int port) {
    VmSpec s;
    s.session_id = id;
    s.user = "vmuser";
    s.uid = 4242;
    s.gid = 4242;
    s.argv = {"/usr/local/bin/appvirt-testpattern", "--variant", "3"};
    s.width = 800;
    s.height = 600;
    s.memory_mib = 512;
    s.vcpus = 2;
    s.accel = accel_;
    s.image = image_;
    s.session_dir = dir_.path() + "/" + id;
    s.host_port = port;
    s.secret = "e2e-secret-" + id + "-0123456789abcdef";
    return s;
  }

  testing::TempDir dir_;
  VmImage image_;
  Accel accel_ = Accel::kTcg;
};

TEST_F(VmE2e, BootsShowsTheGuestDisplayAndPowersOffClean) {
  auto probe =
      probe_accelerator("/usr/bin/qemu-system-x86_64", image_, dir_.path(), milliseconds(8000));
  accel_ = probe.accel;
  std::printf("accelerator: %s (%s)\n", accel_name(probe.accel), probe.reason.c_str());
  auto port = testing::free_tcp_port();
  ASSERT_TRUE(port);
  VmSpec s = spec("e2e1", *port);
  VmGuard guard;
  auto t0 = std::chrono::steady_clock::now();
  auto vm = VmSession::start(s);
  ASSERT_TRUE(vm) << vm.error().str();
  guard.vm.emplace(std::move(*vm));
  struct stat st {};
  ASSERT_EQ(::stat(s.session_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(fs::exists(guard.vm->paths().overlay));

  auto ready = guard.vm->wait_ready(milliseconds(300000));
  ASSERT_TRUE(ready) << ready.error().str();
  auto ready_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("guest ready after %.1f s: %s\n", ready_s, ready->dump().c_str());
  EXPECT_EQ(ready->value("rdp_port", 0), kGuestRdpPort);

  // The guest's own display through the forwarded port, pixel-exact.
  auto seen = testing::run_capture(
      {RDP_PROBE, "127.0.0.1:" + std::to_string(*port), "--cookie", "Cookie: msts=" + s.secret,
       "--lossless", "--width", "800", "--height", "600", "--expect-pattern", "3", "--wait-match",
       "--timeout-ms", "90000"},
      milliseconds(120000));
  ASSERT_TRUE(seen);
  std::printf("rdp-probe: %s\n", seen->out.c_str());
  EXPECT_EQ(seen->exit_code, 0) << seen->out;
  EXPECT_NE(seen->out.find("\"match\":true"), std::string::npos) << seen->out;

  // A wrong secret is refused by the endpoint in the guest.
  auto refused = testing::run_capture(
      {RDP_PROBE, "127.0.0.1:" + std::to_string(*port), "--cookie",
       "Cookie: msts=wrong-secret-0123456789", "--lossless", "--timeout-ms", "20000"},
      milliseconds(40000));
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->exit_code, 0) << refused->out;

  // hostd restart: a new object from the persisted record controls the same QEMU.
  auto record = record_from_json(record_to_json(guard.vm->record()));
  ASSERT_TRUE(record);
  auto adopted = VmSession::adopt(*record);
  ASSERT_TRUE(adopted) << adopted.error().str();
  EXPECT_TRUE(adopted->running());
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(adopted->power_off(milliseconds(60000)));
  std::printf("power off took %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
  guard.vm.reset();
  EXPECT_FALSE(adopted->running());
  EXPECT_NE(proc_start_time(record->pid), record->start_time);
  EXPECT_FALSE(fs::exists(s.session_dir)) << "overlay and session files must be gone";
  EXPECT_FALSE(qemu_of_session_running("e2e1"));
}

TEST_F(VmE2e, PortInUseFailsTheStartAndLeavesNothing) {
  auto port = testing::free_tcp_port();
  ASSERT_TRUE(port);
  // Hold the port: QEMU's hostfwd cannot bind it and QEMU exits at once.
  auto holder = testing::Child::spawn(
      {"/usr/bin/python3", "-c",
       "import "
       "socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
       "s.bind(('127.0.0.1'," +
           std::to_string(*port) + "))\ns.listen(1)\ntime.sleep(60)"});
  ASSERT_TRUE(holder);
  ASSERT_TRUE(testing::wait_tcp_listening(*port, milliseconds(5000)));
  VmSpec s = spec("e2e2", *port);
  auto vm = VmSession::start(s);
  ASSERT_FALSE(vm) << "QEMU started although its forwarded port is taken";
  EXPECT_NE(vm.error().message.find("QEMU did not start"), std::string::npos) << vm.error().str();
  EXPECT_FALSE(fs::exists(s.session_dir));
  EXPECT_FALSE(qemu_of_session_running("e2e2"));
}

TEST_F(VmE2e, ExistingSessionDirIsNotReused) {
  VmSpec s = spec("e2e3", 1);
  ASSERT_TRUE(fs::create_directory(s.session_dir));
  auto vm = VmSession::start(s);
  ASSERT_FALSE(vm);
  EXPECT_EQ(vm.error().err, EEXIST) << vm.error().str();
  EXPECT_TRUE(fs::exists(s.session_dir)) << "someone else's directory must be left alone";
}

}  // namespace
}  // namespace appvirt::vm
