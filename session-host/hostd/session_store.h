#pragma once
// hostd's state directory: what it needs to re-adopt sessions after a restart.
//   sessions/<id>.json     the session (no secret), rewritten atomically on every change
//   sessions/<id>.secret   the 256-bit session secret (hex), 0600; appvirt-rdp reads it
//   sessions/<id>.{xvfb,app,rdp}.log   output of the session's processes
//   containers/<user>.json the user's container init
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "session-host/hostd/session.h"

namespace appvirt::hostd {

// Writes data to path via a temp file in the same directory, fsync and rename.
Result<void> write_file_atomic(const std::filesystem::path& path, const std::string& data,
                               mode_t mode);

class SessionStore {
 public:
  explicit SessionStore(std::filesystem::path state_dir) : dir_(std::move(state_dir)) {}

  // Creates the directories (0700).
  Result<void> init();

  Result<void> save(const Session& s);
  Result<void> write_secret(const std::string& id, const std::string& secret);
  void remove_secret(const std::string& id);
  // Removes everything stored for a session (record, secret, logs).
  void remove_session(const std::string& id);

  std::string secret_path(const std::string& id) const;
  std::string log_path(const std::string& id, const std::string& what) const;

  struct Loaded {
    std::vector<Session> sessions;
    std::vector<std::string> errors;  // unreadable files, "file: reason"
  };
  Loaded load_sessions() const;

  Result<void> save_container(const ContainerRecord& c);
  void remove_container(const std::string& user);
  std::vector<ContainerRecord> load_containers(std::vector<std::string>* errors) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path sessions_dir() const { return dir_ / "sessions"; }
  std::filesystem::path containers_dir() const { return dir_ / "containers"; }
  std::filesystem::path dir_;
};

}  // namespace appvirt::hostd
