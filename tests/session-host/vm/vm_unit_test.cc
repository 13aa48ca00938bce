// Unit tests of the VM session library: spec validation, QEMU and qemu-img command
// construction, the guest config format (checked by evaluating it with bash as the guest agent
// does), records, process helpers and the QMP client against an in-test QMP server.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "session-host/vm/accel_probe.h"
#include "session-host/vm/qemu_command.h"
#include "session-host/vm/qmp_client.h"
#include "session-host/vm/vm_process.h"
#include "session-host/vm/vm_session.h"
#include "tests/tools/test_support.h"

namespace appvirt::vm {
namespace {

using std::chrono::milliseconds;

VmSpec sample_spec() {
  VmSpec s;
  s.session_id = "s-123";
  s.user = "alice";
  s.uid = 1001;
  s.gid = 1002;
  s.argv = {"/usr/bin/xterm", "-title", "it's a \"test\""};
  s.width = 1280;
  s.height = 800;
  s.memory_mib = 768;
  s.vcpus = 2;
  s.image = {"/img/vmlinuz", "/img/initrd.img", "/img/rootfs.qcow2", "console=ttyS0 quiet"};
  s.session_dir = "/var/lib/appvirt/hostd/vm/s-123";
  s.host_port = 40123;
  s.secret = "0123456789abcdef0123456789abcdef";
  s.tls_cert = "/etc/appvirt/rdp.crt";
  s.tls_key = "/etc/appvirt/rdp.key";
  return s;
}

// The value following `flag` in argv, every occurrence.
std::vector<std::string> values_of(const std::vector<std::string>& argv, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) out.push_back(argv[i + 1]);
  }
  return out;
}

TEST(VmImage, LoadResolvesCurrentSymlinkToAbsolutePaths) {
  testing::TempDir dir;
  const std::string real = dir.path() + "/abc123";
  std::filesystem::create_directory(real);
  for (const char* f : {"vmlinuz", "initrd.img", "rootfs.qcow2"}) {
    std::ofstream(real + "/" + f) << "x";
  }
  std::ofstream(real + "/manifest.json") << R"({"cmdline": "console=ttyS0 quiet"})";
  std::filesystem::create_directory_symlink("abc123", dir.path() + "/current");
  // A relative path through the symlink, as an admin or a config would write it.
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  auto img = load_image("current");
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(img) << img.error().str();
  const std::string canon = std::filesystem::canonical(real).string();
  EXPECT_EQ(img->disk, canon + "/rootfs.qcow2");
  EXPECT_EQ(img->kernel, canon + "/vmlinuz");
  EXPECT_EQ(img->initrd, canon + "/initrd.img");
  EXPECT_EQ(img->cmdline, "console=ttyS0 quiet");
  std::filesystem::remove(real + "/initrd.img");
  EXPECT_FALSE(load_image(real));
  EXPECT_FALSE(load_image(dir.path() + "/missing"));
}

TEST(VmSpec, SampleIsValid) { EXPECT_TRUE(validate_spec(sample_spec())); }

TEST(VmSpec, ReportsEveryProblemAtOnce) {
  VmSpec s = sample_spec();
  s.session_id = "../x";
  s.argv = {"xterm"};
  s.secret = "short";
  s.host_port = 0;
  s.session_dir = "/a,b";
  auto r = validate_spec(s);
  ASSERT_FALSE(r);
  for (const char* field : {"session_id", "argv", "secret", "host_port", "','"}) {
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  }
}

TEST(VmSpec, RejectsNewlineInArgvAndBadUser) {
  VmSpec s = sample_spec();
  s.argv.push_back("a\nuid=0");
  s.user = "Root";
  auto r = validate_spec(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("newline"), std::string::npos);
  EXPECT_NE(r.error().message.find("user"), std::string::npos);
}

