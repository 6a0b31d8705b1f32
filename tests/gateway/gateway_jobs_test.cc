// Jobs over real HTTP: 202 and the record, status, and the event stream of a job's progress
// and result (the pipeline's side is played by the test, publishing what its stages would).
#include <thread>

#include "gateway/gateway_fixture.h"
#include "support/topic_reader.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class GatewayJobsTest : public GatewayTest {
protected:
    // Submits a job; returns its id (empty on failure, with the test failed).
    std::string Submit(const std::string& body = R"({"data":{"ticket":7}})") {
        HttpReply r = client().Post("/v1/jobs", body);
        EXPECT_EQ(r.status, 202) << r.body;
        if (r.status != 202) return {};
        return r.Json()["id"].get<std::string>();
    }
};

TEST_F(GatewayJobsTest, SubmittedJobIsAcceptedAndPublished) {
    Start();
    HttpReply r = client().Post("/v1/jobs", R"({"data":{"ticket":7},"type":"ticket.triage"})");
    ASSERT_EQ(r.status, 202) << r.body;
    json body = r.Json();
    std::string id = body["id"];
    EXPECT_EQ(body["status"], "queued");
    EXPECT_EQ(body["status_url"], "/v1/jobs/" + id);
    EXPECT_EQ(body["events_url"], "/v1/jobs/" + id + "/events");
    EXPECT_EQ(r.Header("location"), "/v1/jobs/" + id);

    TopicReader reader(broker_.get(), "jobs.requests");
    const auto& events = reader.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].id, id);
    EXPECT_EQ(events[0].type, "ticket.triage");
    EXPECT_EQ(events[0].correlationid, id);
    EXPECT_EQ(json::parse(events[0].data)["ticket"], 7);
}

TEST_F(GatewayJobsTest, JobEventCarriesTheCallersTraceContext) {
    Start();
    const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    HttpReply r = client().Post("/v1/jobs", R"({"data":1})",
                                {{"traceparent", parent}, {"tracestate", "vendor=1"}});
    ASSERT_EQ(r.status, 202) << r.body;
    // A malformed trace header is dropped; the job is still accepted.
    HttpReply bad = client().Post("/v1/jobs", R"({"data":2})", {{"traceparent", "00-nonsense"}});
    ASSERT_EQ(bad.status, 202) << bad.body;

    TopicReader reader(broker_.get(), "jobs.requests");
    const auto& events = reader.WaitFor(2);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].traceparent, parent);
    EXPECT_EQ(events[0].tracestate, "vendor=1");
    EXPECT_TRUE(events[1].traceparent.empty()) << events[1].traceparent;
}

TEST_F(GatewayJobsTest, StatusOfQueuedJobIsItsRecord) {
    Start();
    Submit();  // offset 0
    HttpReply submitted = client().Post("/v1/jobs", R"({"data":{"ticket":8}})");
    ASSERT_EQ(submitted.status, 202) << submitted.body;
    std::string id = submitted.Json()["id"];
    HttpReply r = client().Get("/v1/jobs/" + id);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["id"], id);
    EXPECT_EQ(r.Json()["status"], "queued");
    EXPECT_EQ(r.Json()["topic"], "jobs.requests");
    // Where its event landed, as the 202 said.
    EXPECT_EQ(r.Json()["partition"], submitted.Json()["partition"]);
    EXPECT_EQ(r.Json()["offset"], 1);
}

TEST_F(GatewayJobsTest, StatusOfSucceededJobHasItsResult) {
    Start();
    std::string id = Submit();
    ASSERT_TRUE(jobs_->Succeed(id, R"({"answer":42})", "job.succeeded").ok());
    HttpReply r = client().Get("/v1/jobs/" + id);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["status"], "succeeded");
    EXPECT_EQ(r.Json()["result"]["answer"], 42);
}

TEST_F(GatewayJobsTest, UnknownJobIs404) {
    Start();
    HttpReply r = client().Get("/v1/jobs/no-such-job");
    ASSERT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "job_not_found");
    EXPECT_EQ(client().Get("/v1/jobs/no-such-job/events").status, 404);
}

TEST_F(GatewayJobsTest, JobWithoutDataIs400) {
    Start();
    HttpReply r = client().Post("/v1/jobs", R"({"topic":"jobs.requests"})");
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.Json()["error"]["param"], "data");
}

TEST_F(GatewayJobsTest, JobOnTopicNotForJobsIs404) {
    Start();
    HttpReply r = client().Post("/v1/jobs", R"({"topic":"orders","data":1})");
    ASSERT_EQ(r.status, 404) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("orders"), std::string::npos);
}

