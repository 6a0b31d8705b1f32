// The notify and job-failure stages end to end over the embedded broker: job records, the
// results topic, and webhooks delivered by the webhook stage to FakeOpenAiServer (a test
// double of a receiver).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "llm/openai/fake_openai_server.h"
#include "outbound_fixture.h"
#include "pipeline/outbound/stages.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;
using pipeline::JobStatus;
using ::testing::HasSubstr;

class NotifyStageTest : public OutboundFixture {
protected:
    void SetUp() override {
        OutboundFixture::SetUp();
        server_.SetDefault(FakeResponse::Error(200, "{}"));
    }

    std::string Url(const std::string& path) {
        return "http://127.0.0.1:" + std::to_string(server_.port()) + path;
    }

    StageRunner* RunNotify(const std::string& with_yaml) {
        const pipeline::StageSpec spec = StageFromYaml(
            "  - name: notify-done\n    consumes: in\n    uses: notify\n    with:\n" + with_yaml);
        auto handler = pipeline::MakeNotifyHandler(spec, Context());
        EXPECT_TRUE(handler.ok()) << handler.status().ToString();
        if (!handler.ok()) return nullptr;
        return Run(Options(spec.name, spec.consumes), *handler);
    }

    const ReceivedRequest* RequestTo(const std::vector<ReceivedRequest>& all,
                                     const std::string& path) {
        auto it = std::find_if(all.begin(), all.end(),
                               [&](const ReceivedRequest& r) { return r.path == path; });
        return it == all.end() ? nullptr : &*it;
    }

    void ExpectSigned(const ReceivedRequest& r) {
        EXPECT_TRUE(pipeline::VerifyWebhookSignature(kSecret, r.headers.at("x-eventloom-timestamp"),
                                                     r.body,
                                                     r.headers.at("x-eventloom-signature")));
    }

    FakeOpenAiServer server_;
};

const json kTicket = {{"customer", "acme"}, {"category", "billing"}};

TEST_F(NotifyStageTest, StoreSseAndWebhookReachEveryoneEndToEnd) {
    Job("j1", Url("/job-hook"));
    RunWebhookStage();
    ASSERT_TRUE(
        RunNotify("      store: true\n      sse: true\n"
                  "      webhook: \"" +
                  Url("/hooks/{{ data.customer }}") + "\"\n"));

    Publish("in", JsonEvent("e1", "ticket.routed", kTicket, "j1"));

    // The job store has the result.
    ASSERT_TRUE(Eventually([&] { return jobs_->Get("j1")->status == JobStatus::kSucceeded; }));
    EXPECT_EQ(json::parse(jobs_->Get("j1")->result), kTicket);
    EXPECT_EQ(jobs_->Get("j1")->result_type, "ticket.routed");

    // Waiting clients hear of it on the results topic.
    const auto results = ReadAll("shop.results", 1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].type, "job.succeeded");
    EXPECT_EQ(results[0].correlationid, "j1");
    EXPECT_EQ(results[0].causationid, "e1");
    EXPECT_EQ(Data(results[0]),
              json({{"job", "j1"}, {"type", "ticket.routed"}, {"result", kTicket}}));

    // Both webhooks arrive, signed: the stage's templated URL and the job's own.
    ASSERT_TRUE(server_.WaitForRequests(2, 30s));
    const auto requests = server_.requests();
    const json body = {
        {"id", "j1"}, {"status", "succeeded"}, {"result", kTicket}, {"type", "ticket.routed"}};
    const ReceivedRequest* stage_hook = RequestTo(requests, "/hooks/acme");
    const ReceivedRequest* job_hook = RequestTo(requests, "/job-hook");
    ASSERT_NE(stage_hook, nullptr);
    ASSERT_NE(job_hook, nullptr);
    EXPECT_EQ(stage_hook->Json(), body);
    EXPECT_EQ(job_hook->Json(), body);
    ExpectSigned(*stage_hook);
    ExpectSigned(*job_hook);
}