TEST(QemuCommand, TcgMachineMemoryAndCpus) {
  VmSpec s = sample_spec();
  auto argv = qemu_command(s, vm_paths(s.session_dir));
  EXPECT_EQ(argv.front(), "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(values_of(argv, "-accel"), std::vector<std::string>{"tcg,thread=multi,tb-size=128"});
  EXPECT_EQ(values_of(argv, "-cpu"), std::vector<std::string>{"max"});
  EXPECT_EQ(values_of(argv, "-m"), std::vector<std::string>{"768M"});
  EXPECT_EQ(values_of(argv, "-smp"), std::vector<std::string>{"2"});
  EXPECT_EQ(values_of(argv, "-kernel"), std::vector<std::string>{"/img/vmlinuz"});
  EXPECT_EQ(values_of(argv, "-append"), std::vector<std::string>{"console=ttyS0 quiet"});
  EXPECT_EQ(values_of(argv, "-drive"),
            std::vector<std::string>{"file=/var/lib/appvirt/hostd/vm/s-123/overlay.qcow2,"
                                     "if=virtio,format=qcow2,discard=unmap,cache=writeback"});
  EXPECT_TRUE(values_of(argv, "-runas").empty());
}

TEST(QemuCommand, KvmUsesHostCpu) {
  VmSpec s = sample_spec();
  s.accel = Accel::kKvm;
  s.run_as = "appvirt-vm";
  auto argv = qemu_command(s, vm_paths(s.session_dir));
  EXPECT_EQ(values_of(argv, "-accel"), std::vector<std::string>{"kvm"});
  EXPECT_EQ(values_of(argv, "-cpu"), std::vector<std::string>{"host"});
  EXPECT_EQ(values_of(argv, "-runas"), std::vector<std::string>{"appvirt-vm"});
}

TEST(QemuCommand, ForwardsOnlyLoopbackToGuestRdp) {
  VmSpec s = sample_spec();
  auto netdev = values_of(qemu_command(s, vm_paths(s.session_dir)), "-netdev");
  ASSERT_EQ(netdev.size(), 1u);
  EXPECT_EQ(netdev[0], "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40123-10.0.2.15:3389");
  s.network_restricted = false;
  netdev = values_of(qemu_command(s, vm_paths(s.session_dir)), "-netdev");
  EXPECT_EQ(netdev[0], "user,id=net0,hostfwd=tcp:127.0.0.1:40123-10.0.2.15:3389");
}

TEST(QemuCommand, SecretsOnlyByFileAndSandboxed) {
  VmSpec s = sample_spec();
  auto argv = qemu_command(s, vm_paths(s.session_dir));
  for (const auto& a : argv) EXPECT_EQ(a.find(s.secret), std::string::npos) << a;
  auto fw = values_of(argv, "-fw_cfg");
  std::vector<std::string> want = {
      "name=opt/appvirt/config,file=/var/lib/appvirt/hostd/vm/s-123/guest.conf",
      "name=opt/appvirt/secret,file=/var/lib/appvirt/hostd/vm/s-123/secret",
      "name=opt/appvirt/tls.crt,file=/etc/appvirt/rdp.crt",
      "name=opt/appvirt/tls.key,file=/etc/appvirt/rdp.key"};
  EXPECT_EQ(fw, want);
  auto sandbox = values_of(argv, "-sandbox");
  ASSERT_EQ(sandbox.size(), 1u);
  EXPECT_EQ(sandbox[0].rfind("on,", 0), 0u);
  EXPECT_NE(sandbox[0].find("spawn=deny"), std::string::npos);
}

TEST(QemuCommand, SessionOwnTlsPairByDefault) {
  VmSpec s = sample_spec();
  s.tls_cert.clear();
  s.tls_key.clear();
  ASSERT_TRUE(validate_spec(s));
  auto fw = values_of(qemu_command(s, vm_paths(s.session_dir)), "-fw_cfg");
  ASSERT_EQ(fw.size(), 4u);
  EXPECT_EQ(fw[2], "name=opt/appvirt/tls.crt,file=/var/lib/appvirt/hostd/vm/s-123/tls.crt");
  EXPECT_EQ(fw[3], "name=opt/appvirt/tls.key,file=/var/lib/appvirt/hostd/vm/s-123/tls.key");
  s.tls_cert = "/etc/x.crt";
  EXPECT_FALSE(validate_spec(s));  // a cert without its key
}

TEST(QemuCommand, AgentAndQmpChannels) {
  VmSpec s = sample_spec();
  auto argv = qemu_command(s, vm_paths(s.session_dir));
  auto chardevs = values_of(argv, "-chardev");
  ASSERT_EQ(chardevs.size(), 2u);
  EXPECT_EQ(chardevs[0],
            "socket,id=qmp,path=/var/lib/appvirt/hostd/vm/s-123/qmp.sock,"
            "server=on,wait=off");
  EXPECT_EQ(chardevs[1],
            "socket,id=agent,path=/var/lib/appvirt/hostd/vm/s-123/agent.sock,"
            "server=on,wait=off");
  auto devices = values_of(argv, "-device");
  EXPECT_NE(
      std::find(devices.begin(), devices.end(), "virtserialport,chardev=agent,name=appvirt.agent"),
      devices.end());
  EXPECT_EQ(values_of(argv, "-serial"),
            std::vector<std::string>{"file:/var/lib/appvirt/hostd/vm/s-123/console.log"});
}

TEST(QemuCommand, OverlayIsLinkedCloneOfGolden) {
  VmSpec s = sample_spec();
  auto argv = overlay_command(s, vm_paths(s.session_dir));
  std::vector<std::string> want = {"/usr/bin/qemu-img",
                                   "create",
                                   "-q",
                                   "-f",
                                   "qcow2",
                                   "-F",
                                   "qcow2",
                                   "-b",
                                   "/img/rootfs.qcow2",
                                   "/var/lib/appvirt/hostd/vm/s-123/overlay.qcow2"};
  EXPECT_EQ(argv, want);
}

TEST(GuestConfig, KeyValueLines) {
  VmSpec s = sample_spec();
  s.argv = {"/usr/bin/xterm"};
  EXPECT_EQ(guest_config_text(s),
            "user=alice\nuid=1001\ngid=1002\nwidth=1280\nheight=800\nip=10.0.2.15/24\n"
            "argv='/usr/bin/xterm'\n");
}

// The agent does eval "argv=($value)": every word must come back byte for byte.
TEST(GuestConfig, ArgvSurvivesBashEvaluation) {
  VmSpec s = sample_spec();
  s.argv = {"/bin/x", "it's", "$(touch /tmp/pwned)", "a b", "\"q\"", "`id`", "\\", ""};
  std::string text = guest_config_text(s);
  auto pos = text.find("argv=");
  ASSERT_NE(pos, std::string::npos);
  std::string value = text.substr(pos + 5, text.size() - pos - 6);
  auto r = testing::run_capture({"/bin/bash", "-c",
                                 "eval \"argv=($1)\"; printf '%s\\n' \"${#argv[@]}\"; "
                                 "printf '<%s>' \"${argv[@]}\"",
                                 "bash", value},
                                milliseconds(5000));
  ASSERT_TRUE(r);
  std::string want = std::to_string(s.argv.size()) + "\n";
  for (const auto& w : s.argv) want += "<" + w + ">";
  EXPECT_EQ(r->out, want);
}

TEST(VmRecord, JsonRoundTrip) {
  VmRecord r{"s-1", 4242, 987654321ull, "/var/lib/appvirt/hostd/vm/s-1", 40000, Accel::kKvm};
  auto back = record_from_json(record_to_json(r));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->session_id, "s-1");
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->start_time, 987654321ull);
  EXPECT_EQ(back->session_dir, r.session_dir);
  EXPECT_EQ(back->host_port, 40000);
  EXPECT_EQ(back->accel, Accel::kKvm);
}

