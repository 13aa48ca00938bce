// Parsing and validation of the helper's JSON requests (docs/session-host.md).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "session-host/sandbox/request.h"

namespace appvirt::sandbox {
namespace {

using nlohmann::json;

json create_json() {
  return json::parse(R"({"user":"alice","uid":1001,"gid":1001,"groups":[1001],
    "home":"/home/alice","runtime_dir":"/run/appvirt/u/alice","cgroup":"appvirt/u-alice",
    "hostname":"appvirt","network":"loopback",
    "limits":{"memory_max":536870912,"cpu_weight":100,"cpu_max_percent":200,"pids_max":512}})");
}

json exec_json() {
  return json::parse(R"({"init_pid":1234,"uid":1001,"gid":1001,"groups":[1001],
    "cgroup":"appvirt/u-alice/s-abc","argv":["/usr/bin/Xvfb",":201"],"env":["HOME=/home/alice"],
    "cwd":"/home/alice","log_file":"/var/lib/appvirt/hostd/sessions/abc.xvfb.log"})");
}

// The error message of parsing j after edit, or "" when it parsed.
template <class Edit>
std::string create_error(Edit edit) {
  json j = create_json();
  edit(j);
  auto r = parse_create_request(j.dump());
  return r ? "" : r.error().str();
}

template <class Edit>
std::string exec_error(Edit edit) {
  json j = exec_json();
  edit(j);
  auto r = parse_exec_request(j.dump());
  return r ? "" : r.error().str();
}

TEST(CreateRequest, ParsesTheDocumentedExample) {
  auto r = parse_create_request(create_json().dump());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->user, "alice");
  EXPECT_EQ(r->id.uid, 1001u);
  EXPECT_EQ(r->id.gid, 1001u);
  EXPECT_EQ(r->id.groups, std::vector<gid_t>{1001});
  EXPECT_EQ(r->home, "/home/alice");
  EXPECT_EQ(r->runtime_dir, "/run/appvirt/u/alice");
  EXPECT_EQ(r->cgroup, "appvirt/u-alice");
  EXPECT_EQ(r->limits.memory_max, 536870912u);
  EXPECT_EQ(r->limits.cpu_weight, 100u);
  EXPECT_EQ(r->limits.cpu_max_percent, 200u);
  EXPECT_EQ(r->limits.pids_max, 512u);
  EXPECT_TRUE(r->log_file.empty());
}

TEST(CreateRequest, OptionalFieldsDefault) {
  json j = create_json();
  j.erase("hostname");
  j.erase("network");
  j.erase("limits");
  auto r = parse_create_request(j.dump());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->hostname, "appvirt");
  EXPECT_EQ(r->network, "loopback");
  EXPECT_FALSE(r->limits.memory_max);
  EXPECT_FALSE(r->limits.cpu_weight);
  EXPECT_FALSE(r->limits.cpu_max_percent);
  EXPECT_FALSE(r->limits.pids_max);
}

TEST(CreateRequest, BadJsonIsReportedWithPosition) {
  auto r = parse_create_request(R"({"user": "alice",)");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not valid JSON"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("column 18"), std::string::npos) << r.error().message;
  EXPECT_FALSE(parse_create_request("[1,2]"));
  EXPECT_FALSE(parse_create_request(""));
}

TEST(CreateRequest, MissingFieldsAreNamed) {
  for (const char* key : {"user", "uid", "gid", "groups", "home", "runtime_dir", "cgroup"}) {
    std::string e = create_error([&](json& j) { j.erase(key); });
    EXPECT_NE(e.find(std::string(key) + " is missing"), std::string::npos) << key << ": " << e;
  }
}

TEST(CreateRequest, RootAndNonsenseIdsAreRejected) {
  EXPECT_NE(create_error([](json& j) { j["uid"] = 0; }).find("uid = 0 is out of range"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["gid"] = 0; }).find("gid"), std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["uid"] = -5; }).find("uid = -5"), std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["uid"] = 4294967295ull; }).find("uid"), std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["uid"] = "1001"; }).find("uid must be an integer"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["uid"] = 1.5; }).find("uid must be an integer"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) {
              j["groups"] = {1001, 0};
            }).find("bad gid 0"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["groups"] = 5; }).find("groups must be an array"),
            std::string::npos);
}

TEST(CreateRequest, PathsMustBeAbsoluteAndNormalised) {
  for (const char* bad : {"home/alice", "/home/../root", "/home/alice/", "/", "/home//alice",
                          "/home/./alice", "/home/a,b"}) {
    std::string e = create_error([&](json& j) { j["home"] = bad; });
    EXPECT_NE(e.find("home must be a normalised absolute path"), std::string::npos)
        << bad << ": " << e;
  }
  EXPECT_NE(create_error([](json& j) { j["runtime_dir"] = "run"; }).find("runtime_dir"),
            std::string::npos);
}

