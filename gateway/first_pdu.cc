#include "gateway/first_pdu.h"

#include "gateway/broker_client.h"

namespace appvirt::gateway {

namespace {
constexpr std::string_view kMsts = "Cookie: msts=";
constexpr std::string_view kMstshash = "Cookie: mstshash=";
}  // namespace

Route classify(const x224::ConnectionRequest& request) {
  Route route;
  if (!request.cookie) {
    route.kind = RouteKind::kLogon;
    return route;
  }
  const std::string& line = *request.cookie;
  if (line.starts_with(kMsts)) {
    std::string token = line.substr(kMsts.size());
    if (!is_cookie_safe(token)) {
      route.reason = "malformed launch token";
      return route;
    }
    route.kind = RouteKind::kToken;
    route.token = std::move(token);
    return route;
  }
  if (line.starts_with(kMstshash)) {
    route.kind = RouteKind::kLogon;
    route.hash_user = line.substr(kMstshash.size());
    return route;
  }
  route.reason = "routing token is neither Cookie: msts= nor Cookie: mstshash=";
  return route;
}

PrefixState examine_prefix(std::span<const uint8_t> peeked) {
  PrefixState state;
  auto needed = x224::needed_bytes(peeked);
  if (!needed) {
    state.kind = PrefixState::kInvalid;
    state.reason = needed.error().message;
    return state;
  }
  // A Connection Request's length indicator is one byte, so anything longer cannot be one:
  // refuse it now instead of waiting for bytes that cannot make a valid request.
  if (*needed > x224::kMaxValidPduSize) {
    state.kind = PrefixState::kInvalid;
    state.reason = "x224: TPKT length " + std::to_string(*needed) + " too long for a connection request";
    return state;
  }
  state.needed = *needed;
  state.kind = peeked.size() >= *needed ? PrefixState::kComplete : PrefixState::kIncomplete;
  return state;
}

}  // namespace appvirt::gateway