TEST(VmRecord, RejectsBadRecords) {
  auto j = record_to_json({"s-1", 4242, 1, "/d", 1, Accel::kTcg});
  j["accel"] = "hvf";
  EXPECT_FALSE(record_from_json(j));
  j = record_to_json({"s-1", 1, 1, "/d", 1, Accel::kTcg});
  EXPECT_FALSE(record_from_json(j));  // pid 1 is never a QEMU of ours
  j.erase("session_dir");
  EXPECT_FALSE(record_from_json(j));
  EXPECT_FALSE(record_from_json(nlohmann::json::array()));
}

TEST(VmProcess, StartTimeAndRunCommand) {
  auto self = proc_start_time(::getpid());
  ASSERT_TRUE(self);
  EXPECT_GT(*self, 0u);
  EXPECT_FALSE(proc_start_time(0x3fffffff));
  auto ok = run_command({"/bin/sh", "-c", "exit 3"}, "", milliseconds(5000));
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(*ok, 3);
  auto start = std::chrono::steady_clock::now();
  auto killed = run_command({"/bin/sleep", "30"}, "", milliseconds(200));
  EXPECT_FALSE(killed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  auto missing = run_command({"/nonexistent/binary"}, "", milliseconds(1000));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().err, ENOENT) << missing.error().str();
}

