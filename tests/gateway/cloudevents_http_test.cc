#include "gateway/cloudevents_http.h"

#include <gtest/gtest.h>

namespace eventloom::gateway {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

TEST(CloudEventsModeOf, IgnoresParametersAndCase) {
    EXPECT_EQ(CloudEventsModeOf("Application/CloudEvents+JSON; charset=utf-8"),
              CloudEventsMode::kStructured);
    EXPECT_EQ(CloudEventsModeOf("application/cloudevents-batch+json"), CloudEventsMode::kBatch);
    EXPECT_EQ(CloudEventsModeOf("application/json"), CloudEventsMode::kBinary);
    EXPECT_EQ(CloudEventsModeOf(""), CloudEventsMode::kBinary);
}

TEST(PercentDecode, DecodesEscapesAndKeepsMalformedOnes) {
    EXPECT_EQ(PercentDecode("a%20b%2Fc"), "a b/c");
    EXPECT_EQ(PercentDecode("100%"), "100%");
    EXPECT_EQ(PercentDecode("%zz"), "%zz");
}

TEST(ParseCloudEventsRequest, BinaryModeTakesHeadersAndBody) {
    Headers headers = {{"ce-specversion", "1.0"},    {"ce-id", "e1"},
                       {"ce-source", "/shop"},       {"ce-type", "order.created"},
                       {"ce-subject", "order%2042"}, {"content-type", "application/json"}};
    auto events = ParseCloudEventsRequest(headers, R"({"total":3})");
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    ASSERT_EQ(events->size(), 1u);
    const Event& e = (*events)[0];
    EXPECT_EQ(e.id, "e1");
    EXPECT_EQ(e.type, "order.created");
    EXPECT_EQ(e.subject, "order 42");
    EXPECT_EQ(e.datacontenttype, "application/json");
    EXPECT_EQ(e.data, R"({"total":3})");
}

TEST(ParseCloudEventsRequest, BinaryModeWithoutSpecversionNamesIt) {
    Headers headers = {{"ce-id", "e1"}, {"ce-source", "/shop"}, {"ce-type", "t"}};
    auto events = ParseCloudEventsRequest(headers, "x");
    ASSERT_FALSE(events.ok());
    EXPECT_NE(events.status().message().find("specversion"), std::string::npos);
}

TEST(ParseCloudEventsRequest, StructuredModeReadsOneEvent) {
    Headers headers = {{"content-type", "application/cloudevents+json"}};
    auto events = ParseCloudEventsRequest(
        headers, R"({"specversion":"1.0","id":"e2","source":"/s","type":"t","data":{"a":1}})");
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    ASSERT_EQ(events->size(), 1u);
    EXPECT_EQ((*events)[0].id, "e2");
    EXPECT_EQ((*events)[0].data, R"({"a":1})");
}

TEST(ParseCloudEventsRequest, BatchModeReadsEveryEvent) {
    Headers headers = {{"content-type", "application/cloudevents-batch+json"}};
    auto events = ParseCloudEventsRequest(
        headers, R"([{"specversion":"1.0","id":"a","source":"/s","type":"t"},)"
                 R"({"specversion":"1.0","id":"b","source":"/s","type":"t"}])");
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[1].id, "b");
}

TEST(ParseCloudEventsRequest, BatchWithOneBadEventNamesIndexAndAttribute) {
    Headers headers = {{"content-type", "application/cloudevents-batch+json"}};
    auto events = ParseCloudEventsRequest(
        headers, R"([{"specversion":"1.0","id":"a","source":"/s","type":"t"},)"
                 R"({"specversion":"1.0","id":"b","type":"t"}])");
    ASSERT_FALSE(events.ok());
    EXPECT_NE(events.status().message().find("[1]"), std::string::npos)
        << events.status().message();
    EXPECT_NE(events.status().message().find("source"), std::string::npos)
        << events.status().message();
}

TEST(ParseCloudEventsRequest, EmptyBatchIsRejected) {
    Headers headers = {{"content-type", "application/cloudevents-batch+json"}};
    auto events = ParseCloudEventsRequest(headers, "[]");
    ASSERT_FALSE(events.ok());
    EXPECT_EQ(events.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace eventloom::gateway
