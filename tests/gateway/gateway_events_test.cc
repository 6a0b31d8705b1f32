// CloudEvents ingest over real HTTP: binary, structured and batch modes, published to the
// topic and answered 202 with where each event landed.
#include "gateway/gateway_fixture.h"
#include "support/topic_reader.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;

constexpr const char* kBatchType = "application/cloudevents-batch+json";

std::string StructuredEvent(const std::string& id) {
    return json{{"specversion", "1.0"},
                {"id", id},
                {"source", "/shop"},
                {"type", "order.created"},
                {"data", {{"id", id}}}}
        .dump();
}

TEST_F(GatewayTest, BinaryEventIsPublishedToThePathTopic) {
    Start();
    HttpReply r = client().Post("/v1/events/audit", R"({"user":"ada"})",
                                {{"ce-specversion", "1.0"},
                                 {"ce-id", "login-1"},
                                 {"ce-source", "/auth"},
                                 {"ce-type", "user.login"},
                                 {"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 202) << r.body;
    json accepted = r.Json()["accepted"];
    ASSERT_EQ(accepted.size(), 1u);
    EXPECT_EQ(accepted[0]["id"], "login-1");
    EXPECT_EQ(accepted[0]["topic"], "audit");
    EXPECT_EQ(accepted[0]["partition"], 0);
    EXPECT_EQ(accepted[0]["offset"], 0);

    TopicReader reader(broker_.get(), "audit");
    const auto& events = reader.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "user.login");
    EXPECT_EQ(events[0].data, R"({"user":"ada"})");
}

TEST_F(GatewayTest, StructuredEventGoesToTheFirstEventTopic) {
    Start();
    HttpReply r = client().Post("/v1/events", StructuredEvent("o-1"),
                                {{"Content-Type", "application/cloudevents+json"}});
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.Json()["accepted"][0]["topic"], "orders");
    TopicReader reader(broker_.get(), "orders");
    const auto& events = reader.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].id, "o-1");
}

TEST_F(GatewayTest, BatchIsPublishedWhole) {
    Start();
    std::string batch = "[" + StructuredEvent("o-1") + "," + StructuredEvent("o-2") + "]";
    HttpReply r = client().Post("/v1/events/orders", batch, {{"Content-Type", kBatchType}});
    ASSERT_EQ(r.status, 202) << r.body;
    json accepted = r.Json()["accepted"];
    ASSERT_EQ(accepted.size(), 2u);
    EXPECT_EQ(accepted[1]["id"], "o-2");
    EXPECT_EQ(accepted[1]["offset"], 1);
    TopicReader reader(broker_.get(), "orders");
    EXPECT_EQ(reader.WaitFor(2).size(), 2u);
}

TEST_F(GatewayTest, BatchWithOneBadEventIsRejectedWhole) {
    Start();
    json bad = json::parse(StructuredEvent("o-2"));
    bad.erase("type");
    std::string batch = "[" + StructuredEvent("o-1") + "," + bad.dump() + "]";
    HttpReply r = client().Post("/v1/events/orders", batch, {{"Content-Type", kBatchType}});
    ASSERT_EQ(r.status, 400) << r.body;
    std::string message = r.Json()["error"]["message"];
    EXPECT_NE(message.find("[1]"), std::string::npos) << message;
    EXPECT_NE(message.find("type"), std::string::npos) << message;

    // Nothing of the batch was published: the next event is the topic's first.
    ASSERT_EQ(client()
                  .Post("/v1/events/orders", StructuredEvent("marker"),
                        {{"Content-Type", "application/cloudevents+json"}})
                  .status,
              202);
    TopicReader reader(broker_.get(), "orders");
    const auto& events = reader.WaitFor(1);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events[0].id, "marker");
}

TEST_F(GatewayTest, TopicNotOpenToEventsIs404NamingIt) {
    Start();
    HttpReply r = client().Post("/v1/events/chat.requests", StructuredEvent("x"),
                                {{"Content-Type", "application/cloudevents+json"}});
    ASSERT_EQ(r.status, 404) << r.body;
    std::string message = r.Json()["error"]["message"];
    EXPECT_NE(message.find("chat.requests"), std::string::npos) << message;
}

TEST_F(GatewayTest, BinaryEventWithoutSpecversionIs400) {
    Start();
    HttpReply r = client().Post("/v1/events/orders", "{}", {{"ce-id", "x"}});
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("specversion"),
              std::string::npos);
}

}  // namespace
}  // namespace eventloom::testing
