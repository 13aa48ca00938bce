// appvirt-vm: the VM session library from the command line, for admins checking a golden image
// and for benchmarks. `probe` names the accelerator this host can use; `run` boots one session,
// prints its endpoint once the guest agent is ready, and powers it off on SIGINT/SIGTERM or
// when the guest ends.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <random>

#include "common/log.h"
#include "session-host/vm/accel_probe.h"
#include "session-host/vm/vm_session.h"

namespace appvirt::vm {
namespace {

std::string random_secret() {
  std::random_device rd;  // getrandom(2) on Linux
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 64; ++i) s += kHex[rd() % 16];
  return s;
}

int run_probe(const std::string& image_dir, const std::string& work_dir) {
  auto image = load_image(image_dir);
  if (!image) {
    std::fprintf(stderr, "appvirt-vm: %s\n", image.error().str().c_str());
    return 1;
  }
  auto r = probe_accelerator("/usr/bin/qemu-system-x86_64", *image, work_dir,
                             std::chrono::milliseconds(8000));
  std::printf("%s\n",
              nlohmann::json{{"accel", accel_name(r.accel)}, {"reason", r.reason}}.dump().c_str());
  return 0;
}

sigset_t end_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Blocks until SIGINT/SIGTERM or QEMU's exit (the guest powered itself off). The signals are
// blocked from the start of `run`, so one sent while the guest boots is taken here.
void wait_for_end(const VmSession& vm) {
  sigset_t set = end_signals();
  UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
  while (vm.running()) {
    struct pollfd p {
      sfd.get(), POLLIN, 0
    };
    if (::poll(&p, 1, 500) > 0) return;
  }
}

int run_session(VmSpec spec, const std::string& image_dir, bool probe) {
  // QEMU runs in its own session and would outlive us: never die of SIGINT/SIGTERM before
  // power_off; children get default masks (posix_spawn resets them).
  sigset_t set = end_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  auto image = load_image(image_dir);
  if (!image) {
    std::fprintf(stderr, "appvirt-vm: %s\n", image.error().str().c_str());
    return 1;
  }
  spec.image = *image;
  if (probe)
    spec.accel = probe_accelerator(spec.qemu, spec.image, "/tmp", milliseconds(8000)).accel;
  if (spec.secret.empty()) spec.secret = random_secret();
  auto t0 = std::chrono::steady_clock::now();
  auto vm = VmSession::start(spec);
  if (!vm) {
    std::fprintf(stderr, "appvirt-vm: %s\n", vm.error().str().c_str());
    return 1;
  }
  auto ready = vm->wait_ready(milliseconds(300000));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int rc = 0;
  if (!ready) {
    std::fprintf(stderr, "appvirt-vm: %s\n", ready.error().str().c_str());
    rc = 1;
  } else {
    // The secret goes to stdout only (the operator's terminal), never to a log.
    std::printf("%s\n", nlohmann::json{{"endpoint", "127.0.0.1:" + std::to_string(spec.host_port)},
                                       {"cookie", "Cookie: msts=" + spec.secret},
                                       {"accel", accel_name(spec.accel)},
                                       {"ready_seconds", secs},
                                       {"record", record_to_json(vm->record())}}
                            .dump()
                            .c_str());
    std::fflush(stdout);
    wait_for_end(*vm);
  }
  if (auto off = vm->power_off(milliseconds(20000)); !off) {
    std::fprintf(stderr, "appvirt-vm: %s\n", off.error().str().c_str());
    rc = 1;
  }
  return rc;
}

}  // namespace
}  // namespace appvirt::vm

int main(int argc, char** argv) {
  using namespace appvirt::vm;
  CLI::App app{"appvirt-vm: check a golden image and run VM sessions by hand"};
  app.require_subcommand(1);
  std::string image_dir = "/var/lib/appvirt/images/full/current";
  std::string work_dir = "/tmp";
  auto* probe = app.add_subcommand("probe", "which accelerator boots a guest here (kvm or tcg)");
  probe->add_option("--image", image_dir, "golden image directory");
  probe->add_option("--work-dir", work_dir, "where the probe's console log goes");
  VmSpec spec;
  bool do_probe = true;
  std::string accel;
  auto* run = app.add_subcommand("run", "boot one VM session until SIGINT/SIGTERM");
  run->add_option("--image", image_dir, "golden image directory");
  run->add_option("--session-id", spec.session_id, "session id")->required();
  run->add_option("--session-dir", spec.session_dir, "host dir for the session (must not exist)")
      ->required();
  run->add_option("--port", spec.host_port, "127.0.0.1 port forwarded to the guest's RDP")
      ->required();
  run->add_option("--user", spec.user, "guest user")->required();
  run->add_option("--uid", spec.uid, "guest uid")->required();
  run->add_option("--gid", spec.gid, "guest gid")->required();
  run->add_option("--memory-mib", spec.memory_mib, "guest memory");
  run->add_option("--vcpus", spec.vcpus, "guest vCPUs");
  run->add_option("--width", spec.width, "screen width");
  run->add_option("--height", spec.height, "screen height");
  run->add_option("--accel", accel, "kvm or tcg (default: probe)")
      ->check(CLI::IsMember({"kvm", "tcg"}));
  run->add_option("command", spec.argv, "the app: absolute path and arguments")->required();
  CLI11_PARSE(app, argc, argv);
  appvirt::init_logging("appvirt-vm", "info");
  if (*probe) return run_probe(image_dir, work_dir);
  if (!accel.empty()) {
    do_probe = false;
    spec.accel = accel == "kvm" ? Accel::kKvm : Accel::kTcg;
  }
  return run_session(spec, image_dir, do_probe);
}
