#include "log/segment.h"

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace eventloom {
namespace {

namespace lf = log_format;
using testing::TempDir;

TEST(SegmentFileName, RoundTrips) {
    EXPECT_EQ(lf::SegmentFileName(1042), "00000000000000001042.log");
    int64_t base = -1;
    ASSERT_TRUE(lf::ParseSegmentFileName("00000000000000001042.log", &base));
    EXPECT_EQ(base, 1042);
}

TEST(SegmentFileName, OtherNamesAreNotSegments) {
    int64_t base;
    for (const char* name : {"topic.json", "00000000000000001042.index", "1042.log",
                             "0000000000000000104x.log", "99999999999999999999.log"}) {
        SCOPED_TRACE(name);
        EXPECT_FALSE(lf::ParseSegmentFileName(name, &base));
    }
}

TEST(Frame, RoundTrips) {
    std::string buf;
    lf::AppendFrame(&buf, 7, 123456, "payload");
    EXPECT_EQ(buf.size(), lf::kRecordOverhead + 7);
    lf::ParsedFrame frame;
    ASSERT_EQ(lf::ParseFrame(buf, 1024, &frame), lf::FrameCheck::kOk);
    EXPECT_EQ(frame.offset, 7);
    EXPECT_EQ(frame.timestamp_ms, 123456);
    EXPECT_EQ(frame.payload, "payload");
    EXPECT_EQ(frame.frame_bytes, buf.size());
}

TEST(Frame, DamageIsClassified) {
    std::string good;
    lf::AppendFrame(&good, 1, 2, "abcdef");
    lf::ParsedFrame frame;

    std::string flipped = good;
    flipped[lf::kRecordOverhead + 2] ^= 0x01;
    EXPECT_EQ(lf::ParseFrame(flipped, 1024, &frame), lf::FrameCheck::kBadChecksum);

    EXPECT_EQ(lf::ParseFrame(good.substr(0, good.size() - 1), 1024, &frame),
              lf::FrameCheck::kIncomplete);
    EXPECT_EQ(lf::ParseFrame(std::string(32, '\0'), 1024, &frame), lf::FrameCheck::kEnd);

    std::string huge = good;
    lf::PutU32(huge.data(), 1u << 30);
    EXPECT_EQ(lf::ParseFrame(huge, 1024, &frame), lf::FrameCheck::kBadLength);
}

class SegmentTest : public ::testing::Test {
protected:
    // A sealed segment with `n` records of 100 bytes starting at offset 10.
    std::shared_ptr<Segment> MakeSealed(int n) {
        auto segment = Segment::Create(fs_, dir_.path(), Offset(10), 1 << 20);
        EXPECT_TRUE(segment.ok()) << segment.status().ToString();
        std::string frames;
        std::vector<IndexEntry> index;
        uint64_t position = lf::kSegmentHeaderBytes;
        for (int i = 0; i < n; ++i) {
            if (i % 10 == 0) {
                index.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(position)});
            }
            size_t before = frames.size();
            lf::AppendFrame(&frames, 10 + i, 0, std::string(100, 'a' + i % 26));
            position += frames.size() - before;
        }
        EXPECT_TRUE((*segment)->Write(frames).ok());
        (*segment)->AddIndexEntries(index);
        EXPECT_TRUE((*segment)->Seal(fs_, dir_.path()).ok());
        return *segment;
    }

    TempDir dir_;
    FileSystem* fs_ = FileSystem::Default();
};

TEST_F(SegmentTest, SealCutsPreallocationAndWritesIndex) {
    auto segment = MakeSealed(50);
    EXPECT_EQ(*segment->file()->Size(), lf::kSegmentHeaderBytes + 50 * (lf::kRecordOverhead + 100));
    EXPECT_TRUE(fs_->Exists(dir_.Sub(lf::IndexFileName(10))));
}

TEST_F(SegmentTest, LookupFindsEntryAtOrBelowTarget) {
    auto sealed = MakeSealed(50);
    auto segment = Segment::OpenSealed(fs_, dir_.path(), Offset(10), 1 << 20, 4096);
    ASSERT_TRUE(segment.ok()) << segment.status().ToString();
    Offset entry;
    uint64_t position = (*segment)->Lookup(Offset(35), &entry);
    EXPECT_EQ(entry, Offset(30));
    EXPECT_EQ(position, lf::kSegmentHeaderBytes + 20 * (lf::kRecordOverhead + 100));
}

TEST_F(SegmentTest, DamagedIndexIsRebuiltByScanning) {
    MakeSealed(50);
    ASSERT_TRUE(fs_->WriteFileAtomic(dir_.Sub(lf::IndexFileName(10)), "garbage").ok());
    auto segment = Segment::OpenSealed(fs_, dir_.path(), Offset(10), 1 << 20, 256);
    ASSERT_TRUE(segment.ok()) << segment.status().ToString();
    Offset entry;
    uint64_t position = (*segment)->Lookup(Offset(45), &entry);
    EXPECT_LE(entry, Offset(45));
    EXPECT_GT(entry, Offset(40));  // a 256-byte interval puts an entry every 3 records
    EXPECT_EQ(position,
              lf::kSegmentHeaderBytes + (entry - Offset(10)) * (lf::kRecordOverhead + 100));
}

TEST_F(SegmentTest, WrongHeaderIsDataLoss) {
    MakeSealed(5);
    auto other = fs_->Open(dir_.Sub(lf::SegmentFileName(10)), OpenMode::kReadWrite);
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE((*other)->WriteAt(0, "NOTASEGM").ok());
    auto segment = Segment::OpenSealed(fs_, dir_.path(), Offset(10), 1 << 20, 4096);
    EXPECT_EQ(segment.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(segment.status().message().find("byte 0"), std::string::npos);
}

TEST_F(SegmentTest, ScanStopsAtFirstBadFrame) {
    auto segment = MakeSealed(20);
    auto file = fs_->Open(segment->path(), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    uint64_t bad = lf::kSegmentHeaderBytes + 12 * (lf::kRecordOverhead + 100) + 30;
    ASSERT_TRUE((*file)->WriteAt(bad, "X").ok());
    auto scan = ScanFrames(**file, lf::kSegmentHeaderBytes, 10, 10, 1 << 20, 4096);
    ASSERT_TRUE(scan.ok());
    EXPECT_EQ(scan->next_offset, 22);
    EXPECT_EQ(scan->stop, lf::FrameCheck::kBadChecksum);
}

}  // namespace
}  // namespace eventloom
