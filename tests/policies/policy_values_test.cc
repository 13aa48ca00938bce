// Values of single fields: durations, sizes, screen sizes, app lists, enums, ranges, and the
// "meet" that settles ties between groups.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policies/policy_values.h"

namespace appvirt::policies {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using ::testing::HasSubstr;

TEST(Duration, ParsesUnitsAndCompounds) {
  EXPECT_EQ(parse_duration("90s"), seconds{90});
  EXPECT_EQ(parse_duration("15m"), seconds{900});
  EXPECT_EQ(parse_duration("2h"), seconds{7200});
  EXPECT_EQ(parse_duration("1h30m"), seconds{5400});
  EXPECT_EQ(parse_duration("7d"), seconds{7 * 86400});
  EXPECT_EQ(parse_duration("1d2h3m4s"), seconds{86400 + 7200 + 180 + 4});
  EXPECT_EQ(parse_duration("never"), seconds{0});
  EXPECT_EQ(parse_duration("0"), seconds{0});
}

TEST(Duration, RejectsBadSyntax) {
  for (const char* bad : {"", "15", "m", "1m1h", "1h1h", "1.5h", "-5m", "15 m", "15M", "2w", "h2",
                          "1h ", "99999999999999d", "Never"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
}

TEST(Duration, FormatsCompactlyAndRoundTrips) {
  EXPECT_EQ(format_duration(seconds{0}), "never");
  EXPECT_EQ(format_duration(seconds{90}), "1m30s");
  EXPECT_EQ(format_duration(seconds{7200}), "2h");
  EXPECT_EQ(format_duration(seconds{90061}), "1d1h1m1s");
  for (int64_t s : {1, 59, 60, 3599, 3600, 86399, 86400, 2592000}) {
    EXPECT_EQ(parse_duration(format_duration(seconds{s})), seconds{s}) << s;
  }
}

TEST(Timeout, AcceptsSecondsStringsAndZeroWithinRange) {
  EXPECT_EQ(read_timeout(json(0)).value(), seconds{0});
  EXPECT_EQ(read_timeout(json(120)).value(), seconds{120});
  EXPECT_EQ(read_timeout(json("2h")).value(), seconds{7200});
  EXPECT_EQ(read_timeout(json("never")).value(), seconds{0});
  EXPECT_EQ(read_timeout(json("30d")).value(), seconds{30 * 86400});
  EXPECT_THAT(read_timeout(json("30s")).error(),
              HasSubstr("must be 0 (never) or between 1m and 30d"));
  EXPECT_THAT(read_timeout(json("31d")).error(), HasSubstr("between 1m and 30d"));
  EXPECT_THAT(read_timeout(json(-1)).error(), HasSubstr("must be a duration"));
  EXPECT_THAT(read_timeout(json("2 hours")).error(), HasSubstr("must be a duration"));
  EXPECT_THAT(read_timeout(json(true)).error(), HasSubstr("must be a duration"));
  EXPECT_THAT(read_timeout(json(1.5)).error(), HasSubstr("must be a duration"));
}

TEST(Size, ReadsUnitsBytesAndUnlimited) {
  EXPECT_EQ(read_memory_max(json("1G")).value(), Limit::of(1ull << 30));
  EXPECT_EQ(read_memory_max(json("512M")).value(), Limit::of(512ull << 20));
  EXPECT_EQ(read_memory_max(json(2147483648ull)).value(), Limit::of(2ull << 30));
  EXPECT_EQ(read_memory_max(json("unlimited")).value(), Limit::unlimited());
  EXPECT_THAT(read_memory_max(json("8M")).error(), HasSubstr("must be between 16M and 1T"));
  EXPECT_THAT(read_memory_max(json("2T")).error(), HasSubstr("must be between 16M and 1T"));
  EXPECT_THAT(read_memory_max(json("2X")).error(), HasSubstr("must be a size"));
  EXPECT_THAT(read_memory_max(json("2g")).error(), HasSubstr("must be a size"));
  EXPECT_THAT(read_memory_max(json(-5)).error(), HasSubstr("must be a size"));
  EXPECT_THAT(read_memory_max(json(1.5)).error(), HasSubstr("must be a size"));
  EXPECT_THAT(read_memory_max(json("Unlimited")).error(), HasSubstr("(got \"Unlimited\")"));
}

TEST(Size, FormatsLargestExactUnit) {
  EXPECT_EQ(format_size(2ull << 30), "2G");
  EXPECT_EQ(format_size(1536ull << 20), "1536M");
  EXPECT_EQ(format_size(1ull << 40), "1T");
  EXPECT_EQ(format_size(12345), "12345");
  EXPECT_EQ(write_size_limit(Limit::unlimited()), json("unlimited"));
  EXPECT_EQ(write_size_limit(Limit::of(3ull << 30)), json("3G"));
}

TEST(Resolution, ParsesWidthByHeight) {
  EXPECT_EQ(read_max_resolution(json("1920x1080")).value(), (ScreenSize{1920, 1080}));
  EXPECT_EQ(read_max_resolution(json("8192x8192")).value(), (ScreenSize{8192, 8192}));
  for (const char* bad : {"1920", "x1080", "1920x", "1920X1080", "abc", "1920x1080x2", " 1920x1080",
                          "-1920x1080", "1920*1080", "999999x1"}) {
    EXPECT_THAT(read_max_resolution(json(bad)).error(), HasSubstr("must be WIDTHxHEIGHT")) << bad;
  }
  EXPECT_THAT(read_max_resolution(json(1920)).error(), HasSubstr("must be WIDTHxHEIGHT"));
  EXPECT_THAT(read_max_resolution(json("320x200")).error(),
              HasSubstr("must be between 640x480 and 8192x8192"));
  EXPECT_THAT(read_max_resolution(json("9000x1080")).error(), HasSubstr("between 640x480"));
}

TEST(Apps, ReadsIdsAndStar) {
  EXPECT_EQ(read_apps(json::array({"*"})).value(), AppList::everything());
  AppList two = read_apps(json::array({"xterm", "gedit"})).value();
  EXPECT_FALSE(two.all);
  EXPECT_EQ(two.ids, (std::set<std::string>{"gedit", "xterm"}));
  EXPECT_TRUE(read_apps(json::array()).value().ids.empty());
  EXPECT_FALSE(read_apps(json::array()).value().all);
}

TEST(Apps, RejectsBadLists) {
  EXPECT_THAT(read_apps(json::array({"*", "xterm"})).error(),
              HasSubstr("must be the only element"));
  EXPECT_THAT(read_apps(json::array({"xterm", "xterm"})).error(),
              HasSubstr("element 2 \"xterm\" is listed twice"));
  EXPECT_THAT(read_apps(json::array({"Xterm"})).error(), HasSubstr("is not an app id"));
  EXPECT_THAT(read_apps(json::array({"xterm", 3})).error(),
              HasSubstr("element 2 must be a string"));
  EXPECT_THAT(read_apps(json("xterm")).error(), HasSubstr("must be an array"));
}

TEST(Apps, AllowsByIdOrStar) {
  EXPECT_TRUE(AppList::everything().allows("anything"));
  AppList l{false, {"xterm"}};
  EXPECT_TRUE(l.allows("xterm"));
  EXPECT_FALSE(l.allows("gedit"));
}

TEST(Enums, ReadExactNamesOnly) {
  EXPECT_EQ(read_clipboard(json("to-client")).value(), Clipboard::to_client);
  EXPECT_EQ(read_clipboard(json("to-server")).value(), Clipboard::to_server);
  EXPECT_EQ(read_clipboard(json("none")).value(), Clipboard::none);
  EXPECT_EQ(read_clipboard(json("both")).value(), Clipboard::both);
  EXPECT_EQ(read_clipboard(json("to_client")).error(),
            "must be one of \"none\", \"to-client\", \"to-server\", \"both\" (got \"to_client\")");
  EXPECT_EQ(read_network(json("full")).value(), Network::full);
  EXPECT_THAT(read_network(json("nat")).error(), HasSubstr("\"none\", \"loopback\", \"full\""));
  EXPECT_EQ(read_isolation(json("vm")).value(), Isolation::vm);
  EXPECT_THAT(read_isolation(json("VM")).error(), HasSubstr("(got \"VM\")"));
  EXPECT_THAT(read_isolation(json(1)).error(), HasSubstr("must be one of"));
}

TEST(Integers, EnforceRangesAndTypes) {
  EXPECT_EQ(read_cpu_weight(json(1)).value(), 1);
  EXPECT_EQ(read_cpu_weight(json(10000)).value(), 10000);
  EXPECT_EQ(read_cpu_weight(json(0)).error(), "must be between 1 and 10000 (got 0)");
  EXPECT_EQ(read_cpu_weight(json(10001)).error(), "must be between 1 and 10000 (got 10001)");
  EXPECT_THAT(read_cpu_weight(json(18446744073709551615ull)).error(),
              HasSubstr("between 1 and 10000"));
  EXPECT_THAT(read_cpu_weight(json(100.0)).error(), HasSubstr("must be an integer"));
  EXPECT_THAT(read_cpu_weight(json("100")).error(), HasSubstr("must be an integer"));
  EXPECT_EQ(read_cpu_max(json(200)).value(), Limit::of(200));
  EXPECT_EQ(read_cpu_max(json("unlimited")).value(), Limit::unlimited());
  EXPECT_THAT(read_cpu_max(json(0)).error(), HasSubstr("between 1 and 100000"));
  EXPECT_THAT(read_cpu_max(json("200%")).error(), HasSubstr("or \"unlimited\""));
  EXPECT_EQ(read_pids_max(json(512)).value(), Limit::of(512));
  EXPECT_THAT(read_pids_max(json(7)).error(), HasSubstr("between 8 and 4194304"));
  EXPECT_EQ(read_max_sessions(json(5)).value(), 5);
  EXPECT_THAT(read_max_sessions(json(0)).error(), HasSubstr("between 1 and 1000"));
  EXPECT_THAT(read_bool(json("yes")).error(), HasSubstr("must be true or false"));
}

TEST(Meet, PicksTheMostRestrictiveValueBothAllow) {
  EXPECT_EQ(meet(Isolation::container, Isolation::vm), Isolation::vm);
  EXPECT_EQ(meet(Limit::unlimited(), Limit::of(5)), Limit::of(5));
  EXPECT_EQ(meet(Limit::of(7), Limit::of(5)), Limit::of(5));
  EXPECT_EQ(meet(Limit::unlimited(), Limit::unlimited()), Limit::unlimited());
  EXPECT_EQ(meet_timeout(seconds{0}, seconds{600}), seconds{600});
  EXPECT_EQ(meet_timeout(seconds{900}, seconds{600}), seconds{600});
  EXPECT_EQ(meet(Clipboard::to_client, Clipboard::to_server), Clipboard::none);
  EXPECT_EQ(meet(Clipboard::both, Clipboard::to_server), Clipboard::to_server);
  EXPECT_EQ(meet(Clipboard::both, Clipboard::both), Clipboard::both);
  EXPECT_FALSE(meet_bool(true, false));
  EXPECT_EQ(meet(Network::full, Network::loopback), Network::loopback);
  EXPECT_EQ(meet(Network::none, Network::full), Network::none);
  EXPECT_EQ(meet(ScreenSize{1920, 1080}, ScreenSize{1280, 1440}), (ScreenSize{1280, 1080}));
  AppList ab{false, {"a", "b"}}, bc{false, {"b", "c"}};
  EXPECT_EQ(meet(ab, bc), (AppList{false, {"b"}}));
  EXPECT_EQ(meet(AppList::everything(), bc), bc);
  EXPECT_EQ(meet(AppList::everything(), AppList::everything()), AppList::everything());
}

}  // namespace
}  // namespace appvirt::policies
