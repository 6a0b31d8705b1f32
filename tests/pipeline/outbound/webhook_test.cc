// Webhook signatures (a known-answer vector computed once with `openssl dgst -sha256 -hmac`)
// and the WebhookSender against FakeOpenAiServer, a scripted HTTP server test double.
#include "pipeline/outbound/webhook.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llm/openai/fake_openai_server.h"
#include "runtime/retry.h"
#include "support/ports.h"

namespace eventloom::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
using pipeline::VerifyWebhookSignature;
using pipeline::WebhookDelivery;
using pipeline::WebhookSender;
using pipeline::WebhookSignature;

// printf '%s' '1700000000.{"id":"job-1"}' | openssl dgst -sha256 -hmac 's3cret'
constexpr const char* kVectorSignature =
    "sha256=4400f36d572856b276f08292d5643f7c66338b84f09aabb6458be575784e2768";
// printf '%s' '1712345678.{"id":"a1","status":"succeeded"}' |
//     openssl dgst -sha256 -hmac 'whsec_test_key'
constexpr const char* kVectorSignature2 =
    "sha256=3e9d4c2c9c327c2608aff062e1a45fa588bff59a8e4fcb3b25a88b3ebad43e6a";

TEST(WebhookSignature, MatchesKnownVectors) {
    EXPECT_EQ(WebhookSignature("s3cret", "1700000000", R"({"id":"job-1"})"), kVectorSignature);
    EXPECT_EQ(
        WebhookSignature("whsec_test_key", "1712345678", R"({"id":"a1","status":"succeeded"})"),
        kVectorSignature2);
}

TEST(VerifyWebhookSignature, AcceptsTheKnownVector) {
    EXPECT_TRUE(
        VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-1"})", kVectorSignature));
}

TEST(VerifyWebhookSignature, AcceptsUppercaseHex) {
    std::string upper = kVectorSignature;
    for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
    EXPECT_TRUE(VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-1"})", upper));
}

TEST(VerifyWebhookSignature, RejectsATamperedBody) {
    EXPECT_FALSE(
        VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-2"})", kVectorSignature));
    EXPECT_FALSE(
        VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-1"} )", kVectorSignature));
}

TEST(VerifyWebhookSignature, RejectsATamperedTimestamp) {
    EXPECT_FALSE(
        VerifyWebhookSignature("s3cret", "1700000001", R"({"id":"job-1"})", kVectorSignature));
}

TEST(VerifyWebhookSignature, RejectsAnotherSecret) {
    EXPECT_FALSE(
        VerifyWebhookSignature("s3cret2", "1700000000", R"({"id":"job-1"})", kVectorSignature));
}

TEST(VerifyWebhookSignature, RejectsMalformedSignatures) {
    const std::string hex = std::string(kVectorSignature).substr(7);
    for (const std::string& bad : {hex, "sha1=" + hex, std::string(kVectorSignature) + "0",
                                   std::string(), std::string("sha256=")}) {
        SCOPED_TRACE(bad);
        EXPECT_FALSE(VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-1"})", bad));
    }
}

TEST(VerifyWebhookSignature, RejectsATimestampOlderThanMaxAge) {
    const auto now = std::chrono::system_clock::from_time_t(1700000000) + 301s;
    EXPECT_FALSE(VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-1"})",
                                        kVectorSignature, 300s, now));
}

TEST(VerifyWebhookSignature, AcceptsATimestampWithinMaxAge) {
    const auto now = std::chrono::system_clock::from_time_t(1700000000) + 299s;
    EXPECT_TRUE(VerifyWebhookSignature("s3cret", "1700000000", R"({"id":"job-1"})",
                                       kVectorSignature, 300s, now));
}

TEST(VerifyWebhookSignature, RejectsATimestampThatIsNotANumberWhenAgeMatters) {
    const std::string sig = WebhookSignature("s3cret", "soon", "{}");
    EXPECT_TRUE(VerifyWebhookSignature("s3cret", "soon", "{}", sig));
    EXPECT_FALSE(VerifyWebhookSignature("s3cret", "soon", "{}", sig, 300s));
}

