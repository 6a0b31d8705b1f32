// The gateway's guards over real HTTP: API keys and their scopes (401, 403), the body size
// limit (413), backpressure and rate limits (429 with Retry-After), draining (503), routing
// errors (404, 405), and the health endpoints.
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "gateway/gateway_fixture.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Sets an environment variable for the test's lifetime.
class ScopedEnv {
public:
    ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
        ::setenv(name_.c_str(), value.c_str(), 1);
    }
    ~ScopedEnv() { ::unsetenv(name_.c_str()); }

private:
    std::string name_;
};

constexpr const char* kAdminKey = "sk-admin-0123456789";
constexpr const char* kOrdersKey = "sk-orders-abcdef";

class GatewayLimitsTest : public GatewayTest {
protected:
    // Two keys: EVENTLOOM_TEST_ADMIN_KEY may do anything; EVENTLOOM_TEST_ORDERS_KEY may only
    // publish to "orders" and call no model but "silent".
    gateway::GatewayOptions KeyedOptions() const {
        gateway::GatewayOptions o = DefaultOptions();
        pipeline::ApiKeySpec admin;
        admin.key_env = "EVENTLOOM_TEST_ADMIN_KEY";
        pipeline::ApiKeySpec orders;
        orders.key_env = "EVENTLOOM_TEST_ORDERS_KEY";
        orders.topics = {"orders"};
        orders.models = {"silent"};
        o.spec.api_keys = {admin, orders};
        return o;
    }

    static RequestHeaders Bearer(const std::string& key) {
        return {{"Authorization", "Bearer " + key}};
    }

    static RequestHeaders BinaryEvent(const std::string& id) {
        return {{"ce-specversion", "1.0"},
                {"ce-id", id},
                {"ce-source", "/test"},
                {"ce-type", "order.placed"}};
    }

    ScopedEnv admin_env_{"EVENTLOOM_TEST_ADMIN_KEY", kAdminKey};
    ScopedEnv orders_env_{"EVENTLOOM_TEST_ORDERS_KEY", kOrdersKey};
};

TEST_F(GatewayLimitsTest, MissingKeyIs401WithChallenge) {
    Start(KeyedOptions());
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("echo", "hi"));
    ASSERT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "missing_api_key");
    EXPECT_NE(r.Header("www-authenticate").find("Bearer"), std::string::npos);
}

TEST_F(GatewayLimitsTest, WrongKeyIs401InvalidKey) {
    Start(KeyedOptions());
    HttpReply r =
        client().Post("/v1/chat/completions", ChatBody("echo", "hi"), Bearer("sk-not-a-key"));
    ASSERT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "invalid_api_key");
    // A key that is a prefix of a real one is not that key.
    r = client().Post("/v1/chat/completions", ChatBody("echo", "hi"),
                      Bearer(std::string(kAdminKey).substr(0, 8)));
    EXPECT_EQ(r.status, 401) << r.body;
}

TEST_F(GatewayLimitsTest, ValidKeyIsServed) {
    Start(KeyedOptions());
    HttpReply r =
        client().Post("/v1/chat/completions", ChatBody("echo", "keyed call"), Bearer(kAdminKey));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["choices"][0]["message"]["content"], "keyed call");
    // The scheme is case-insensitive.
    r = client().Post("/v1/chat/completions", ChatBody("echo", "again"),
                      {{"Authorization", std::string("bearer ") + kAdminKey}});
    EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(GatewayLimitsTest, HealthEndpointsNeedNoKey) {
    Start(KeyedOptions());
    EXPECT_EQ(client().Get("/healthz").status, 200);
    EXPECT_EQ(client().Get("/readyz").status, 200);
}

