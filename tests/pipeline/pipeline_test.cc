// A whole pipeline from a YAML file, on the embedded broker, with the echo test backend as its
// model: transform -> llm -> route -> notify, the job store and the job-failure stages.
#include "pipeline/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "support/temp_dir.h"
#include "support/topic_reader.h"

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr const char* kPipeline = R"(version: 1
name: triage
broker: { dir: DATA }
topics:
  tickets: { partitions: 2, durability: always }
models:
  echo: { backend: echo }
stages:
  - name: clean
    consumes: tickets
    uses: transform
    with:
      type: ticket.cleaned
      steps:
        - select: [subject, customer]
    emits: tickets.clean
  - name: answer
    consumes: tickets.clean
    uses: llm
    with:
      model: echo
      prompt_text: "{{ data.subject }}"
      output: answer
      chunks: tickets.progress
    emits: tickets.answered
  - name: route
    consumes: tickets.answered
    uses: route
    with:
      routes:
        - when: 'data.customer == "ada"'
          to: tickets.vip
        - when: 'data.customer == "bob"'
          to: tickets.other
  - name: notify-vip
    consumes: tickets.vip
    uses: notify
    with: { store: true, sse: true }
  - name: notify-other
    consumes: tickets.other
    uses: notify
    with: { store: true, sse: true }
)";

class PipelineTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string yaml = kPipeline;
        yaml.replace(yaml.find("DATA"), 4, dir_.Sub("data"));
        auto spec = ParsePipeline(yaml, "triage.yaml", dir_.path());
        ASSERT_TRUE(spec.ok()) << spec.status().ToString();
        auto p = Pipeline::Open(std::move(*spec), {});
        ASSERT_TRUE(p.ok()) << p.status().ToString();
        pipeline_ = std::move(*p);
        ASSERT_TRUE(pipeline_->Start().ok());
    }

    // Publishes a ticket as a job, as the gateway's POST /v1/jobs does.
    void SubmitJob(const std::string& id, const json& data) {
        JobRecord job;
        job.id = id;
        job.pipeline = "triage";
        job.topic = "tickets";
        ASSERT_TRUE(pipeline_->jobs()->Create(job).ok());
        Event e;
        e.id = id;
        e.source = "test";
        e.type = "ticket.created";
        e.datacontenttype = "application/json";
        e.data = data.dump();
        e.has_data = true;
        ASSERT_TRUE(pipeline_->broker()->Publish("tickets", e).ok());
    }

    // Waits until the job is no longer queued.
    JobRecord WaitForJob(const std::string& id) {
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < give_up) {
            auto job = pipeline_->jobs()->Get(id);
            if (job.ok() && job->status != JobStatus::kQueued) return *job;
            std::this_thread::sleep_for(10ms);
        }
        ADD_FAILURE() << "job " << id << " did not finish in 30 s";
        return {};
    }

    testing::TempDir dir_;
    std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(PipelineTest, JobFlowsThroughEveryStageToItsResult) {
    SubmitJob("job-1", {{"subject", "refund please"}, {"customer", "ada"}, {"secret", "x"}});
    JobRecord job = WaitForJob("job-1");
    ASSERT_EQ(job.status, JobStatus::kSucceeded) << job.error;
    json result = json::parse(job.result);
    EXPECT_EQ(result["answer"], "refund please");  // the echo backend repeats the prompt
    EXPECT_EQ(result["customer"], "ada");
    EXPECT_FALSE(result.contains("secret"));  // the transform selected fields
}

TEST_F(PipelineTest, DerivedEventsKeepTheCorrelationAndNameTheirCause) {
    SubmitJob("job-2", {{"subject", "hello"}, {"customer", "bob"}});
    testing::TopicReader clean(pipeline_->broker(), "tickets.clean");
    testing::TopicReader answered(pipeline_->broker(), "tickets.answered");
    ASSERT_EQ(clean.WaitFor(1).size(), 1u);
    ASSERT_EQ(answered.WaitFor(1).size(), 1u);
    EXPECT_EQ(clean.events()[0].correlationid, "job-2");
    EXPECT_EQ(clean.events()[0].causationid, "job-2");
    EXPECT_EQ(answered.events()[0].correlationid, "job-2");
    EXPECT_EQ(answered.events()[0].causationid, clean.events()[0].id);
}

TEST_F(PipelineTest, ResultReachesTheResultsTopic) {
    SubmitJob("job-3", {{"subject", "hi"}, {"customer", "ada"}});
    testing::TopicReader results(pipeline_->broker(), "triage.results");
    ASSERT_EQ(results.WaitFor(1).size(), 1u);
    const Event& e = results.events()[0];
    EXPECT_EQ(e.type, "job.succeeded");
    EXPECT_EQ(e.correlationid, "job-3");
    EXPECT_EQ(json::parse(e.data)["job"], "job-3");
}

