#pragma once
// What the gateway does with a client's first PDU (the X.224 Connection Request), decided from
// the parsed request alone: route by launch token, hand to the logon front, or refuse.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/x224.h"

namespace appvirt::gateway {

enum class RouteKind { kToken, kLogon, kReject };

struct Route {
  RouteKind kind = RouteKind::kReject;
  std::string token;      // kToken: the launch token (never logged)
  std::string hash_user;  // kLogon: the user name of "Cookie: mstshash=<user>", if any
  std::string reason;     // kReject: why, for the log
};

// "Cookie: msts=<token>" routes by token; "Cookie: mstshash=<user>" or no cookie goes to the
// logon front; any other routing token is refused (FreeRDP servers would refuse it as well).
Route classify(const x224::ConnectionRequest& request);

// How far a peeked prefix of the first PDU is.
struct PrefixState {
  enum Kind { kIncomplete, kComplete, kInvalid } kind = kIncomplete;
  size_t needed = 0;   // total PDU size known so far (kIncomplete, kComplete)
  std::string reason;  // kInvalid
};
PrefixState examine_prefix(std::span<const uint8_t> peeked);

}  // namespace appvirt::gateway