TEST_F(GatewayLimitsTest, ScopedKeyMayNotPublishToOtherTopics) {
    Start(KeyedOptions());
    HttpReply r = client().Post("/v1/events/orders", R"({"n":1})", [&] {
        auto h = BinaryEvent("scoped-1");
        h.emplace_back("Authorization", std::string("Bearer ") + kOrdersKey);
        return h;
    }());
    EXPECT_EQ(r.status, 202) << r.body;
    r = client().Post("/v1/events/audit", R"({"n":2})", [&] {
        auto h = BinaryEvent("scoped-2");
        h.emplace_back("Authorization", std::string("Bearer ") + kOrdersKey);
        return h;
    }());
    ASSERT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("'audit'"), std::string::npos);
    // Nothing reached "audit": the next event published there is its first.
    auto admin = BinaryEvent("marker");
    admin.emplace_back("Authorization", std::string("Bearer ") + kAdminKey);
    r = client().Post("/v1/events/audit", "{}", admin);
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.Json()["accepted"][0]["offset"], 0);
}

TEST_F(GatewayLimitsTest, ScopedKeyMayNotCallOtherModels) {
    Start(KeyedOptions());
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("echo", "hi"), Bearer(kOrdersKey));
    ASSERT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("'echo'"), std::string::npos);
    // The model list shows only what the key may call.
    r = client().Get("/v1/models", Bearer(kOrdersKey));
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.Json()["data"].size(), 1u) << r.body;
    EXPECT_EQ(r.Json()["data"][0]["id"], "silent");
}

TEST_F(GatewayLimitsTest, UnsetKeyVariableFailsStartNamingIt) {
    gateway::GatewayOptions o = KeyedOptions();
    o.spec.api_keys[0].key_env = "EVENTLOOM_TEST_KEY_NOT_SET";
    auto gateway = gateway::Gateway::Start(broker_.get(), jobs_.get(), o);
    ASSERT_FALSE(gateway.ok());
    EXPECT_EQ(gateway.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(gateway.status().message().find("EVENTLOOM_TEST_KEY_NOT_SET"), std::string::npos);
}

TEST_F(GatewayLimitsTest, BodyOverTheLimitIs413) {
    gateway::GatewayOptions o = DefaultOptions();
    o.spec.max_body_bytes = 1024;
    Start(o);
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("echo", std::string(4096, 'x')));
    ASSERT_EQ(r.status, 413) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "body_too_large");
    // A body within the limit is still served (on a new connection if the server closed it).
    r = client().Post("/v1/chat/completions", ChatBody("echo", "small"));
    EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(GatewayLimitsTest, BacklogPastItsBoundIs429WithRetryAfter) {
    gateway::GatewayOptions o = DefaultOptions();
    o.spec.max_backlog = 100;
    o.backlog = [](const std::string& topic) -> int64_t { return topic == "orders" ? 101 : 0; };
    Start(o);
    HttpReply r = client().Post("/v1/events/orders", R"({"n":1})", BinaryEvent("bp-1"));
    ASSERT_EQ(r.status, 429) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "backlog_full");
    EXPECT_FALSE(r.Header("retry-after").empty());
    // Another topic under its bound is served.
    r = client().Post("/v1/events/audit", R"({"n":1})", BinaryEvent("bp-2"));
    EXPECT_EQ(r.status, 202) << r.body;
}

TEST_F(GatewayLimitsTest, RateLimitPerKeyIs429WithRetryAfter) {
    gateway::GatewayOptions o = KeyedOptions();
    o.spec.rate_limits.requests_per_minute = 2;
    Start(o);
    auto post = [&](const char* key, const std::string& id) {
        auto h = BinaryEvent(id);
        h.emplace_back("Authorization", std::string("Bearer ") + key);
        return client().Post("/v1/events/orders", R"({"n":1})", h);
    };
    EXPECT_EQ(post(kOrdersKey, "rl-1").status, 202);
    EXPECT_EQ(post(kOrdersKey, "rl-2").status, 202);
    HttpReply r = post(kOrdersKey, "rl-3");
    ASSERT_EQ(r.status, 429) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "rate_limit_exceeded");
    int retry_after = std::atoi(r.Header("retry-after").c_str());
    EXPECT_GE(retry_after, 1);
    EXPECT_LE(retry_after, 60);
    // The other key has a bucket of its own; the refused event was not published.
    r = post(kAdminKey, "rl-4");
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.Json()["accepted"][0]["offset"], 2);
}