TEST_F(PipelineTest, DeadLetteredEventFailsItsJobWithTheReason) {
    // No route matches "cy": the route stage dead-letters the event, and the job fails.
    SubmitJob("job-4", {{"subject", "hi"}, {"customer", "cy"}});
    JobRecord job = WaitForJob("job-4");
    EXPECT_EQ(job.status, JobStatus::kFailed);
    EXPECT_THAT(job.error, HasSubstr("no route matched"));
    testing::TopicReader results(pipeline_->broker(), "triage.results");
    ASSERT_EQ(results.WaitFor(1).size(), 1u);
    EXPECT_EQ(results.events()[0].type, "job.failed");
}

TEST_F(PipelineTest, ChunksOfTheLlmStageAreJobProgress) {
    EXPECT_EQ(pipeline_->ChunkTopics(), std::vector<std::string>{"tickets.progress"});
    SubmitJob("job-5", {{"subject", "one two three"}, {"customer", "ada"}});
    testing::TopicReader progress(pipeline_->broker(), "tickets.progress");
    ASSERT_GE(progress.WaitFor(1).size(), 1u);
    EXPECT_EQ(progress.events()[0].correlationid, "job-5");
}

TEST_F(PipelineTest, RepliesForNamesTheLlmStageTopics) {
    auto replies = pipeline_->RepliesFor("tickets.clean");
    ASSERT_TRUE(replies.ok()) << replies.status().ToString();
    EXPECT_EQ(replies->reply_topic, "tickets.answered");
    EXPECT_EQ(replies->chunks_topic, "tickets.progress");
    EXPECT_EQ(pipeline_->RepliesFor("tickets").status().code(), StatusCode::kNotFound);
}

TEST_F(PipelineTest, EveryStageReportsItsCounts) {
    SubmitJob("job-6", {{"subject", "hi"}, {"customer", "bob"}});
    WaitForJob("job-6");
    // The notify stage stores the job inside its handler and counts the event once the handler
    // returns: wait for the last count (bounded).
    std::map<std::string, int64_t> done;
    for (int i = 0; i < 500; ++i) {
        for (const StageStatus& s : pipeline_->Stages()) done[s.name] = s.stats.succeeded;
        if (done["notify-other"] >= 1) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(done["clean"], 1);
    EXPECT_EQ(done["answer"], 1);
    EXPECT_EQ(done["route"], 1);
    EXPECT_EQ(done["notify-other"], 1);
    EXPECT_TRUE(pipeline_->Ready());
}

TEST_F(PipelineTest, RestartedPipelineFinishesWhatWasAccepted) {
    // Events accepted while the pipeline is stopped are processed once it runs again.
    pipeline_->Stop(1s);
    auto spec = pipeline_->spec();
    pipeline_.reset();
    {
        EmbeddedBrokerOptions b;
        b.dir = dir_.Sub("data");
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        Event e;
        e.id = "job-7";
        e.source = "test";
        e.type = "ticket.created";
        e.datacontenttype = "application/json";
        e.data = R"({"subject":"later","customer":"ada"})";
        e.has_data = true;
        ASSERT_TRUE((*broker)->Publish("tickets", e).ok());
    }
    auto p = Pipeline::Open(std::move(spec), {});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pipeline_ = std::move(*p);
    ASSERT_TRUE(pipeline_->Start().ok());
    testing::TopicReader results(pipeline_->broker(), "triage.results");
    ASSERT_EQ(results.WaitFor(1).size(), 1u);
    EXPECT_EQ(results.events()[0].correlationid, "job-7");
}

TEST(PipelineCheck, ReportsEveryStageProblemWithItsPlace) {
    constexpr const char* yaml = R"(version: 1
name: bad
models:
  echo: { backend: echo }
stages:
  - name: a
    consumes: in
    uses: transform
    with:
      steps:
        - nosuchstep: 1
    emits: out
  - name: b
    consumes: out
    uses: route
    with:
      routes:
        - when: 'data.x =='
          to: x
)";
    auto spec = ParsePipeline(yaml, "bad.yaml", "/tmp");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    std::vector<Diagnostic> diagnostics;
    EXPECT_FALSE(Pipeline::Check(*spec, &diagnostics).ok());
    ASSERT_EQ(diagnostics.size(), 2u);
    EXPECT_EQ(diagnostics[0].where.file, "bad.yaml");
    EXPECT_EQ(diagnostics[0].where.line, 11);
    EXPECT_THAT(diagnostics[0].message, HasSubstr("nosuchstep"));
    EXPECT_EQ(diagnostics[1].where.line, 18);
}

TEST(PipelineOpen, NatsBrokerUrlIsNotAvailableYet) {
    constexpr const char* yaml = R"(version: 1
name: n
broker: { url: "nats://127.0.0.1:4222" }
stages:
  - name: a
    consumes: in
    uses: emit
    with: { type: x }
    emits: out
)";
    auto spec = ParsePipeline(yaml, "n.yaml", "/tmp");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    auto p = Pipeline::Open(std::move(*spec), {});
    EXPECT_EQ(p.status().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace eventloom::pipeline
