// The event-stream parser: framing, line ends, comments and pieces of any size.
#include "llm/openai/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eventloom::openai {
namespace {

// Parses `pieces` in order and returns the data of every event.
std::vector<std::string> Parse(const std::vector<std::string>& pieces, bool finish = true) {
    SseParser parser;
    std::vector<std::string> events;
    const SseParser::EventHandler collect = [&](std::string_view data) {
        events.emplace_back(data);
        return Status::Ok();
    };
    for (const std::string& piece : pieces) EXPECT_TRUE(parser.Feed(piece, collect).ok());
    if (finish) {
        EXPECT_TRUE(parser.Finish(collect).ok());
    }
    return events;
}

using Events = std::vector<std::string>;

TEST(SseParser, SplitsEventsOnBlankLines) {
    EXPECT_EQ(Parse({"data: a\n\ndata: b\n\n"}), (Events{"a", "b"}));
}

TEST(SseParser, JoinsMultiLineDataWithNewlines) {
    EXPECT_EQ(Parse({"data: {\"a\":\ndata: 1}\n\n"}), (Events{"{\"a\":\n1}"}));
}

TEST(SseParser, SkipsCommentsAndOtherFields) {
    EXPECT_EQ(Parse({": ping\n\nevent: message\nid: 7\nretry: 100\ndata: x\n\n"}), (Events{"x"}));
}

TEST(SseParser, AcceptsCrLfAndCrLineEnds) {
    EXPECT_EQ(Parse({"data: a\r\n\r\ndata: b\r\rdata: c\n\n"}), (Events{"a", "b", "c"}));
}

TEST(SseParser, ReassemblesEventsSplitAcrossPieces) {
    EXPECT_EQ(Parse({"da", "ta: hel", "lo\r", "\n", "\r", "\ndata:x\n", "\n"}),
              (Events{"hello", "x"}));
}

TEST(SseParser, DropsOnlyOneSpaceAfterTheColon) {
    EXPECT_EQ(Parse({"data:  two\n\ndata:none\n\n"}), (Events{" two", "none"}));
}

TEST(SseParser, DeliversAnUnterminatedLastEventAtFinish) {
    EXPECT_EQ(Parse({"data: a\n\ndata: [DONE]"}, false), (Events{"a"}));
    EXPECT_EQ(Parse({"data: a\n\ndata: [DONE]"}), (Events{"a", "[DONE]"}));
}

TEST(SseParser, StopsAtTheHandlersError) {
    SseParser parser;
    int calls = 0;
    const Status status = parser.Feed("data: a\n\ndata: b\n\n", [&](std::string_view) {
        ++calls;
        return UnavailableError("bad");
    });
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace eventloom::openai
