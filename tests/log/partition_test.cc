// Publishing and reading one partition: offsets, limits, group commit, policies, rolls and
// retention.
#include <filesystem>
#include <thread>

#include "log/format.h"
#include "log/log_fixture.h"

namespace eventloom::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(LogTest, PublishAssignsConsecutiveOffsets) {
    Topic* topic = Create();
    PublishMany(topic, 0, 20);
    auto info = topic->Describe(PartitionId(0));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->end_offset, Offset(20));
    EXPECT_EQ(info->durable_offset, Offset(20));
}

TEST_F(LogTest, ReadReturnsWhatWasPublished) {
    Topic* topic = Create();
    PublishMany(topic, 0, 50);
    std::vector<std::string> records = ReadAll(topic);
    ASSERT_EQ(records.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(records[i], Payload(i));
}

TEST_F(LogTest, ReadStartsAtAnyOffset) {
    Topic* topic = Create("t", SmallSegments());
    PublishMany(topic, 0, 300);
    for (int from : {0, 1, 17, 150, 299, 300}) {
        SCOPED_TRACE(from);
        std::vector<std::string> records = ReadAll(topic, PartitionId(0), Offset(from));
        ASSERT_EQ(records.size(), static_cast<size_t>(300 - from));
        if (!records.empty()) {
            EXPECT_EQ(records.front(), Payload(from));
        }
    }
}

TEST_F(LogTest, ReadHonoursRecordAndByteLimits) {
    Topic* topic = Create();
    PublishMany(topic, 0, 10);
    auto reader = topic->OpenReader(PartitionId(0), Offset(0));
    ASSERT_TRUE(reader.ok());
    auto batch = (*reader)->Read(3, 1 << 20);
    ASSERT_TRUE(batch.ok());
    EXPECT_EQ(batch->size(), 3u);
    batch = (*reader)->Read(100, 150);  // 150 bytes: two records of 100
    ASSERT_TRUE(batch.ok());
    EXPECT_EQ(batch->size(), 2u);
    EXPECT_EQ((*reader)->next(), Offset(5));
}

TEST_F(LogTest, RecordLargerThanReadBufferIsReturnedWhole) {
    Topic* topic = Create();
    std::string big(300 << 10, 'x');
    ASSERT_TRUE(topic->PublishTo(PartitionId(0), big).ok());
    auto reader = topic->OpenReader(PartitionId(0), Offset(0));
    ASSERT_TRUE(reader.ok());
    auto batch = (*reader)->Read(10, 1024);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_EQ(batch->size(), 1u);
    EXPECT_EQ((*batch)[0].payload, big);
}

TEST_F(LogTest, RecordOverTheLimitIsRejected) {
    TopicOptions options = Defaults();
    options.max_record_bytes = 1000;
    Topic* topic = Create("t", options);
    auto pos = topic->PublishTo(PartitionId(0), std::string(1001, 'x'));
    EXPECT_EQ(pos.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(pos.status().message(), HasSubstr("1001 bytes"));
}

TEST_F(LogTest, ReadingBeyondTheEndIsOutOfRange) {
    Topic* topic = Create();
    PublishMany(topic, 0, 3);
    auto reader = topic->OpenReader(PartitionId(0), Offset(4));
    EXPECT_EQ(reader.status().code(), StatusCode::kOutOfRange);
}

TEST_F(LogTest, AppendedWindowBecomesDurable) {
    Topic* topic = Create();
    RecordPosition last{};
    for (int i = 0; i < 1000; ++i) {
        auto pos = topic->AppendTo(PartitionId(0), Payload(i));
        ASSERT_TRUE(pos.ok()) << pos.status().ToString();
        EXPECT_EQ(pos->offset, Offset(i));
        last = *pos;
    }
    ASSERT_TRUE(topic->WaitDurable(last).ok());
    EXPECT_EQ(topic->Describe(PartitionId(0))->durable_offset, Offset(1000));
    EXPECT_EQ(ReadAll(topic).size(), 1000u);
}

TEST_F(LogTest, ConcurrentPublishersShareOneSync) {
    Topic* topic = Create();
    fs_.PauseSyncs();
    // The first publisher writes its record and blocks in fdatasync.
    std::thread first([&] { EXPECT_TRUE(topic->PublishTo(PartitionId(0), "first").ok()); });
    while (fs_.syncs_waiting() == 0) std::this_thread::yield();
    int syncs_before = fs_.syncs();
    // Three more arrive while it syncs; they wait for the next flush.
    std::vector<std::thread> others;
    for (int i = 0; i < 3; ++i) {
        others.emplace_back([&] { EXPECT_TRUE(topic->PublishTo(PartitionId(0), "later").ok()); });
    }
    while (topic->Describe(PartitionId(0))->end_offset < Offset(4)) std::this_thread::yield();
    fs_.ResumeSyncs();
    first.join();
    for (auto& t : others) t.join();
    // One sync for the first record, one shared by the three that queued behind it.
    EXPECT_EQ(fs_.syncs() - syncs_before, 2);
    EXPECT_EQ(ReadAll(topic).size(), 4u);
}

TEST_F(LogTest, ConcurrentPublishersGetDistinctOffsets) {
    Topic* topic = Create();
    constexpr int kThreads = 4, kEach = 200;
    std::vector<std::vector<int64_t>> offsets(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                auto pos = topic->PublishTo(PartitionId(0), Payload(t * kEach + i));
                ASSERT_TRUE(pos.ok());
                offsets[t].push_back(pos->offset.value());
            }
        });
    }
    for (auto& t : threads) t.join();
    std::vector<int64_t> all;
    for (auto& v : offsets) {
        EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
        all.insert(all.end(), v.begin(), v.end());
    }
    std::sort(all.begin(), all.end());
    for (int i = 0; i < kThreads * kEach; ++i) EXPECT_EQ(all[i], i);
}