// hostd takes SIGCHLD and other signals on any thread: an interrupted wait must go on.
TEST(VmProcess, WaitsSurviveSignals) {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
  struct itimerval every_20ms {
    {0, 20000}, { 0, 20000 }
  };
  ASSERT_EQ(::setitimer(ITIMER_REAL, &every_20ms, nullptr), 0);
  auto rc = run_command({"/bin/sleep", "0.4"}, "", milliseconds(5000));
  struct itimerval off {};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &old, nullptr);
  ASSERT_TRUE(rc) << rc.error().str();
  EXPECT_EQ(*rc, 0);
}

TEST(VmProcess, SpawnDetachedIsOwnSessionAndLogs) {
  testing::TempDir dir;
  std::string log = dir.path() + "/out.log";
  auto pid = spawn_detached({"/bin/sh", "-c", "echo sid=$(ps -o sid= -p $$)"}, log);
  ASSERT_TRUE(pid) << pid.error().str();
  auto fd = open_pidfd(*pid);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(wait_pidfd_exit(fd->get(), *pid, milliseconds(5000)));
  std::string out = tail_file(log);
  EXPECT_NE(out.find("sid="), std::string::npos);
  // setsid: the child leads its own session (sid == its pid), not ours.
  EXPECT_NE(out.find(std::to_string(*pid)), std::string::npos) << out;
}

// A QMP server in a thread: greeting, then canned replies to each command (with an event first).
class FakeQmp {
 public:
  explicit FakeQmp(std::string path) : path_(std::move(path)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path_.c_str());
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(listen_fd_, 1);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeQmp() {
    thread_.join();
    ::close(listen_fd_);
  }
  std::vector<std::string> received;

 private:
  void send(int fd, const std::string& s) { (void)!::write(fd, s.data(), s.size()); }
  void serve() {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    send(fd, R"({"QMP": {"version": {}, "capabilities": []}})"
             "\r\n");
    std::string buffer, line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (read_line(fd, buffer, line, deadline).value_or(false)) {
      received.push_back(line);
      if (line.find("system_powerdown") != std::string::npos) {
        send(fd, R"({"event": "POWERDOWN", "timestamp": {}})"
                 "\r\n");
        send(fd, R"({"return": {}})"
                 "\r\n");
      } else if (line.find("bogus") != std::string::npos) {
        send(fd, R"({"error": {"class": "CommandNotFound", "desc": "bogus"}})"
                 "\r\n");
      } else {
        send(fd, R"({"return": {}})"
                 "\r\n");
      }
    }
    ::close(fd);
  }
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

TEST(QmpClient, NegotiatesSkipsEventsAndReportsErrors) {
  testing::TempDir dir;
  std::vector<std::string> received;
  {
    FakeQmp server(dir.path() + "/qmp.sock");
    {
      auto qmp = QmpClient::connect(dir.path() + "/qmp.sock", milliseconds(3000));
      ASSERT_TRUE(qmp) << qmp.error().str();
      auto r = qmp->execute("system_powerdown", milliseconds(3000));
      ASSERT_TRUE(r) << r.error().str();
      EXPECT_TRUE(r->is_object());
      auto bad = qmp->execute("bogus", milliseconds(3000));
      ASSERT_FALSE(bad);
      EXPECT_NE(bad.error().message.find("CommandNotFound"), std::string::npos);
    }
    // client closed: the server thread ends
    std::this_thread::sleep_for(milliseconds(50));
    received = server.received;
  }
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0], R"({"execute":"qmp_capabilities"})");
  EXPECT_EQ(received[1], R"({"execute":"system_powerdown"})");
}