TEST_F(GatewayJobsTest, EventStreamSendsProgressThenResultAndEnds) {
    Start();
    std::string id = Submit();
    HttpTestClient follower(port());
    HttpReply head = follower.Begin("GET", "/v1/jobs/" + id + "/events", "");
    ASSERT_EQ(head.status, 200) << head.error;
    EXPECT_EQ(head.Header("content-type"), "text/event-stream");

    // The head arrives once the stream waits: what the pipeline publishes now is seen. The
    // result goes out after the progress was read (two topics keep no order between them).
    PublishReply("jobs.progress", id, "llm.chunk", R"({"index":0,"attempt":1,"text":"wor"})");
    std::string body = follower.ReadUntil(&head, "\n\n");
    // What the pipeline's notify stage publishes (stages.cc): {"job", "type", "result"}.
    PublishReply(
        "test.results", id, "job.succeeded",
        json{{"job", id}, {"type", "ticket.triaged"}, {"result", {{"answer", "done"}}}}.dump());
    body += follower.ReadBody(&head);
    EXPECT_TRUE(head.error.empty()) << head.error;

    auto messages = ParseSse(body);
    ASSERT_EQ(messages.size(), 2u) << body;
    EXPECT_EQ(messages[0].event, "progress");
    EXPECT_EQ(json::parse(messages[0].data)["data"]["text"], "wor");
    EXPECT_EQ(messages[1].event, "result");
    json result = json::parse(messages[1].data);
    EXPECT_EQ(result["type"], "job.succeeded");
    EXPECT_EQ(result["correlationid"], id);
    EXPECT_EQ(result["data"]["result"]["answer"], "done");
}

TEST_F(GatewayJobsTest, EventStreamOfFailedJobEndsWithFailed) {
    Start();
    std::string id = Submit();
    HttpTestClient follower(port());
    HttpReply head = follower.Begin("GET", "/v1/jobs/" + id + "/events", "");
    ASSERT_EQ(head.status, 200) << head.error;
    PublishReply("test.results", id, "job.failed",
                 json{{"job", id}, {"error", "model unavailable"}, {"stage", "classify"}}.dump());
    auto messages = ParseSse(follower.ReadBody(&head));
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].event, "failed");
    EXPECT_EQ(json::parse(messages[0].data)["data"]["error"], "model unavailable");
}

TEST_F(GatewayJobsTest, FinishedJobStreamsItsFinalEventAtOnce) {
    Start();
    std::string id = Submit();
    ASSERT_TRUE(jobs_->Succeed(id, R"({"answer":42})", "ticket.triaged").ok());
    HttpReply r = client().Get("/v1/jobs/" + id + "/events");
    ASSERT_EQ(r.status, 200) << r.body;
    auto messages = ParseSse(r.body);
    ASSERT_EQ(messages.size(), 1u) << r.body;
    EXPECT_EQ(messages[0].event, "result");
    // The same shape as a live result: job.succeeded with {"job", "type", "result"}.
    json result = json::parse(messages[0].data);
    EXPECT_EQ(result["type"], "job.succeeded");
    EXPECT_EQ(result["data"]["job"], id);
    EXPECT_EQ(result["data"]["type"], "ticket.triaged");
    EXPECT_EQ(result["data"]["result"]["answer"], 42);
}

TEST_F(GatewayJobsTest, FailedJobStreamsFailedAtOnce) {
    Start();
    std::string id = Submit();
    ASSERT_TRUE(jobs_->Fail(id, "dead-lettered: bad input").ok());
    HttpReply r = client().Get("/v1/jobs/" + id + "/events");
    ASSERT_EQ(r.status, 200) << r.body;
    auto messages = ParseSse(r.body);
    ASSERT_EQ(messages.size(), 1u) << r.body;
    EXPECT_EQ(messages[0].event, "failed");
    json failed = json::parse(messages[0].data);
    EXPECT_EQ(failed["type"], "job.failed");
    EXPECT_EQ(failed["data"]["job"], id);
    EXPECT_EQ(failed["data"]["error"], "dead-lettered: bad input");
}

TEST_F(GatewayJobsTest, StopEndsOpenEventStreams) {
    Start();
    std::string id = Submit();
    HttpTestClient follower(port());
    HttpReply head = follower.Begin("GET", "/v1/jobs/" + id + "/events", "");
    ASSERT_EQ(head.status, 200) << head.error;
    std::thread stopper([&] { gateway_->Stop(10s); });
    std::string body = follower.ReadBody(&head);
    stopper.join();
    EXPECT_TRUE(head.error.empty()) << head.error;  // ended by its last chunk, not cut off
    EXPECT_TRUE(ParseSse(body).empty()) << body;
}

TEST_F(GatewayJobsTest, GatewayWithoutJobStoreAnswers404) {
    auto gateway = gateway::Gateway::Start(broker_.get(), nullptr, DefaultOptions());
    ASSERT_TRUE(gateway.ok()) << gateway.status().ToString();
    HttpTestClient c((*gateway)->port());
    EXPECT_EQ(c.Post("/v1/jobs", R"({"data":1})").status, 404);
    (*gateway)->Stop(5s);
}

}  // namespace
}  // namespace eventloom::testing
