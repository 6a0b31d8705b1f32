// Topics: names, options, partitioning by key, persistence across reopen.
#include "log/topic.h"

#include <map>
#include <set>

#include "log/log_fixture.h"

namespace eventloom::testing {
namespace {

using ::testing::HasSubstr;

TEST(TopicName, InvalidNamesAreRejected) {
    struct Case {
        std::string name;
        std::string expect;
    };
    const Case cases[] = {
        {"", "empty"},
        {"..", "must not start with '.'"},
        {".hidden", "must not start with '.'"},
        {"_groups", "reserved"},
        {"a/b", "may contain only"},
        {"..\\x", "must not start with '.'"},
        {"x/../y", "may contain only"},
        {"with space", "may contain only"},
        {std::string(201, 'a'), "201 characters"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Status s = ValidateTopicName(c.name);
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(s.message(), HasSubstr(c.expect));
    }
}

TEST(TopicName, ValidNamesAreAccepted) {
    for (const char* name : {"orders", "tickets.created", "a-b_c.9", "X"}) {
        SCOPED_TRACE(name);
        EXPECT_TRUE(ValidateTopicName(name).ok());
    }
    EXPECT_TRUE(ValidateTopicName(std::string(200, 'a')).ok());
}

TEST(TopicOptions, OutOfRangeFieldsAreNamed) {
    struct Case {
        std::function<void(TopicOptions&)> change;
        std::string field;
    };
    const Case cases[] = {
        {[](TopicOptions& o) { o.partitions = 0; }, "partitions"},
        {[](TopicOptions& o) { o.segment_bytes = 100; }, "segment_bytes"},
        {[](TopicOptions& o) { o.max_record_bytes = 0; }, "max_record_bytes"},
        {[](TopicOptions& o) { o.index_interval_bytes = 1; }, "index_interval_bytes"},
        {[](TopicOptions& o) {
             o.durability = Durability::kInterval;
             o.sync_interval = std::chrono::milliseconds(0);
         },
         "sync_interval"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.field);
        TopicOptions o;
        c.change(o);
        Status s = ValidateTopicOptions(o);
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(s.message(), HasSubstr(c.field));
    }
}

TEST(TopicOptions, JsonRoundTrips) {
    TopicOptions o;
    o.partitions = 3;
    o.durability = Durability::kInterval;
    o.sync_interval = std::chrono::milliseconds(25);
    o.retention_bytes = 1 << 30;
    o.retention_age = std::chrono::hours(24);
    auto back = TopicOptionsFromJson(TopicOptionsToJson(o), "topic.json");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, o);
}

TEST(TopicOptions, DamagedJsonIsDataLossNamingTheFile) {
    auto back = TopicOptionsFromJson("{\"partitions\": \"x\"}", "/x/topic.json");
    EXPECT_EQ(back.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(back.status().message(), HasSubstr("/x/topic.json"));
}

TEST_F(LogTest, CreateTopicTwiceWithSameOptionsReturnsIt) {
    Topic* first = Create();
    Topic* second = Create();
    EXPECT_EQ(first, second);
}

TEST_F(LogTest, CreateTopicWithOtherOptionsIsAlreadyExists) {
    Create();
    TopicOptions other = Defaults();
    other.partitions = 2;
    EXPECT_EQ(log_->CreateTopic("t", other).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(LogTest, UnknownTopicIsNotFound) {
    EXPECT_EQ(log_->GetTopic("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(LogTest, SameKeyAlwaysGoesToSamePartition) {
    TopicOptions options = Defaults();
    options.partitions = 8;
    Topic* topic = Create("t", options);
    std::map<std::string, int32_t> seen;
    for (int round = 0; round < 3; ++round) {
        for (int k = 0; k < 50; ++k) {
            std::string key = "customer-" + std::to_string(k);
            auto pos = topic->Publish(key, "x");
            ASSERT_TRUE(pos.ok());
            auto [it, inserted] = seen.emplace(key, pos->partition.value());
            EXPECT_EQ(it->second, pos->partition.value()) << key;
        }
    }
    std::set<int32_t> used;
    for (auto& [key, p] : seen) used.insert(p);
    EXPECT_GE(used.size(), 6u);  // 50 keys spread over 8 partitions
}

TEST_F(LogTest, EmptyKeyGoesRoundRobin) {
    TopicOptions options = Defaults();
    options.partitions = 4;
    Topic* topic = Create("t", options);
    std::vector<int32_t> partitions;
    for (int i = 0; i < 8; ++i) partitions.push_back(topic->Publish("", "x")->partition.value());
    for (int i = 0; i < 4; ++i) EXPECT_EQ(partitions[i], partitions[i + 4]);
    EXPECT_EQ(std::set<int32_t>(partitions.begin(), partitions.end()).size(), 4u);
}

TEST_F(LogTest, UnknownPartitionIsInvalidArgument) {
    Topic* topic = Create();
    auto pos = topic->PublishTo(PartitionId(1), "x");
    EXPECT_EQ(pos.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(pos.status().message(), HasSubstr("no partition 1"));
}

TEST_F(LogTest, TopicsAndRecordsSurviveReopen) {
    TopicOptions options = Defaults();
    options.partitions = 2;
    Topic* topic = Create("orders", options);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(topic->PublishTo(PartitionId(i % 2), Payload(i)).ok());
    Reopen();
    EXPECT_EQ(log_->ListTopics(), std::vector<std::string>{"orders"});
    topic = Get("orders");
    EXPECT_EQ(topic->options(), options);
    EXPECT_EQ(ReadAll(topic, PartitionId(1)).size(), 5u);
    auto pos = topic->PublishTo(PartitionId(1), "after");
    ASSERT_TRUE(pos.ok());
    EXPECT_EQ(pos->offset, Offset(5));
}

TEST_F(LogTest, SecondOpenOfTheSameDirectoryIsRefused) {
    LogOptions options;
    options.dir = dir_.Sub("log");
    auto second = Log::Open(options);
    EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

}  // namespace
}  // namespace eventloom::testing

namespace eventloom::testing {
namespace {

TEST_F(LogTest, ReadOnlyFollowerSeesRecordsAndRollsOfTheWriter) {
    Topic* writer = Create("t", SmallSegments());
    PublishMany(writer, 0, 10);

    LogOptions options;
    options.dir = dir_.Sub("log");
    options.read_only = true;
    auto follower_log = Log::Open(options);
    ASSERT_TRUE(follower_log.ok()) << follower_log.status().ToString();
    Topic* follower = *(*follower_log)->GetTopic("t");
    EXPECT_EQ(ReadAll(follower).size(), 10u);
    EXPECT_FALSE(follower->PublishTo(PartitionId(0), "x").ok());

    PublishMany(writer, 10, 1000);  // rolls into new segments
    EXPECT_TRUE(follower->WaitForData(PartitionId(0), Offset(1009), std::chrono::seconds(60)));
    std::vector<std::string> records = ReadAll(follower);
    ASSERT_EQ(records.size(), 1010u);
    EXPECT_EQ(records[1009], Payload(1009));
}

}  // namespace
}  // namespace eventloom::testing
