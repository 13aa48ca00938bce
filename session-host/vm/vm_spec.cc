#include "session-host/vm/vm_spec.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

namespace appvirt::vm {

const char* accel_name(Accel a) { return a == Accel::kKvm ? "kvm" : "tcg"; }

namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

void check(std::vector<std::string>& errors, bool ok, const char* message) {
  if (!ok) errors.emplace_back(message);
}

}  // namespace

Result<VmImage> load_image(const std::string& image_dir) {
  // Overlays name their backing file by this path: it must be absolute (qemu-img resolves a
  // relative one against the overlay's dir) and must not go through the `current` symlink,
  // which a later build moves to another image under running sessions.
  std::error_code ec;
  const std::string dir = std::filesystem::canonical(image_dir, ec).string();
  if (ec) return fail("image dir " + image_dir + ": " + ec.message(), ec.value());
  std::ifstream in(dir + "/manifest.json");
  if (!in) return fail("open(" + dir + "/manifest.json)", errno);
  auto manifest = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    return fail(dir + "/manifest.json: not a JSON object");
  }
  VmImage image{dir + "/vmlinuz", dir + "/initrd.img", dir + "/rootfs.qcow2",
                manifest.value("cmdline",
                               std::string("console=ttyS0 quiet no_timer_check panic=-1"))};
  for (const auto* f : {&image.kernel, &image.initrd, &image.disk}) {
    if (!is_file(*f)) return fail("image file missing: " + *f);
  }
  return image;
}

Result<void> validate_spec(const VmSpec& s) {
  static const std::regex kId("[A-Za-z0-9_-]{1,64}");
  static const std::regex kUser("[a-z_][a-z0-9_-]{0,31}");
  std::vector<std::string> e;
  check(e, std::regex_match(s.session_id, kId), "session_id: 1..64 of [A-Za-z0-9_-]");
  check(e, std::regex_match(s.user, kUser), "user: not a valid user name");
  check(e, s.uid >= 1 && s.gid >= 1, "uid/gid: must be >= 1");
  check(e, !s.argv.empty() && !s.argv[0].empty() && s.argv[0][0] == '/',
        "argv: must start with an absolute path");
  for (const auto& w : s.argv) {
    check(e, w.find('\n') == std::string::npos && w.find('\0') == std::string::npos,
          "argv: no newline or NUL in a word");
  }
  check(e, s.width >= 320 && s.width <= 8192 && s.height >= 200 && s.height <= 8192,
        "width/height: 320..8192 x 200..8192");
  check(e, s.memory_mib >= 128 && s.memory_mib <= 1024 * 1024, "memory_mib: 128..1048576");
  check(e, s.vcpus >= 1 && s.vcpus <= 64, "vcpus: 1..64");
  check(e, s.host_port >= 1 && s.host_port <= 65535, "host_port: 1..65535");
  check(e, s.secret.size() >= 16 && s.secret.size() <= 200 && printable(s.secret),
        "secret: 16..200 printable characters");
  check(e, !s.session_dir.empty() && s.session_dir[0] == '/', "session_dir: absolute path");
  check(e, !s.image.kernel.empty() && !s.image.initrd.empty() && !s.image.disk.empty(),
        "image: kernel, initrd and disk are required");
  check(e, s.tls_cert.empty() == s.tls_key.empty(), "tls_cert/tls_key: both or neither");
  // QEMU option values are comma-separated: a comma in a path would split the option.
  for (const auto* p :
       {&s.session_dir, &s.image.kernel, &s.image.initrd, &s.image.disk, &s.tls_cert, &s.tls_key}) {
    check(e, p->find(',') == std::string::npos, "paths: must not contain ','");
  }
  if (e.empty()) return {};
  std::string all;
  for (const auto& m : e) all += (all.empty() ? "" : "; ") + m;
  return fail(all);
}

}  // namespace appvirt::vm
