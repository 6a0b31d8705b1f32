// Recovery: what survives a crash, torn tails, truncation, corruption and failed syncs.
#include <filesystem>
#include <thread>

#include "log/format.h"
#include "log/log_fixture.h"

namespace eventloom::testing {
namespace {

namespace lf = log_format;
using ::testing::HasSubstr;

std::string SegmentPath(const std::string& dir, int64_t base) {
    return dir + "/" + lf::SegmentFileName(base);
}

void OverwriteByte(const std::string& path, uint64_t position) {
    auto file = FileSystem::Default()->Open(path, OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    char c;
    ASSERT_TRUE((*file)->ReadAt(position, &c, 1).ok());
    c = static_cast<char>(c ^ 0x5a);
    ASSERT_TRUE((*file)->WriteAt(position, std::string_view(&c, 1)).ok());
}

uint64_t RecordPosition(int index, size_t payload) {
    return lf::kSegmentHeaderBytes + index * (lf::kRecordOverhead + payload);
}

TEST_F(LogTest, CrashKeepsEveryAcknowledgedRecord) {
    Topic* topic = Create();
    PublishMany(topic, 0, 100);
    for (int i = 100; i < 150; ++i) ASSERT_TRUE(topic->AppendTo(PartitionId(0), Payload(i)).ok());
    fs_.Crash();
    Reopen();
    topic = Get();
    std::vector<std::string> records = ReadAll(topic);
    ASSERT_GE(records.size(), 100u);
    for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i], Payload(i));
}

TEST_F(LogTest, TornTailIsCutAndNeverServed) {
    Topic* topic = Create();
    PublishMany(topic, 0, 10);
    fs_.PauseSyncs();
    // Five records are written, but their sync never completes: the machine dies.
    std::thread writer([&] {
        for (int i = 10; i < 15; ++i)
            topic->AppendTo(PartitionId(0), Payload(i)).status().IgnoreError();
        topic->WaitDurable({PartitionId(0), Offset(14)}).IgnoreError();
    });
    while (fs_.syncs_waiting() == 0) std::this_thread::yield();
    fs_.Crash(/*keep_torn_bytes=*/150);  // one whole record and part of the next survive
    writer.join();
    Reopen();
    topic = Get();
    std::vector<std::string> records = ReadAll(topic);
    ASSERT_GE(records.size(), 10u);
    ASSERT_LE(records.size(), 11u);
    for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i], Payload(i));
    auto next = topic->PublishTo(PartitionId(0), "after");
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    EXPECT_EQ(next->offset, Offset(static_cast<int64_t>(records.size())));
}

TEST_F(LogTest, TruncatedFileIsCutAtTheLastWholeRecord) {
    Topic* topic = Create();
    PublishMany(topic, 0, 10);
    log_.reset();
    std::filesystem::resize_file(SegmentPath(PartitionDir(), 0), RecordPosition(7, 100) + 30);
    Open();
    topic = Get();
    EXPECT_EQ(ReadAll(topic).size(), 7u);
    EXPECT_EQ(topic->PublishTo(PartitionId(0), "x")->offset, Offset(7));
    EXPECT_EQ(ReadAll(topic).size(), 8u);
}

TEST_F(LogTest, DamagedLastRecordIsCutAsTornTail) {
    Topic* topic = Create();
    PublishMany(topic, 0, 10);
    log_.reset();
    OverwriteByte(SegmentPath(PartitionDir(), 0), RecordPosition(9, 100) + 40);
    Open();
    topic = Get();
    EXPECT_EQ(ReadAll(topic).size(), 9u);
    EXPECT_TRUE(topic->Describe(PartitionId(0))->error.empty());
}

