#include "common/json_body.h"

namespace appvirt::http {

Result<nlohmann::json> parse_json_object(std::string_view body) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() names the byte offset and what the parser expected there.
    return fail(std::string("body: malformed JSON: ") + e.what());
  }
  if (!j.is_object()) return fail("body: expected a JSON object");
  return j;
}

Response json_response(bhttp::status status, const nlohmann::json& body) {
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = body.dump();
  res.body() += "\n";
  return res;
}

Response error_response(bhttp::status status, std::string_view message) {
  return json_response(status, nlohmann::json{{"error", message}});
}

}  // namespace appvirt::http
