// The contract suite on the embedded engine, plus what is particular to it.
#include "broker/embedded_broker.h"

#include "broker/broker_contract.h"
#include "common/file.h"
#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

class EmbeddedHarness final : public BrokerHarness {
public:
    EmbeddedHarness() { Open(); }
    const TempDir& dir() const { return dir_; }
    Broker* broker() override { return broker_.get(); }
    void Restart() override {
        broker_.reset();
        Open();
    }

private:
    void Open() {
        EmbeddedBrokerOptions options;
        options.dir = dir_.Sub("data");
        auto broker = OpenEmbeddedBroker(options);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(broker).value();
    }

    TempDir dir_;
    std::unique_ptr<Broker> broker_;
};

BrokerEngine Embedded() {
    return {"Embedded", [] { return std::make_unique<EmbeddedHarness>(); }};
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Embedded, Contract, ::testing::Values(Embedded()), EngineName);

using ::testing::HasSubstr;

class EmbeddedBrokerTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(harness_.broker()->CreateTopic("orders", Partitions(2)).ok());
    }
    Broker* broker() { return harness_.broker(); }
    std::string ProgressFile(const std::string& group) {
        return harness_.dir().Sub("data") + "/_groups/" + group + "/orders.json";
    }

    EmbeddedHarness harness_;
};

TEST_F(EmbeddedBrokerTest, DedupeWindowSurvivesARestart) {
    ASSERT_TRUE(broker()->Publish("orders", MakeEvent("retry-me", "k")).ok());
    harness_.Restart();
    auto again = broker()->Publish("orders", MakeEvent("retry-me", "k"));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(again->duplicate);
}

TEST_F(EmbeddedBrokerTest, DamagedProgressFileIsDataLossNamingIt) {
    ASSERT_TRUE(broker()->Subscribe(Group("g")).ok());
    harness_.Restart();
    ASSERT_TRUE(FileSystem::Default()->WriteFileAtomic(ProgressFile("g"), "{broken").ok());
    auto c = broker()->Subscribe(Group("g"));
    EXPECT_EQ(c.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(c.status().message(), HasSubstr(ProgressFile("g")));
}

TEST_F(EmbeddedBrokerTest, JoiningWithOtherOptionsIsRefused) {
    auto first = broker()->Subscribe(Group("g"));
    ASSERT_TRUE(first.ok());
    ConsumerOptions other = Group("g");
    other.max_deliveries = 9;
    EXPECT_EQ(broker()->Subscribe(other).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(EmbeddedBrokerTest, BadGroupNameIsRejected) {
    auto c = broker()->Subscribe(Group("../x"));
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(c.status().message(), HasSubstr("consumer group"));
}

TEST_F(EmbeddedBrokerTest, UndecodableRecordIsDeadLettered) {
    // Write garbage straight into the topic, past the broker's encoder.
    auto topic = dynamic_cast<EmbeddedBroker*>(broker())->log()->GetTopic("orders");
    ASSERT_TRUE(topic.ok());
    ASSERT_TRUE((*topic)->PublishTo(PartitionId(0), "not an event").ok());
    auto c = broker()->Subscribe(Group("g"));
    ASSERT_TRUE(c.ok());
    auto none = (*c)->Fetch(1, std::chrono::milliseconds(300));
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
    EXPECT_EQ((*c)->Stats().dead_lettered, 1);
}

}  // namespace eventloom::testing