TEST(QmpClient, ConnectTimesOutWithoutServer) {
  testing::TempDir dir;
  auto start = std::chrono::steady_clock::now();
  auto qmp = QmpClient::connect(dir.path() + "/none.sock", milliseconds(200));
  EXPECT_FALSE(qmp);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

// start() failures before the guest runs leave no session dir behind.
TEST(VmSessionStart, MissingQemuLeavesNothing) {
  testing::TempDir dir;
  VmSpec s = sample_spec();
  s.session_dir = dir.path() + "/s";
  s.tls_cert.clear();
  s.tls_key.clear();
  s.qemu_img = "/bin/true";
  s.qemu = "/nonexistent/qemu-system-x86_64";
  auto vm = VmSession::start(s, milliseconds(3000));
  ASSERT_FALSE(vm);
  EXPECT_EQ(vm.error().err, ENOENT) << vm.error().str();
  EXPECT_FALSE(std::filesystem::exists(s.session_dir));
}

TEST(VmSessionStart, QemuExitingEarlyReportsItsOutput) {
  testing::TempDir dir;
  VmSpec s = sample_spec();
  s.session_dir = dir.path() + "/s";
  s.tls_cert.clear();
  s.tls_key.clear();
  s.qemu_img = "/bin/true";
  s.qemu = "/bin/echo";  // prints its argv and exits: "QEMU" that never serves QMP
  auto start = std::chrono::steady_clock::now();
  auto vm = VmSession::start(s, milliseconds(10000));
  ASSERT_FALSE(vm);
  EXPECT_NE(vm.error().message.find("QEMU did not start"), std::string::npos);
  EXPECT_NE(vm.error().message.find("hostfwd=tcp:127.0.0.1:40123"), std::string::npos)
      << vm.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  EXPECT_FALSE(std::filesystem::exists(s.session_dir));
}

TEST(VmSessionStart, InvalidSpecTouchesNothing) {
  testing::TempDir dir;
  VmSpec s = sample_spec();
  s.session_dir = dir.path() + "/s";
  s.argv.clear();
  auto vm = VmSession::start(s);
  ASSERT_FALSE(vm);
  EXPECT_NE(vm.error().message.find("argv"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(s.session_dir));
}

TEST(AccelProbe, CommandBootsProbeModeUnderKvm) {
  VmImage img{"/i/vmlinuz", "/i/initrd.img", "/i/rootfs.qcow2", "console=ttyS0"};
  auto argv = probe_command("/usr/bin/qemu-system-x86_64", img, "/tmp/p.log");
  EXPECT_EQ(values_of(argv, "-accel"), std::vector<std::string>{"kvm"});
  auto append = values_of(argv, "-append");
  ASSERT_EQ(append.size(), 1u);
  EXPECT_NE(append[0].find("appvirt.probe=1"), std::string::npos);
  EXPECT_TRUE(values_of(argv, "-drive").empty());  // the probe touches no disk
}

}  // namespace
}  // namespace appvirt::vm
