// The gateway in front of a whole pipeline from YAML, as `eventloom serve` runs them: options
// from the file (GatewayOptionsFor), the pipeline's own backlog behind 429, and a job through
// every stage.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "gateway/http_test_client.h"
#include "gateway/pipeline_gateway.h"
#include "pipeline/config/pipeline_spec.h"
#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A slow model (one word per 300 ms) behind one slot: jobs queue up on "work".
constexpr const char* kPipeline = R"(version: 1
name: overload
broker: { dir: DATA }
models:
  slow: { backend: echo, slots: 1, reply: "done", token_delay: 300ms }
gateway:
  listen: 127.0.0.1:0
  max_backlog: 2
  jobs: { topics: [work] }
  openai:
    - model: slow-chat
      topic: chat.requests
stages:
  - name: answer
    consumes: work
    uses: llm
    with: { model: slow, prompt_text: "job {{ data.n }}", output: answer }
    emits: answered
  - name: store
    consumes: answered
    uses: notify
    with: { store: true }
  - name: chat
    consumes: chat.requests
    uses: llm
    with: { model: slow }
    emits: chat.replies
)";

class GatewayPipelineTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string yaml = kPipeline;
        yaml.replace(yaml.find("DATA"), 4, dir_.Sub("data"));
        auto spec = pipeline::ParsePipeline(yaml, "overload.yaml", dir_.path());
        ASSERT_TRUE(spec.ok()) << spec.status().ToString();
        auto p = pipeline::Pipeline::Open(std::move(*spec), {});
        ASSERT_TRUE(p.ok()) << p.status().ToString();
        pipeline_ = std::move(*p);
        ASSERT_TRUE(pipeline_->Start().ok());
        auto options = gateway::GatewayOptionsFor(*pipeline_);
        ASSERT_TRUE(options.ok()) << options.status().ToString();
        auto gw =
            gateway::Gateway::Start(pipeline_->broker(), pipeline_->jobs(), std::move(*options));
        ASSERT_TRUE(gw.ok()) << gw.status().ToString();
        gateway_ = std::move(*gw);
        client_ = std::make_unique<HttpTestClient>(gateway_->port());
    }

    void TearDown() override {
        client_.reset();
        if (gateway_) gateway_->Stop(5s);
        if (pipeline_) pipeline_->Stop(5s);
    }

    // Polls the job until it is no longer queued (at most about a minute).
    json WaitForJob(const std::string& id) {
        json job;
        for (int i = 0; i < 600; ++i) {
            HttpReply r = client_->Get("/v1/jobs/" + id);
            job = r.Json();
            if (r.status != 200 || job["status"] != "queued") break;
            std::this_thread::sleep_for(100ms);
        }
        return job;
    }

    TempDir dir_;
    std::unique_ptr<pipeline::Pipeline> pipeline_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::unique_ptr<HttpTestClient> client_;
};

TEST_F(GatewayPipelineTest, BacklogPastTheBoundIs429AndAcceptedJobsFinish) {
    // The slow stage holds one job; the others wait on "work". Once more than max_backlog (2)
    // wait or run, the gateway refuses with 429 instead of queueing without bound.
    std::vector<std::string> accepted;
    HttpReply refused;
    for (int n = 0; n < 20 && refused.status == 0; ++n) {
        HttpReply r = client_->Post("/v1/jobs", json{{"data", {{"n", n}}}}.dump());
        if (r.status == 202) {
            accepted.push_back(r.Json()["id"]);
        } else {
            refused = r;
        }
    }
    ASSERT_EQ(refused.status, 429) << refused.body;
    EXPECT_EQ(refused.Json()["error"]["code"], "backlog_full");
    EXPECT_NE(refused.Json()["error"]["message"].get<std::string>().find("'work'"),
              std::string::npos);
    EXPECT_FALSE(refused.Header("retry-after").empty());
    EXPECT_GE(accepted.size(), 3u);

    // Every accepted job is finished by the pipeline.
    for (const std::string& id : accepted) {
        json job = WaitForJob(id);
        EXPECT_EQ(job["status"], "succeeded") << job.dump();
        EXPECT_EQ(job["result"]["answer"], "done") << job.dump();
    }
}

TEST_F(GatewayPipelineTest, ChatRouteFromTheFileIsServed) {
    HttpReply r = client_->Post(
        "/v1/chat/completions",
        json{{"model", "slow-chat"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["choices"][0]["message"]["content"], "done");
    EXPECT_EQ(r.Json()["model"], "slow-chat");
}

TEST_F(GatewayPipelineTest, RouteToATopicNoLlmStageConsumesIsRejected) {
    // "answered" is consumed, but by a notify stage: no completion would ever answer the call.
    std::string yaml = kPipeline;
    yaml.replace(yaml.find("DATA"), 4, dir_.Sub("data2"));
    yaml.replace(yaml.find("topic: chat.requests"), 20, "topic: answered");
    auto spec = pipeline::ParsePipeline(yaml, "overload.yaml", dir_.path());
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();

    // `eventloom validate` reports it at the route's line...
    std::vector<pipeline::Diagnostic> diagnostics;
    EXPECT_FALSE(pipeline::Pipeline::Check(*spec, &diagnostics).ok());
    ASSERT_EQ(diagnostics.size(), 1u);
    EXPECT_EQ(diagnostics[0].where.line, 11);
    EXPECT_NE(diagnostics[0].message.find("'answered'"), std::string::npos)
        << diagnostics[0].message;

    // ...and the gateway refuses it as well.
    auto p = pipeline::Pipeline::Open(std::move(*spec), {});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    auto options = gateway::GatewayOptionsFor(**p);
    ASSERT_FALSE(options.ok());
    EXPECT_NE(options.status().message().find("overload.yaml:11:"), std::string::npos)
        << options.status().ToString();
}

}  // namespace
}  // namespace eventloom::testing
