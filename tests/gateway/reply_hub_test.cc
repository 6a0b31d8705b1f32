#include "gateway/reply_hub.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "support/temp_dir.h"

namespace eventloom::gateway {
namespace {

using namespace std::chrono_literals;

// Collects what a waiter is called with; waits for it with a generous deadline.
class Inbox {
public:
    ReplyHub::Callback Callback() {
        return [this](const std::string& topic, const std::shared_ptr<const Event>& event) {
            std::lock_guard<std::mutex> lock(mu_);
            received_.emplace_back(topic, event->id);
            cv_.notify_all();
        };
    }
    bool WaitFor(size_t count) {
        std::unique_lock<std::mutex> lock(mu_);
        return cv_.wait_for(lock, 30s, [&] { return received_.size() >= count; });
    }
    std::vector<std::pair<std::string, std::string>> received() {
        std::lock_guard<std::mutex> lock(mu_);
        return received_;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::pair<std::string, std::string>> received_;
};

class ReplyHubTest : public ::testing::Test {
protected:
    void SetUp() override {
        EmbeddedBrokerOptions o;
        o.dir = dir_.Sub("broker");
        auto broker = OpenEmbeddedBroker(o);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(broker).value();
        hub_ = std::make_unique<ReplyHub>(broker_.get(), "gateway");
        ASSERT_TRUE(hub_->Start({"replies", "chunks"}).ok());
    }
    void TearDown() override { hub_->Stop(); }

    void Publish(const std::string& topic, const std::string& id, const std::string& correlation) {
        Event e;
        e.id = id;
        e.source = "/test";
        e.type = "reply";
        e.correlationid = correlation;
        ASSERT_TRUE(broker_->Publish(topic, e).ok());
    }

    testing::TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<ReplyHub> hub_;
};

TEST_F(ReplyHubTest, WaiterGetsEventsOfItsCorrelationId) {
    Inbox inbox;
    uint64_t token = hub_->Register("req-1", inbox.Callback());
    Publish("replies", "other", "req-2");
    Publish("chunks", "c1", "req-1");
    Publish("replies", "r1", "req-1");
    ASSERT_TRUE(inbox.WaitFor(2));
    auto received = inbox.received();
    ASSERT_EQ(received.size(), 2u);
    std::set<std::pair<std::string, std::string>> got(received.begin(), received.end());
    EXPECT_TRUE(got.count({"chunks", "c1"}));
    EXPECT_TRUE(got.count({"replies", "r1"}));
    hub_->Unregister("req-1", token);
}

TEST_F(ReplyHubTest, EventWithoutWaiterIsDropped) {
    Publish("replies", "r1", "nobody");
    // A later waited-for event proves the first was fetched before it.
    Inbox inbox;
    uint64_t token = hub_->Register("req-1", inbox.Callback());
    Publish("replies", "r2", "req-1");
    ASSERT_TRUE(inbox.WaitFor(1));
    EXPECT_GE(hub_->dropped(), 1);
    hub_->Unregister("req-1", token);
}

TEST_F(ReplyHubTest, UnregisteredWaiterIsNotCalled) {
    Inbox gone;
    Inbox stays;
    uint64_t gone_token = hub_->Register("req-1", gone.Callback());
    uint64_t stays_token = hub_->Register("req-1", stays.Callback());
    hub_->Unregister("req-1", gone_token);
    Publish("replies", "r1", "req-1");
    ASSERT_TRUE(stays.WaitFor(1));
    EXPECT_TRUE(gone.received().empty());
    hub_->Unregister("req-1", stays_token);
}

TEST_F(ReplyHubTest, EveryWaiterOfOneIdIsCalled) {
    Inbox first;
    Inbox second;
    uint64_t a = hub_->Register("req-1", first.Callback());
    uint64_t b = hub_->Register("req-1", second.Callback());
    Publish("replies", "r1", "req-1");
    EXPECT_TRUE(first.WaitFor(1));
    EXPECT_TRUE(second.WaitFor(1));
    hub_->Unregister("req-1", a);
    hub_->Unregister("req-1", b);
}

TEST_F(ReplyHubTest, MissingTopicIsCreated) {
    ReplyHub hub(broker_.get(), "other-gateway");
    ASSERT_TRUE(hub.Start({"brand.new"}).ok());
    EXPECT_TRUE(broker_->DescribeTopic("brand.new").ok());
    hub.Stop();
}

}  // namespace
}  // namespace eventloom::gateway