TEST_F(GatewayLimitsTest, RateLimitWithoutKeysIsPerClientAddress) {
    gateway::GatewayOptions o = DefaultOptions();
    o.spec.rate_limits.requests_per_minute = 1;
    Start(o);
    EXPECT_EQ(client().Post("/v1/events/orders", "{}", BinaryEvent("a-1")).status, 202);
    HttpReply r = client().Post("/v1/events/orders", "{}", BinaryEvent("a-2"));
    ASSERT_EQ(r.status, 429) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("client address"),
              std::string::npos);
}

TEST_F(GatewayLimitsTest, DrainingGatewayAnswers503AndIsNotReady) {
    Start();
    EXPECT_EQ(client().Get("/readyz").status, 200);
    gateway_->BeginDrain();
    // A new connection: a draining server closes idle ones.
    HttpTestClient fresh(port());
    HttpReply r = fresh.Post("/v1/chat/completions", ChatBody("echo", "hi"));
    ASSERT_EQ(r.status, 503) << r.body << r.error;
    EXPECT_EQ(r.Json()["error"]["code"], "draining");
    EXPECT_FALSE(r.Header("retry-after").empty());
    HttpTestClient probe(port());
    r = probe.Get("/readyz");
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.Json()["status"], "draining");
    HttpTestClient health(port());
    EXPECT_EQ(health.Get("/healthz").status, 200);
}

TEST_F(GatewayLimitsTest, ReadinessFollowsThePipeline) {
    gateway::GatewayOptions o = DefaultOptions();
    auto ready = std::make_shared<std::atomic<bool>>(false);
    o.ready = [ready] { return ready->load(); };
    Start(o);
    HttpReply r = client().Get("/readyz");
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.Json()["status"], "starting");
    *ready = true;
    EXPECT_EQ(client().Get("/readyz").status, 200);
}

TEST_F(GatewayLimitsTest, UnknownPathIs404AndWrongMethodIs405) {
    Start();
    HttpReply r = client().Get("/v2/nothing");
    ASSERT_EQ(r.status, 404) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("/v2/nothing"),
              std::string::npos);
    r = client().Get("/v1/chat/completions");
    ASSERT_EQ(r.status, 405) << r.body;
    EXPECT_EQ(r.Header("allow"), "POST");
}

TEST_F(GatewayLimitsTest, MalformedHttpIs400AndTheServerLivesOn) {
    Start();
    HttpTestClient raw(port());
    HttpReply r = raw.Raw("THIS IS NOT HTTP\r\n\r\n");
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_EQ(client().Get("/healthz").status, 200);
}

TEST_F(GatewayLimitsTest, StatsCountRequestsByRouteAndClass) {
    Start();
    client().Get("/healthz");
    client().Post("/v1/chat/completions", "{not json");
    client().Post("/v1/chat/completions", ChatBody("echo", "counted"));
    // A response counts once the server has finished writing it, which may be just after
    // the client has read it: wait for the counts to settle (bounded).
    int64_t chat_2xx = 0, chat_4xx = 0, health = 0;
    gateway::GatewayStats s;
    for (int i = 0; i < 500; ++i) {
        s = gateway_->stats();
        for (const auto& route : s.routes) {
            if (route.route == "chat_completions") {
                chat_2xx = route.responses_2xx;
                chat_4xx = route.responses_4xx;
            }
            if (route.route == "healthz") health = route.responses_2xx;
        }
        if (chat_2xx + chat_4xx + health >= 3 && s.in_flight == 0) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(chat_2xx, 1);
    EXPECT_EQ(chat_4xx, 1);
    EXPECT_EQ(health, 1);
    EXPECT_EQ(s.requests, 3);
    EXPECT_EQ(s.in_flight, 0);
}

}  // namespace
}  // namespace eventloom::testing
