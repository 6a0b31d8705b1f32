// The webhook stage under a StageRunner on the pipeline's webhook topic: retries through the
// log until the receiver (FakeOpenAiServer, a test double) accepts, dead letters when it
// refuses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llm/openai/fake_openai_server.h"
#include "outbound_fixture.h"
#include "pipeline/outbound/stages.h"
#include "pipeline/outbound/webhook.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class WebhookStageTest : public OutboundFixture {
protected:
    std::string Url(const std::string& path) {
        return "http://127.0.0.1:" + std::to_string(server_.port()) + path;
    }

    Event Request(const std::string& id, const json& data) {
        return JsonEvent(id, std::string(pipeline::kWebhookRequestedType), data);
    }

    FakeOpenAiServer server_;
};

TEST_F(WebhookStageTest, UnavailableReceiverIsRetriedUntilItAccepts) {
    server_.Enqueue(FakeResponse::Error(503, "down"));
    server_.Enqueue(FakeResponse::Error(503, "still down"));
    server_.SetDefault(FakeResponse::Error(200, "{}"));
    StageRunner* stage = RunWebhookStage();

    Publish(pipeline::WebhookTopic(kPipeline),
            Request("wh-1", {{"url", Url("/hook")}, {"body", {{"id", "j1"}}}, {"job", "j1"}}));

    ASSERT_TRUE(Eventually([&] { return stage->stats().succeeded == 1; }));
    EXPECT_EQ(stage->stats().retried, 2);
    const auto requests = server_.requests();
    ASSERT_EQ(requests.size(), 3u);
    for (const ReceivedRequest& r : requests) {
        EXPECT_EQ(r.headers.at("x-eventloom-event-id"), "wh-1");
        EXPECT_EQ(r.body, R"({"id":"j1"})");
    }
}

TEST_F(WebhookStageTest, DeliveryIsSignedWithTheContextSecret) {
    server_.SetDefault(FakeResponse::Error(200, "{}"));
    StageRunner* stage = RunWebhookStage();

    Publish(pipeline::WebhookTopic(kPipeline),
            Request("wh-1", {{"url", Url("/hook")}, {"body", {{"id", "j1"}}}}));

    ASSERT_TRUE(Eventually([&] { return stage->stats().succeeded == 1; }));
    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_TRUE(pipeline::VerifyWebhookSignature(kSecret, r.headers.at("x-eventloom-timestamp"),
                                                 r.body, r.headers.at("x-eventloom-signature")));
}

TEST_F(WebhookStageTest, RefusedRequestIsDeadLettered) {
    server_.SetDefault(FakeResponse::Error(400, R"({"error":"unknown hook"})"));
    StageRunner* stage = RunWebhookStage();

    Publish(pipeline::WebhookTopic(kPipeline),
            Request("wh-1", {{"url", Url("/hook")}, {"body", {{"id", "j1"}}}, {"job", "j1"}}));

    const auto dead = ReadAll(pipeline::WebhookStageOptions(kPipeline).dead_letter_topic, 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, "wh-1");
    const std::string reason = Extension(dead[0], kDeadLetterReason);
    EXPECT_THAT(reason, HasSubstr("HTTP 400"));
    EXPECT_THAT(reason, HasSubstr("/hook"));
    EXPECT_THAT(reason, HasSubstr("job 'j1'"));
    EXPECT_EQ(server_.request_count(), 1u);
    EXPECT_EQ(stage->stats().retried, 0);
}

TEST_F(WebhookStageTest, RequestWithoutUrlIsDeadLetteredWithoutAPost) {
    RunWebhookStage();

    Publish(pipeline::WebhookTopic(kPipeline), Request("wh-1", {{"body", {{"id", "j1"}}}}));

    const auto dead = ReadAll(pipeline::WebhookStageOptions(kPipeline).dead_letter_topic, 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason), HasSubstr("'url'"));
    EXPECT_EQ(server_.request_count(), 0u);
}

TEST_F(WebhookStageTest, ReceiverDownForEveryAttemptEndsInTheDeadLetterTopic) {
    server_.SetDefault(FakeResponse::Error(503, "down"));
    RunWebhookStage();

    Publish(pipeline::WebhookTopic(kPipeline),
            Request("wh-1", {{"url", Url("/hook")}, {"body", json::object()}}));

    const auto dead = ReadAll(pipeline::WebhookStageOptions(kPipeline).dead_letter_topic, 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason), HasSubstr("gave up after 4 attempts"));
    EXPECT_EQ(server_.request_count(), 4u);
}

TEST(WebhookStageOptions, ConsumeTheWebhookTopicAndRetryForAWhile) {
    const StageOptions o = pipeline::WebhookStageOptions("shop");
    EXPECT_EQ(o.consumes, "shop.webhooks");
    EXPECT_EQ(o.dead_letter_topic, "shop.webhooks.dead-letter");
    EXPECT_GE(o.retry.max_attempts, 5);
    EXPECT_TRUE(o.retry.Validate().ok());
}

}  // namespace
}  // namespace eventloom::testing
