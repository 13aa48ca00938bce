#pragma once
// JSON request and response bodies for the HTTP helpers: one place that turns a body into a
// nlohmann::json (with a message a client can act on) and a json value into a response.
#include "common/beast.h"
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.h"

namespace appvirt::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// Parses the request body as one JSON object. Errors read "body: <parser message>".
Result<nlohmann::json> parse_json_object(std::string_view body);

// A response with a JSON body and Content-Type application/json.
Response json_response(bhttp::status status, const nlohmann::json& body);

// {"error": message} with the given status; used for every 4xx/5xx the helpers produce.
Response error_response(bhttp::status status, std::string_view message);

}  // namespace appvirt::http
