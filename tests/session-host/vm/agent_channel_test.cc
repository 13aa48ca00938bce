// The guest agent channel (session-host/vm/agent_channel.h): event lines from a fake agent on a
// Unix socket (QEMU's chardev end), and the validation of relayed activity reports.
#include "session-host/vm/agent_channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/unique_fd.h"
#include "tests/tools/test_support.h"

namespace appvirt::vm {
namespace {

using std::chrono::milliseconds;

// A listening socket standing in for QEMU's `-chardev socket,server=on`.
class FakeAgentSocket {
 public:
  explicit FakeAgentSocket(const std::string& path) : listen_(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ok_ = ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
          ::listen(listen_.get(), 1) == 0;
  }
  bool ok() const { return ok_; }
  bool accept() {
    peer_ = UniqueFd(::accept(listen_.get(), nullptr, nullptr));
    return static_cast<bool>(peer_);
  }
  void send(const std::string& s) {
    ASSERT_EQ(::write(peer_.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  void hang_up() { peer_.reset(); }

 private:
  UniqueFd listen_, peer_;
  bool ok_ = false;
};

TEST(AgentChannel, ObjectsInOrderNoiseSkippedTimeoutThenClose) {
  testing::TempDir dir;
  FakeAgentSocket agent(dir.path() + "/agent.sock");
  ASSERT_TRUE(agent.ok());
  auto channel = AgentChannel::connect(dir.path() + "/agent.sock", milliseconds(2000));
  ASSERT_TRUE(channel) << channel.error().str();
  ASSERT_TRUE(agent.accept());
  // Split writes, noise and non-objects between the events: only objects come out, in order.
  agent.send("console noise\n[1,2]\n{\"event\":\"ready\",\"rdp_port\":3389}\n{\"event\":\"act");
  agent.send("ivity\",\"clients\":1,\"since_age_ms\":5,\"input_age_ms\":-1}\r\n");
  auto first = channel->next(milliseconds(2000));
  ASSERT_TRUE(first && *first) << (first ? "timeout" : first.error().str());
  EXPECT_EQ((*first)->value("event", ""), "ready");
  auto second = channel->next(milliseconds(2000));
  ASSERT_TRUE(second && *second);
  EXPECT_EQ((*second)->value("event", ""), "activity");
  // Nothing more for a while: no event, no error.
  auto none = channel->next(milliseconds(100));
  ASSERT_TRUE(none) << none.error().str();
  EXPECT_FALSE(*none);
  // QEMU gone: the channel reports the close.
  agent.hang_up();
  auto closed = channel->next(milliseconds(2000));
  ASSERT_FALSE(closed);
  EXPECT_NE(closed.error().str().find("closed"), std::string::npos) << closed.error().str();
}

TEST(AgentChannel, ConnectFailsInTimeWithoutQemu) {
  testing::TempDir dir;
  auto channel = AgentChannel::connect(dir.path() + "/none.sock", milliseconds(150));
  EXPECT_FALSE(channel);
}

TEST(AgentActivityParse, ValidReportAndNoInputYet) {
  auto a = parse_agent_activity(nlohmann::json::parse(
      R"({"event":"activity","clients":2,"since_age_ms":1500,"input_age_ms":-1})"));
  ASSERT_TRUE(a) << a.error().str();
  EXPECT_EQ(a->clients, 2);
  EXPECT_EQ(a->since_age_ms, 1500);
  EXPECT_EQ(a->input_age_ms, -1);
  auto b = parse_agent_activity(nlohmann::json::parse(
      R"({"event":"activity","clients":0,"since_age_ms":0,"input_age_ms":70})"));
  ASSERT_TRUE(b) << b.error().str();
  EXPECT_EQ(b->input_age_ms, 70);
}

TEST(AgentActivityParse, RejectsWhatTheGuestMustNotSend) {
  for (const char* bad : {
           R"({"event":"ready","clients":0,"since_age_ms":0,"input_age_ms":-1})",
           R"({"event":"activity","since_age_ms":0,"input_age_ms":-1})",
           R"({"event":"activity","clients":-1,"since_age_ms":0,"input_age_ms":-1})",
           R"({"event":"activity","clients":"1","since_age_ms":0,"input_age_ms":-1})",
           R"({"event":"activity","clients":1,"since_age_ms":-5,"input_age_ms":-1})",
           R"({"event":"activity","clients":1,"since_age_ms":0,"input_age_ms":-2})",
           R"({"event":"activity","clients":1,"since_age_ms":1.5,"input_age_ms":-1})",
           R"({"event":"activity","clients":1,"since_age_ms":99999999999999,"input_age_ms":-1})",
           R"([{"event":"activity"}])",
           // Found by guest_agent_fuzz: a non-string event name threw out of the parser (and
           // would have ended hostd's reader thread with std::terminate).
           R"({"event":0})",
           R"({"event":["activity"],"clients":1,"since_age_ms":0,"input_age_ms":-1})"}) {
    EXPECT_FALSE(parse_agent_activity(nlohmann::json::parse(bad))) << bad;
  }
}

TEST(AgentEvent, NameOnlyWhenAString) {
  EXPECT_EQ(agent_event(nlohmann::json::parse(R"({"event":"ready"})")), "ready");
  EXPECT_EQ(agent_event(nlohmann::json::parse(R"({"event":0})")), "");
  EXPECT_EQ(agent_event(nlohmann::json::parse(R"({"event":null})")), "");
  EXPECT_EQ(agent_event(nlohmann::json::parse(R"({"what":"app"})")), "");
  EXPECT_EQ(agent_event(nlohmann::json::parse(R"(["event"])")), "");
}

}  // namespace
}  // namespace appvirt::vm