TEST_F(LogTest, CorruptionInTheMiddleIsReportedAndNotSkipped) {
    TopicOptions options = Defaults();
    options.durability = Durability::kNever;
    options.segment_bytes = 64 << 20;
    Topic* topic = Create("t", options);
    // More than the unsynced-bytes bound lies after the damage, so it cannot be a torn tail.
    int count = static_cast<int>(lf::kMaxUnsyncedBytes / 1000) + 2000;
    PublishMany(topic, 0, count, 1000);
    log_.reset();
    std::string path = SegmentPath(PartitionDir(), 0);
    uint64_t damaged = RecordPosition(5, 1000) + 100;
    OverwriteByte(path, damaged);
    Open();
    topic = Get();

    auto info = topic->Describe(PartitionId(0));
    EXPECT_THAT(info->error, HasSubstr(path));
    EXPECT_THAT(info->error, HasSubstr("byte " + std::to_string(RecordPosition(5, 1000))));
    size_t served = 0;
    Status status = ReadUntilError(topic, &served);
    EXPECT_EQ(served, 5u);
    EXPECT_EQ(status.code(), StatusCode::kDataLoss);
    EXPECT_THAT(status.message(), HasSubstr(path));
    EXPECT_FALSE(topic->PublishTo(PartitionId(0), "x").ok());
}

TEST_F(LogTest, CorruptionInASealedSegmentFailsTheReadWithFileAndByte) {
    Topic* topic = Create("t", SmallSegments());
    PublishMany(topic, 0, 1500);
    log_.reset();
    std::string path = SegmentPath(PartitionDir(), 0);
    uint64_t position = RecordPosition(100, 100);
    OverwriteByte(path, position + 50);
    Open();
    size_t served = 0;
    Status status = ReadUntilError(Get(), &served);
    EXPECT_EQ(served, 100u);
    EXPECT_EQ(status.code(), StatusCode::kDataLoss);
    EXPECT_THAT(status.message(), HasSubstr(path + " byte " + std::to_string(position)));
}

TEST_F(LogTest, FailedSyncFailsThePublishAndStopsThePartition) {
    Topic* topic = Create();
    PublishMany(topic, 0, 5);
    fs_.FailSyncs(true);
    auto failed = topic->PublishTo(PartitionId(0), "lost?");
    EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
    fs_.FailSyncs(false);
    auto after = topic->PublishTo(PartitionId(0), "refused");
    EXPECT_FALSE(after.ok());
    EXPECT_THAT(after.status().message(), HasSubstr("reopen"));
    EXPECT_FALSE(topic->Describe(PartitionId(0))->error.empty());

    fs_.Crash();
    Reopen();
    std::vector<std::string> records = ReadAll(Get());
    ASSERT_EQ(records.size(), 5u);  // the unacknowledged record was never synced
    EXPECT_EQ(records[4], Payload(4));
}

TEST_F(LogTest, TornWriteFailsThePublish) {
    Topic* topic = Create();
    PublishMany(topic, 0, 3);
    fs_.TearWritesAfter(10);
    EXPECT_FALSE(topic->PublishTo(PartitionId(0), Payload(3)).ok());
    fs_.Crash();
    Reopen();
    EXPECT_EQ(ReadAll(Get()).size(), 3u);
}

TEST_F(LogTest, MissingIndexOfASealedSegmentIsRebuilt) {
    Topic* topic = Create("t", SmallSegments());
    PublishMany(topic, 0, 1500);
    log_.reset();
    std::filesystem::remove(PartitionDir() + "/" + lf::IndexFileName(0));
    Open();
    topic = Get();
    EXPECT_TRUE(std::filesystem::exists(PartitionDir() + "/" + lf::IndexFileName(0)));
    std::vector<std::string> tail = ReadAll(topic, PartitionId(0), Offset(300));
    ASSERT_EQ(tail.size(), 1200u);
    EXPECT_EQ(tail.front(), Payload(300));
}

TEST_F(LogTest, SegmentWhoseCreationDidNotFinishIsRecreated) {
    Create();
    log_.reset();
    auto file = FileSystem::Default()->Open(SegmentPath(PartitionDir(), 0), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, std::string(16, '\0')).ok());
    Open();
    EXPECT_EQ(Get()->PublishTo(PartitionId(0), "x")->offset, Offset(0));
}

TEST_F(LogTest, OffsetsContinueAfterReopenAcrossSegments) {
    Topic* topic = Create("t", SmallSegments());
    PublishMany(topic, 0, 1000);
    Reopen();
    topic = Get();
    PublishMany(topic, 1000, 1000);
    std::vector<std::string> records = ReadAll(topic);
    ASSERT_EQ(records.size(), 2000u);
    EXPECT_EQ(records[1500], Payload(1500));
}

}  // namespace
}  // namespace eventloom::testing