class WebhookSenderTest : public ::testing::Test {
protected:
    WebhookDelivery Delivery(const std::string& path = "/hook") {
        WebhookDelivery d;
        d.url = "http://127.0.0.1:" + std::to_string(server_.port()) + path;
        d.body = R"({"id":"job-1","status":"succeeded"})";
        d.event_id = "evt-1";
        d.secret = "s3cret";
        return d;
    }

    FakeOpenAiServer server_;
    WebhookSender sender_;
};

TEST_F(WebhookSenderTest, PostsTheBodyWithItsHeaders) {
    server_.SetDefault(FakeResponse::Error(200, "{}"));

    ASSERT_TRUE(sender_.Send(Delivery()).ok());

    ASSERT_EQ(server_.request_count(), 1u);
    const ReceivedRequest r = server_.requests()[0];
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/hook");
    EXPECT_EQ(r.body, R"({"id":"job-1","status":"succeeded"})");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.headers.at("x-eventloom-event-id"), "evt-1");
    const std::string& stamp = r.headers.at("x-eventloom-timestamp");
    EXPECT_FALSE(stamp.empty());
    EXPECT_EQ(stamp.find_first_not_of("0123456789"), std::string::npos) << stamp;
}

TEST_F(WebhookSenderTest, SignatureVerifiesAgainstTheReceivedBytes) {
    server_.SetDefault(FakeResponse::Error(200, "{}"));

    ASSERT_TRUE(sender_.Send(Delivery()).ok());

    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_TRUE(VerifyWebhookSignature("s3cret", r.headers.at("x-eventloom-timestamp"), r.body,
                                       r.headers.at("x-eventloom-signature"), 600s));
}

TEST_F(WebhookSenderTest, GivenTimestampIsSigned) {
    server_.SetDefault(FakeResponse::Error(200, "{}"));
    WebhookDelivery d = Delivery();
    d.body = R"({"id":"job-1"})";
    d.timestamp = 1700000000;

    ASSERT_TRUE(sender_.Send(d).ok());

    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_EQ(r.headers.at("x-eventloom-timestamp"), "1700000000");
    EXPECT_EQ(r.headers.at("x-eventloom-signature"), kVectorSignature);
}

TEST_F(WebhookSenderTest, NoSecretSendsNoSignature) {
    server_.SetDefault(FakeResponse::Error(200, "{}"));
    WebhookDelivery d = Delivery();
    d.secret.clear();

    ASSERT_TRUE(sender_.Send(d).ok());

    EXPECT_EQ(server_.requests().at(0).headers.count("x-eventloom-signature"), 0u);
}

TEST_F(WebhookSenderTest, AnswersAreClassifiedByStatus) {
    struct Case {
        int status;
        StatusCode code;
    };
    const Case cases[] = {
        {200, StatusCode::kOk},
        {201, StatusCode::kOk},
        {204, StatusCode::kOk},
        {408, StatusCode::kUnavailable},
        {429, StatusCode::kUnavailable},
        {500, StatusCode::kUnavailable},
        {502, StatusCode::kUnavailable},
        {503, StatusCode::kUnavailable},
        {301, StatusCode::kFailedPrecondition},
        {400, StatusCode::kFailedPrecondition},
        {401, StatusCode::kFailedPrecondition},
        {404, StatusCode::kFailedPrecondition},
        {410, StatusCode::kFailedPrecondition},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.status);
        server_.Enqueue(FakeResponse::Error(c.status, R"({"error":"nope"})"));
        Status sent = sender_.Send(Delivery());
        EXPECT_EQ(sent.code(), c.code) << sent.ToString();
        if (!sent.ok()) {
            EXPECT_THAT(sent.message(), HasSubstr("/hook"));
            EXPECT_THAT(sent.message(), HasSubstr("HTTP " + std::to_string(c.status)));
        }
    }
}

