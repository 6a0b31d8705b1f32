// The gateway's test fixture: an embedded broker in a temp dir, the SQLite state store with a
// job store, and a real LLM stage over the echo test backend answering the "echo" model, so
// the whole bridge runs for real. The gateway itself is started by each test (Start), with
// DefaultOptions() changed as the test needs.
//
// Routes: model "echo" (chat.requests -> chat.replies, chunks on chat.chunks), model "silent"
// (silent.requests, which no stage consumes: its calls never get a reply). Event topics
// "orders" (the default) and "audit"; job topic "jobs.requests"; job progress on
// "jobs.progress" and "chat.chunks"; results on "test.results".
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "eventloom/broker.h"
#include "eventloom/state.h"
#include "gateway/gateway.h"
#include "gateway/http_test_client.h"
#include "llm/llm_stage.h"
#include "pipeline/outbound/job_store.h"
#include "support/temp_dir.h"

namespace eventloom::testing {

class GatewayTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    gateway::GatewayOptions DefaultOptions() const;
    // Starts the gateway and a client for it; fails the test when it cannot.
    void Start(gateway::GatewayOptions options);
    void Start() { Start(DefaultOptions()); }

    // A chat request body for model `model` with one user message.
    static std::string ChatBody(const std::string& model, const std::string& text,
                                bool stream = false);
    // Publishes `event` (correlationid `correlation`, type `type`) to `topic`.
    void PublishReply(const std::string& topic, const std::string& correlation,
                      const std::string& type, const std::string& data);

    HttpTestClient& client() { return *client_; }
    int port() const { return gateway_->port(); }

    TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<StateStore> state_;
    std::unique_ptr<pipeline::JobStore> jobs_;
    std::unique_ptr<llm::LlmStage> llm_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::unique_ptr<HttpTestClient> client_;
};

}  // namespace eventloom::testing
