#include "session-host/hostd/session_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/unique_fd.h"

namespace appvirt::hostd {

namespace fs = std::filesystem;

namespace {

Result<void> make_private_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("mkdir(" + dir.string() + ")", ec.value());
  if (::chmod(dir.c_str(), 0700) < 0) return fail_errno("chmod(" + dir.string() + ")");
  return {};
}

Result<nlohmann::json> read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return fail_errno("open(" + file.string() + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return fail(file.string() + ": not JSON");
  return j;
}

}  // namespace

Result<void> write_file_atomic(const fs::path& path, const std::string& data, mode_t mode) {
  fs::path tmp = path;
  tmp += ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return fail_errno("open(" + tmp.string() + ")");
  bool ok = ::write(fd.get(), data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            ::fchmod(fd.get(), mode) == 0 && ::fsync(fd.get()) == 0;
  if (!ok) {
    auto e = fail_errno("write(" + tmp.string() + ")");
    ::unlink(tmp.c_str());
    return e;
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    auto e = fail_errno("rename(" + tmp.string() + ", " + path.string() + ")");
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

Result<void> SessionStore::init() {
  for (const auto& d : {dir_, sessions_dir(), containers_dir()}) {
    if (auto r = make_private_dir(d); !r) return r;
  }
  return {};
}

Result<void> SessionStore::save(const Session& s) {
  return write_file_atomic(sessions_dir() / (s.id + ".json"), session_to_state(s).dump(2) + "\n",
                           0600);
}

Result<void> SessionStore::write_secret(const std::string& id, const std::string& secret) {
  return write_file_atomic(secret_path(id), secret + "\n", 0600);
}

void SessionStore::remove_secret(const std::string& id) { ::unlink(secret_path(id).c_str()); }

void SessionStore::remove_session(const std::string& id) {
  for (const char* suffix : {".json", ".secret", ".xvfb.log", ".app.log", ".rdp.log"}) {
    ::unlink((sessions_dir() / (id + suffix)).c_str());
  }
}

std::string SessionStore::secret_path(const std::string& id) const {
  return (sessions_dir() / (id + ".secret")).string();
}

std::string SessionStore::log_path(const std::string& id, const std::string& what) const {
  return (sessions_dir() / (id + "." + what + ".log")).string();
}

SessionStore::Loaded SessionStore::load_sessions() const {
  Loaded out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(sessions_dir(), ec)) {
    if (e.path().extension() != ".json") continue;
    auto j = read_json(e.path());
    if (!j) {
      out.errors.push_back(j.error().str());
      continue;
    }
    auto s = session_from_state(*j);
    if (!s) {
      out.errors.push_back(e.path().string() + ": " + s.error().message);
      continue;
    }
    out.sessions.push_back(std::move(*s));
  }
  return out;
}

Result<void> SessionStore::save_container(const ContainerRecord& c) {
  return write_file_atomic(containers_dir() / (c.user + ".json"),
                           container_to_state(c).dump(2) + "\n", 0600);
}

void SessionStore::remove_container(const std::string& user) {
  ::unlink((containers_dir() / (user + ".json")).c_str());
}

std::vector<ContainerRecord> SessionStore::load_containers(std::vector<std::string>* errors) const {
  std::vector<ContainerRecord> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(containers_dir(), ec)) {
    if (e.path().extension() != ".json") continue;
    auto j = read_json(e.path());
    auto c = j ? container_from_state(*j) : Result<ContainerRecord>(tl::unexpected(j.error()));
    if (!c) {
      if (errors) errors->push_back(e.path().string() + ": " + c.error().message);
      continue;
    }
    out.push_back(std::move(*c));
  }
  return out;
}

}  // namespace appvirt::hostd