TEST_F(WebhookSenderTest, RetryAfterSecondsIsCarriedInTheStatus) {
    server_.Enqueue(FakeResponse::Error(503, "busy", {{"Retry-After", "7"}}));

    Status sent = sender_.Send(Delivery());

    EXPECT_EQ(sent.code(), StatusCode::kUnavailable);
    EXPECT_EQ(RetryAfterHint(sent), 7000ms);
}

TEST_F(WebhookSenderTest, RetryAfterOnTooManyRequestsIsCarriedInTheStatus) {
    server_.Enqueue(FakeResponse::Error(429, "slow down", {{"Retry-After", "2"}}));

    Status sent = sender_.Send(Delivery());

    EXPECT_EQ(sent.code(), StatusCode::kUnavailable);
    EXPECT_EQ(RetryAfterHint(sent), 2000ms);
}

TEST_F(WebhookSenderTest, ErrorMessagesLeaveOutTheQueryString) {
    server_.Enqueue(FakeResponse::Error(400, "bad"));

    Status sent = sender_.Send(Delivery("/hook?token=hunter2"));

    EXPECT_EQ(sent.code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(sent.message(), HasSubstr("/hook"));
    EXPECT_THAT(sent.message(), Not(HasSubstr("hunter2")));
}

TEST_F(WebhookSenderTest, LargeAnswerBodyStillSucceeds) {
    server_.Enqueue(FakeResponse::Error(200, std::string(200 << 10, 'x')));

    EXPECT_TRUE(sender_.Send(Delivery()).ok());
}

TEST_F(WebhookSenderTest, SilentServerIsUnavailableAfterTheTimeout) {
    FakeResponse silent = FakeResponse::Error(200, "");
    silent.hold_open = true;  // a head, then nothing until the client gives up
    server_.Enqueue(silent);
    WebhookDelivery d = Delivery();
    d.timeout = 300ms;

    Status sent = sender_.Send(d);

    EXPECT_EQ(sent.code(), StatusCode::kUnavailable) << sent.ToString();
}

TEST_F(WebhookSenderTest, CancelledSendIsCancelled) {
    FakeResponse silent = FakeResponse::Error(200, "");
    silent.hold_open = true;
    server_.Enqueue(silent);
    WebhookDelivery d = Delivery();
    d.cancelled = [] { return true; };

    EXPECT_EQ(sender_.Send(d).code(), StatusCode::kCancelled);
}

TEST(WebhookSender, RefusedConnectionIsUnavailable) {
    WebhookSender sender;
    WebhookDelivery d;
    d.url = "http://127.0.0.1:" + std::to_string(UnusedLoopbackPort()) + "/hook";
    d.body = "{}";
    d.event_id = "evt-1";

    Status sent = sender.Send(d);

    EXPECT_EQ(sent.code(), StatusCode::kUnavailable) << sent.ToString();
    EXPECT_THAT(sent.message(), HasSubstr("/hook"));
}

TEST(WebhookSender, UrlThatIsNotHttpIsInvalidArgument) {
    WebhookSender sender;
    for (const char* url :
         {"ftp://example.test/x", "file:///etc/passwd", "example.test/hook", "http://"}) {
        SCOPED_TRACE(url);
        WebhookDelivery d;
        d.url = url;
        d.body = "{}";
        d.event_id = "evt-1";
        EXPECT_EQ(sender.Send(d).code(), StatusCode::kInvalidArgument);
    }
}

TEST(WebhookSender, EventIdWithALineBreakIsInvalidArgument) {
    WebhookSender sender;
    WebhookDelivery d;
    d.url = "http://127.0.0.1:1/hook";
    d.body = "{}";
    d.event_id = "evt-1\r\nX-Injected: 1";

    EXPECT_EQ(sender.Send(d).code(), StatusCode::kInvalidArgument);
}

TEST(WebhookTopic, IsThePipelineNameWithWebhooks) {
    EXPECT_EQ(pipeline::WebhookTopic("support-triage"), "support-triage.webhooks");
}

}  // namespace
}  // namespace eventloom::testing