TEST_F(LogTest, PendingLimitPushesBack) {
    max_pending_bytes_ = 4096;
    Reopen();
    Topic* topic = Create();
    fs_.PauseSyncs();
    std::thread blocked([&] { EXPECT_TRUE(topic->PublishTo(PartitionId(0), "x").ok()); });
    while (fs_.syncs_waiting() == 0) std::this_thread::yield();
    Status pushed_back;
    for (int i = 0; i < 100 && pushed_back.ok(); ++i) {
        pushed_back = topic->AppendTo(PartitionId(0), Payload(i)).status();
    }
    EXPECT_EQ(pushed_back.code(), StatusCode::kResourceExhausted);
    fs_.ResumeSyncs();
    blocked.join();
}

TEST_F(LogTest, IntervalPolicyShowsRecordsAtOnceAndSyncsLater) {
    TopicOptions options = Defaults();
    options.durability = Durability::kInterval;
    options.sync_interval = std::chrono::milliseconds(10);
    Topic* topic = Create("t", options);
    PublishMany(topic, 0, 5);
    EXPECT_EQ(topic->Describe(PartitionId(0))->visible_offset, Offset(5));
    EXPECT_EQ(ReadAll(topic).size(), 5u);
    // The background sync catches up on its own.
    for (int i = 0; i < 1000 && topic->Describe(PartitionId(0))->durable_offset < Offset(5); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(topic->Describe(PartitionId(0))->durable_offset, Offset(5));
}

TEST_F(LogTest, NeverPolicySyncsOnFlush) {
    TopicOptions options = Defaults();
    options.durability = Durability::kNever;
    Topic* topic = Create("t", options);
    int syncs_before = fs_.syncs();
    PublishMany(topic, 0, 5);
    EXPECT_EQ(fs_.syncs(), syncs_before);
    EXPECT_EQ(topic->Describe(PartitionId(0))->durable_offset, Offset(0));
    ASSERT_TRUE(log_->Flush().ok());
    EXPECT_EQ(topic->Describe(PartitionId(0))->durable_offset, Offset(5));
}

TEST_F(LogTest, WaitForDataWakesOnPublish) {
    Topic* topic = Create();
    EXPECT_FALSE(topic->WaitForData(PartitionId(0), Offset(0), std::chrono::milliseconds(1)));
    std::thread publisher([&] { EXPECT_TRUE(topic->PublishTo(PartitionId(0), "x").ok()); });
    EXPECT_TRUE(topic->WaitForData(PartitionId(0), Offset(0), std::chrono::seconds(60)));
    publisher.join();
}

TEST_F(LogTest, SegmentsRollBySize) {
    Topic* topic = Create("t", SmallSegments());
    PublishMany(topic, 0, 2000);  // 2000 * 124 bytes over 64 KiB segments
    auto info = topic->Describe(PartitionId(0));
    EXPECT_GE(info->segments, 3);
    std::vector<std::string> records = ReadAll(topic);
    ASSERT_EQ(records.size(), 2000u);
    EXPECT_EQ(records[1999], Payload(1999));
    for (const auto& entry : std::filesystem::directory_iterator(PartitionDir())) {
        if (entry.path().extension() == ".log" && entry.path() != entry.path().parent_path()) {
            EXPECT_LE(entry.file_size(), 64u << 10);
        }
    }
}

TEST_F(LogTest, RetentionBySizeDropsOldestSegments) {
    TopicOptions options = SmallSegments();
    options.retention_bytes = 128 << 10;
    Topic* topic = Create("t", options);
    PublishMany(topic, 0, 3000);
    ASSERT_TRUE(topic->EnforceRetention().ok());
    auto info = topic->Describe(PartitionId(0));
    EXPECT_GT(info->start_offset, Offset(0));
    EXPECT_LE(info->bytes, (128u << 10) + (64u << 10));
    auto reader = topic->OpenReader(PartitionId(0), Offset(0));
    EXPECT_EQ(reader.status().code(), StatusCode::kOutOfRange);
    std::vector<std::string> rest = ReadAll(topic, PartitionId(0), info->start_offset);
    EXPECT_EQ(rest.size(), static_cast<size_t>(3000 - info->start_offset.value()));
}

TEST_F(LogTest, RetentionByAgeDropsOldSegments) {
    TopicOptions options = SmallSegments();
    options.retention_age = std::chrono::hours(1);
    Topic* topic = Create("t", options);
    PublishMany(topic, 0, 1500);
    ASSERT_TRUE(topic->EnforceRetention().ok());
    EXPECT_EQ(topic->Describe(PartitionId(0))->start_offset, Offset(0));  // nothing is old yet

    auto two_hours_ago = std::filesystem::file_time_type::clock::now() - std::chrono::hours(2);
    for (const auto& entry : std::filesystem::directory_iterator(PartitionDir())) {
        std::filesystem::last_write_time(entry.path(), two_hours_ago);
    }
    ASSERT_TRUE(topic->EnforceRetention().ok());
    auto info = topic->Describe(PartitionId(0));
    EXPECT_EQ(info->segments, 1);  // the active segment always stays
    EXPECT_GT(info->start_offset, Offset(0));
}

TEST_F(LogTest, ReaderKeepsReadingASegmentRemovedByRetention) {
    TopicOptions options = SmallSegments();
    options.retention_bytes = 64 << 10;
    Topic* topic = Create("t", options);
    PublishMany(topic, 0, 600);
    auto reader = topic->OpenReader(PartitionId(0), Offset(0));
    ASSERT_TRUE(reader.ok());
    ASSERT_TRUE((*reader)->Read(1, 1 << 20).ok());
    PublishMany(topic, 600, 1500);
    ASSERT_TRUE(topic->EnforceRetention().ok());
    ASSERT_GT(topic->Describe(PartitionId(0))->start_offset, Offset(1));
    auto batch = (*reader)->Read(1, 1 << 20);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_EQ(batch->size(), 1u);
    EXPECT_EQ((*batch)[0].payload, Payload(1));
}

}  // namespace
}  // namespace eventloom::testing
