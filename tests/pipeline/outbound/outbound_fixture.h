// A fixture for the outbound stages: the embedded broker and the SQLite state store in a temp
// dir, a JobStore on it, StageRunners that run handlers, and verbs to publish, read topics and
// wait (with generous deadlines, never timed assertions).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "eventloom/broker.h"
#include "eventloom/stage.h"
#include "eventloom/state.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/outbound/job_store.h"
#include "pipeline/outbound/stages.h"
#include "support/temp_dir.h"

namespace eventloom::testing {

using namespace std::chrono_literals;

class OutboundFixture : public ::testing::Test {
protected:
    static constexpr const char* kPipeline = "shop";
    static constexpr const char* kSecret = "whsec_fixture";

    void SetUp() override {
        EmbeddedBrokerOptions b;
        b.dir = dir_.Sub("log");
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(broker).value();
        StateStoreOptions s;
        s.path = dir_.Sub("state.db");
        auto state = OpenSqliteStateStore(s);
        ASSERT_TRUE(state.ok()) << state.status().ToString();
        state_ = std::move(state).value();
        jobs_ = std::make_unique<pipeline::JobStore>(state_.get());
        for (const std::string& topic :
             {std::string("in"), std::string("out"), std::string("shop.results"),
              pipeline::WebhookTopic(kPipeline)}) {
            CreateTopic(topic);
        }
    }

    void TearDown() override {
        for (auto& runner : runners_) runner->Stop(5s);
        runners_.clear();
        broker_.reset();
    }

    void CreateTopic(const std::string& name) {
        TopicOptions t;
        t.segment_bytes = 1 << 20;
        t.max_record_bytes = 256 << 10;
        t.durability = Durability::kNever;
        ASSERT_TRUE(broker_->CreateTopic(name, t).ok()) << name;
    }

    pipeline::PipelineContext Context() {
        pipeline::PipelineContext c;
        c.pipeline_name = kPipeline;
        c.results_topic = "shop.results";
        c.jobs = jobs_.get();
        c.webhooks = &webhooks_;
        c.job_webhook_secret = kSecret;
        return c;
    }

    // Runner options that retry quickly, so retry tests take milliseconds.
    static StageOptions Options(const std::string& name, const std::string& consumes) {
        StageOptions o;
        o.name = name;
        o.consumes = consumes;
        o.retry.initial_delay = 20ms;
        o.retry.max_delay = 100ms;
        o.retry.max_attempts = 4;
        o.timeout = 10s;
        return o;
    }

    StageRunner* Run(StageOptions options, StageHandler handler) {
        runners_.push_back(std::make_unique<StageRunner>(broker_.get(), state_.get(),
                                                         std::move(options), std::move(handler)));
        Status started = runners_.back()->Start();
        EXPECT_TRUE(started.ok()) << started.ToString();
        return runners_.back().get();
    }

    // The webhook stage of the pipeline, with quick retries.
    StageRunner* RunWebhookStage() {
        StageOptions o = pipeline::WebhookStageOptions(kPipeline);
        StageOptions quick = Options(o.name, o.consumes);
        quick.dead_letter_topic = o.dead_letter_topic;
        quick.workers = 2;
        return Run(quick, pipeline::MakeWebhookHandler(Context()));
    }

    static Event JsonEvent(const std::string& id, const std::string& type,
                           const nlohmann::json& data, const std::string& correlationid = "") {
        Event e;
        e.id = id;
        e.source = "test";
        e.type = type;
        e.correlationid = correlationid;
        e.datacontenttype = "application/json";
        e.data = data.dump();
        e.has_data = true;
        return e;
    }

    void Publish(const std::string& topic, const Event& e) {
        auto published = broker_->Publish(topic, e);
        ASSERT_TRUE(published.ok()) << published.status().ToString();
    }

    // Every event in `topic`, read by a fresh group: stops once `expect` were read and the
    // topic has nothing more, or after `patience`.
    std::vector<Event> ReadAll(const std::string& topic, size_t expect,
                               std::chrono::milliseconds patience = 20s) {
        ConsumerOptions o;
        o.topic = topic;
        o.group = "check-" + std::to_string(++checks_);
        auto c = broker_->Subscribe(o);
        EXPECT_TRUE(c.ok()) << c.status().ToString();
        std::vector<Event> out;
        const auto deadline = std::chrono::steady_clock::now() + patience;
        while (c.ok() && std::chrono::steady_clock::now() < deadline) {
            auto batch = (*c)->Fetch(100, 100ms);
            if (!batch.ok()) break;
            for (auto& d : *batch) {
                out.push_back(*d.event);
                (*c)->Ack(d.tag).IgnoreError();
            }
            if (out.size() >= expect && batch->empty()) break;
        }
        return out;
    }

    // Waits (bounded) until `done` holds.
    static bool Eventually(const std::function<bool()>& done,
                           std::chrono::milliseconds patience = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + patience;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(5ms);
        }
        return true;
    }

    // The first stage of an inline pipeline file (so option locations are real).
    static pipeline::StageSpec StageFromYaml(const std::string& stages_yaml) {
        const std::string yaml = "version: 1\nname: shop\nstages:\n" + stages_yaml;
        auto spec = pipeline::ParsePipeline(yaml, "p.yaml", ".");
        EXPECT_TRUE(spec.ok()) << spec.status().ToString();
        if (!spec.ok() || spec->stages.empty()) return {};
        return spec->stages.front();
    }

    static nlohmann::json Data(const Event& e) { return nlohmann::json::parse(e.data); }

    static std::string Extension(const Event& e, std::string_view name) {
        for (const auto& [key, value] : e.extensions) {
            if (key == name) return value;
        }
        return {};
    }

    pipeline::JobRecord Job(const std::string& id, const std::string& webhook_url = "") {
        pipeline::JobRecord job;
        job.id = id;
        job.pipeline = kPipeline;
        job.topic = "in";
        job.webhook_url = webhook_url;
        EXPECT_TRUE(jobs_->Create(job).ok());
        return job;
    }

    TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<StateStore> state_;
    std::unique_ptr<pipeline::JobStore> jobs_;
    pipeline::WebhookSender webhooks_;
    std::vector<std::unique_ptr<StageRunner>> runners_;
    int checks_ = 0;
};

}  // namespace eventloom::testing
