#include "gateway/gateway_fixture.h"

#include <nlohmann/json.hpp>

#include "common/uuid.h"
#include "llm/echo/echo_backend.h"

namespace eventloom::testing {

using namespace std::chrono_literals;

void GatewayTest::SetUp() {
    EmbeddedBrokerOptions b;
    b.dir = dir_.Sub("broker");
    auto broker = OpenEmbeddedBroker(b);
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
    TopicOptions t;
    t.durability = Durability::kNever;
    for (const char* topic :
         {"chat.requests", "chat.replies", "chat.chunks", "silent.requests", "silent.replies",
          "orders", "audit", "jobs.requests", "jobs.progress", "test.results"}) {
        ASSERT_TRUE(broker_->CreateTopic(topic, t).ok()) << topic;
    }

    StateStoreOptions s;
    s.path = dir_.Sub("state.db");
    auto state = OpenSqliteStateStore(s);
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(state).value();
    jobs_ = std::make_unique<pipeline::JobStore>(state_.get());

    llm::LlmStageOptions o;
    o.stage.name = "chat";
    o.stage.consumes = "chat.requests";
    o.emits = "chat.replies";
    o.chunks_topic = "chat.chunks";
    o.chunk_tokens = 1;
    llm_ = std::make_unique<llm::LlmStage>(broker_.get(), nullptr, o, llm::MakeEchoBackend());
    ASSERT_TRUE(llm_->Start().ok());
}

void GatewayTest::TearDown() {
    client_.reset();
    if (gateway_) gateway_->Stop(5s);
    gateway_.reset();
    if (llm_) llm_->Stop(5s);
}

gateway::GatewayOptions GatewayTest::DefaultOptions() const {
    gateway::GatewayOptions o;
    o.spec.enabled = true;
    o.spec.listen = "127.0.0.1:0";
    o.spec.request_timeout = 30s;
    o.spec.event_topics = {"orders", "audit"};
    o.spec.job_topics = {"jobs.requests"};
    o.pipeline_name = "test";
    o.chat_routes = {{"echo", "chat.requests", "chat.replies", "chat.chunks"},
                     {"silent", "silent.requests", "silent.replies", ""}};
    o.results_topic = "test.results";
    o.progress_topics = {"jobs.progress", "chat.chunks"};
    return o;
}

void GatewayTest::Start(gateway::GatewayOptions options) {
    auto gateway = gateway::Gateway::Start(broker_.get(), jobs_.get(), std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status().ToString();
    gateway_ = std::move(gateway).value();
    client_ = std::make_unique<HttpTestClient>(gateway_->port());
}

std::string GatewayTest::ChatBody(const std::string& model, const std::string& text, bool stream) {
    nlohmann::json body = {{"model", model}, {"messages", {{{"role", "user"}, {"content", text}}}}};
    if (stream) body["stream"] = true;
    return body.dump();
}

void GatewayTest::PublishReply(const std::string& topic, const std::string& correlation,
                               const std::string& type, const std::string& data) {
    Event e;
    e.id = NewEventId();
    e.source = "/test";
    e.type = type;
    e.correlationid = correlation;
    e.datacontenttype = "application/json";
    e.data = data;
    e.has_data = true;
    auto published = broker_->Publish(topic, e);
    ASSERT_TRUE(published.ok()) << published.status().ToString();
}

}  // namespace eventloom::testing