TEST_F(NotifyStageTest, EventOfNoJobSkipsTheStoreAndStillNotifies) {
    StageRunner* stage = RunNotify("      store: true\n      sse: true\n");

    Publish("in", JsonEvent("e1", "ticket.routed", kTicket));

    ASSERT_TRUE(Eventually([&] { return stage->stats().succeeded == 1; }));
    EXPECT_EQ(jobs_->Get("e1").status().code(), StatusCode::kNotFound);
    const auto results = ReadAll("shop.results", 1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(Data(results[0])["job"], "e1");
}

TEST_F(NotifyStageTest, SecondResultOfAJobKeepsTheFirstAndRequestsItsWebhookOnce) {
    Job("j1", Url("/job-hook"));
    StageRunner* stage = RunNotify("      store: true\n");

    Publish("in", JsonEvent("e1", "ticket.routed", {{"n", 1}}, "j1"));
    Publish("in", JsonEvent("e2", "ticket.routed", {{"n", 2}}, "j1"));

    ASSERT_TRUE(Eventually([&] { return stage->stats().succeeded == 2; }));
    EXPECT_EQ(json::parse(jobs_->Get("j1")->result), json({{"n", 1}}));
    const auto requested = ReadAll(pipeline::WebhookTopic(kPipeline), 1);
    ASSERT_EQ(requested.size(), 1u);
    EXPECT_EQ(requested[0].type, "webhook.requested");
    EXPECT_EQ(Data(requested[0])["url"], Url("/job-hook"));
    EXPECT_EQ(Data(requested[0])["job"], "j1");
    EXPECT_EQ(Data(requested[0])["body"]["result"], json({{"n", 1}}));
}

TEST_F(NotifyStageTest, WebhookRequestCarriesNoSecret) {
    ASSERT_TRUE(RunNotify("      webhook: \"" + Url("/hook") + "\"\n"));

    Publish("in", JsonEvent("e1", "ticket.routed", kTicket));

    const auto requested = ReadAll(pipeline::WebhookTopic(kPipeline), 1);
    ASSERT_EQ(requested.size(), 1u);
    EXPECT_EQ(requested[0].data.find(kSecret), std::string::npos);
    EXPECT_EQ(Data(requested[0])["body"]["id"], "e1");
}

TEST_F(NotifyStageTest, RenderedUrlThatIsNotHttpIsDeadLettered) {
    ASSERT_TRUE(RunNotify("      webhook: \"{{ data.customer }}\"\n"));

    Publish("in", JsonEvent("e1", "ticket.routed", kTicket));

    const auto dead = ReadAll("notify-done.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason), HasSubstr("not an http:// or https://"));
}

TEST(NotifyOptions, ProblemsAreReportedAtTheirLineAndColumn) {
    struct Case {
        const char* what;
        std::string with;
        int line;
        int column;
        std::string message;
    };
    // The first `with` line is line 8 of the file.
    const Case cases[] = {
        {"unknown key", "      store: true\n      colour: red\n", 9, 15,
         "colour: unknown key 'colour'; expected one of store, sse, webhook"},
        {"store not a boolean", "      store: \"yes\"\n", 8, 14,
         "store: expected true or false, found a string"},
        {"webhook not http", "      webhook: ftp://example.test/x\n", 8, 16,
         "webhook: expected an http:// or https:// URL"},
        {"webhook template error", "      webhook: \"https://x.test/{{ data.a | shout }}\"\n", 8,
         16, "webhook: at column"},
        {"nothing to do", "      {}\n", 8, 7, "needs at least one of store, sse, webhook"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        const std::string yaml =
            "version: 1\nname: shop\nstages:\n  - name: n\n    consumes: in\n    uses: notify\n"
            "    with:\n" +
            c.with;
        auto spec = pipeline::ParsePipeline(yaml, "p.yaml", ".");
        ASSERT_TRUE(spec.ok()) << spec.status().ToString();
        pipeline::PipelineContext context;
        context.pipeline_name = "shop";
        context.results_topic = "shop.results";
        std::vector<pipeline::Diagnostic> found;
        auto handler = pipeline::MakeNotifyHandler(spec->stages[0], context, &found);
        EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
        ASSERT_EQ(found.size(), 1u) << handler.status().ToString();
        EXPECT_EQ(found[0].where.file, "p.yaml");
        EXPECT_EQ(found[0].where.line, c.line);
        EXPECT_EQ(found[0].where.column, c.column);
        EXPECT_THAT(found[0].message, HasSubstr("stage 'n': "));
        EXPECT_THAT(found[0].message, HasSubstr(c.message));
        EXPECT_THAT(handler.status().message(), HasSubstr(found[0].ToString()));
    }
}

class JobFailureStageTest : public NotifyStageTest {
protected:
    // A stage on "in" that refuses every event, so it is dead-lettered with `reason`.
    void RunRefusingStage(const std::string& reason) {
        StageOptions o = Options("classify", "in");
        Run(o, [reason](StageContext&) { return FailedPreconditionError(reason); });
        Run(Options("job-failure.classify", "classify.dead-letter"),
            pipeline::MakeJobFailureHandler(Context()));
    }
};

TEST_F(JobFailureStageTest, DeadLetteredJobFailsWithTheReason) {
    Job("j1");
    RunRefusingStage("the model refused");

    Publish("in", JsonEvent("e1", "ticket.created", kTicket, "j1"));

    ASSERT_TRUE(Eventually([&] { return jobs_->Get("j1")->status == JobStatus::kFailed; }));
    EXPECT_THAT(jobs_->Get("j1")->error, HasSubstr("the model refused"));
}

TEST_F(JobFailureStageTest, FailureIsAnnouncedOnTheResultsTopic) {
    Job("j1");
    RunRefusingStage("the model refused");

    Publish("in", JsonEvent("e1", "ticket.created", kTicket, "j1"));

    const auto results = ReadAll("shop.results", 1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].type, "job.failed");
    EXPECT_EQ(results[0].correlationid, "j1");
    EXPECT_EQ(Data(results[0])["job"], "j1");
    EXPECT_EQ(Data(results[0])["stage"], "classify");
    EXPECT_THAT(Data(results[0])["error"].get<std::string>(), HasSubstr("the model refused"));
}

TEST_F(JobFailureStageTest, FailedJobsWebhookIsDelivered) {
    Job("j1", Url("/job-hook"));
    RunWebhookStage();
    RunRefusingStage("the model refused");

    Publish("in", JsonEvent("e1", "ticket.created", kTicket, "j1"));

    ASSERT_TRUE(server_.WaitForRequests(1, 30s));
    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_EQ(r.path, "/job-hook");
    EXPECT_EQ(r.Json()["id"], "j1");
    EXPECT_EQ(r.Json()["status"], "failed");
    EXPECT_THAT(r.Json()["error"].get<std::string>(), HasSubstr("the model refused"));
    ExpectSigned(r);
}

TEST_F(JobFailureStageTest, JobThatAlreadySucceededIsLeftAlone) {
    Job("j1", Url("/job-hook"));
    ASSERT_TRUE(jobs_->Succeed("j1", "{}", "done").ok());
    CreateTopic("classify.dead-letter");
    StageRunner* failure = Run(Options("job-failure.classify", "classify.dead-letter"),
                               pipeline::MakeJobFailureHandler(Context()));
    Event dead = JsonEvent("e1", "ticket.created", kTicket, "j1");
    dead.extensions.emplace_back(std::string(kDeadLetterReason), "late");

    Publish("classify.dead-letter", dead);

    ASSERT_TRUE(Eventually([&] { return failure->stats().succeeded == 1; }));
    EXPECT_EQ(jobs_->Get("j1")->status, JobStatus::kSucceeded);
    EXPECT_TRUE(ReadAll("shop.results", 0, 1s).empty());
    EXPECT_TRUE(ReadAll(pipeline::WebhookTopic(kPipeline), 0, 1s).empty());
}

}  // namespace
}  // namespace eventloom::testing