TEST(CreateRequest, CgroupPathMustStayBelowTheRoot) {
  for (const char* bad : {"../etc", "/appvirt/u", "appvirt/../../x", "appvirt//u", "a b", ""}) {
    std::string e = create_error([&](json& j) { j["cgroup"] = bad; });
    EXPECT_NE(e.find("cgroup path"), std::string::npos) << bad << ": " << e;
  }
}

TEST(CreateRequest, UserHostnameAndNetworkAreChecked) {
  EXPECT_NE(create_error([](json& j) { j["user"] = "Alice;rm"; }).find("not a valid user name"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["hostname"] = "a/b"; }).find("not a valid host name"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["network"] = "host"; }).find("not supported"),
            std::string::npos);
}

TEST(CreateRequest, UnknownFieldsAreRejected) {
  EXPECT_NE(create_error([](json& j) { j["memory"] = 5; }).find("unknown field memory"),
            std::string::npos);
  EXPECT_NE(
      create_error([](json& j) { j["limits"]["memory"] = 5; }).find("unknown field limits.memory"),
      std::string::npos);
}

TEST(Limits, RangesAreEnforced) {
  EXPECT_NE(create_error([](json& j) {
              j["limits"]["cpu_weight"] = 0;
            }).find("limits.cpu_weight = 0 is out of range [1, 10000]"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["limits"]["cpu_weight"] = 10001; }).find("cpu_weight"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["limits"]["pids_max"] = 1; }).find("pids_max"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["limits"]["memory_max"] = 1024; }).find("memory_max"),
            std::string::npos);
  EXPECT_NE(create_error([](json& j) { j["limits"] = 3; }).find("limits must be an object"),
            std::string::npos);
}

TEST(Limits, RoundTripThroughJson) {
  Limits l;
  l.memory_max = 1u << 30;
  l.pids_max = 64;
  json j = limits_to_json(l);
  EXPECT_EQ(j, json::parse(R"({"memory_max":1073741824,"pids_max":64})"));
  auto back = limits_from_json(j);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->memory_max, l.memory_max);
  EXPECT_EQ(back->pids_max, l.pids_max);
  EXPECT_FALSE(back->cpu_weight);
}

TEST(ExecRequest, ParsesTheDocumentedExample) {
  auto r = parse_exec_request(exec_json().dump());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->init_pid, 1234);
  EXPECT_FALSE(r->init_start_time);
  EXPECT_EQ(r->argv, (std::vector<std::string>{"/usr/bin/Xvfb", ":201"}));
  EXPECT_EQ(r->env, std::vector<std::string>{"HOME=/home/alice"});
  EXPECT_EQ(r->cwd, "/home/alice");
  EXPECT_EQ(r->cgroup, "appvirt/u-alice/s-abc");
  EXPECT_EQ(r->log_file, "/var/lib/appvirt/hostd/sessions/abc.xvfb.log");
}

TEST(ExecRequest, Validation) {
  EXPECT_NE(exec_error([](json& j) { j.erase("init_pid"); }).find("init_pid is missing"),
            std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["init_pid"] = 1; }).find("init_pid = 1"), std::string::npos)
      << "pid 1 of the host is never a container init";
  EXPECT_NE(exec_error([](json& j) { j["argv"] = json::array(); }).find("argv must be non-empty"),
            std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["argv"] = {"Xvfb"}; }).find("absolute"), std::string::npos);
  EXPECT_NE(exec_error([](json& j) {
              j["argv"] = {"/bin/x", 5};
            }).find("array of strings"),
            std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["env"] = {"NOEQUALS"}; }).find("not NAME=value"),
            std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["cwd"] = "rel"; }).find("cwd"), std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["uid"] = 0; }).find("uid = 0"), std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["log_file"] = "x.log"; }).find("log_file"),
            std::string::npos);
  EXPECT_NE(exec_error([](json& j) { j["shell"] = true; }).find("unknown field shell"),
            std::string::npos);
  EXPECT_EQ(exec_error([](json& j) {
              j.erase("env");
              j.erase("cwd");
              j.erase("log_file");
              j["init_start_time"] = 12345;
            }),
            "");
}

TEST(Reply, OkAndErrorShapes) {
  auto ok = json::parse(reply_ok({{"pid", 42}}));
  EXPECT_EQ(ok, json::parse(R"({"ok":true,"pid":42})"));
  auto err = json::parse(reply_error(Error{"mount(/a, /b)", EPERM}));
  EXPECT_EQ(err["ok"], false);
  EXPECT_EQ(err["error"], "mount(/a, /b): Operation not permitted (errno 1)");
}

}  // namespace
}  // namespace appvirt::sandbox
