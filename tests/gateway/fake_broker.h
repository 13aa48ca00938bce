#pragma once
// Test doubles for the gateway's neighbours, all on real sockets:
//  - FakeBroker: the broker's internal API (redeem, logon) over HTTPS with a self-signed
//    certificate, on 127.0.0.1:<any port>, in its own thread. It records what it was asked.
//  - FakeEndpoint: a session endpoint on a Unix socket that records the first PDU it gets, then
//    sends a blob and reads everything the client sends until end of stream.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace appvirt::testing {

struct FakeSession {
  std::string session_id = "s-1";
  std::string user = "alice";
  std::string secret;
  std::string unix_path;
  std::string tcp;
};

class FakeBroker {
 public:
  // Writes broker.crt/.key and gateway.secret under dir, listens, starts its thread.
  explicit FakeBroker(const std::string& dir);
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  bool ok() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  const std::string& cert_file() const { return cert_file_; }
  const std::string& secret_file() const { return secret_file_; }
  const std::string& secret() const { return secret_; }

  // A single-use launch token for a session.
  void add_token(const std::string& token, FakeSession session);
  // Credentials the logon call accepts; each logon issues a fresh token for the session.
  void add_user(const std::string& user, const std::string& password, FakeSession session);
  // Every answer waits this long first (timeouts).
  void set_delay(std::chrono::milliseconds delay) { delay_ms_ = delay.count(); }
  // The logon answer for everyone: 0 = normal, else this status (429 adds Retry-After: 30).
  void set_logon_status(unsigned status) { logon_status_ = status; }

  struct Redeem {
    std::string token;
    bool ok;
  };
  struct Logon {
    std::string username, app, client_address;
    bool ok;
  };
  std::vector<Redeem> redeems() const;
  std::vector<Logon> logons() const;
  std::vector<std::string> issued_tokens() const;
  size_t unauthorized() const;
  // Waits until at least n redeem calls were seen.
  bool wait_redeems(size_t n, std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::string cert_file_, key_file_, secret_file_, secret_;
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<unsigned> logon_status_{0};
};

class FakeEndpoint {
 public:
  // Listens on path; serves `connections` clients one after the other, each: read the first
  // PDU (TPKT framed), send `blob`, read until end of stream, close.
  FakeEndpoint(const std::string& path, std::vector<uint8_t> blob, int connections = 1);
  ~FakeEndpoint();

  struct Seen {
    std::vector<uint8_t> first_pdu;
    std::vector<uint8_t> received;  // everything after the first PDU
  };
  // Waits for the n-th (0-based) connection to finish.
  bool wait_done(size_t n, std::chrono::milliseconds timeout);
  Seen seen(size_t n);
  size_t accepted() const { return accepted_; }
  // Waits for the first PDU of the n-th connection (recorded as soon as it is read).
  std::optional<std::vector<uint8_t>> wait_first_pdu(size_t n, std::chrono::milliseconds timeout);

 private:
  void serve();
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::vector<uint8_t> blob_;
  int connections_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Seen> seen_;
  std::vector<std::vector<uint8_t>> first_pdus_;
  std::atomic<size_t> accepted_{0};
};

// Deterministic pseudo-random bytes.
std::vector<uint8_t> pattern_bytes(size_t n, uint32_t seed);

}  // namespace appvirt::testing
