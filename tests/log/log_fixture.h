// A log opened over the fault-injecting file system in a temporary directory, with verb
// helpers for publishing, reading and reopening.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "eventloom/log.h"
#include "support/fault_fs.h"
#include "support/temp_dir.h"

namespace eventloom::testing {

class LogTest : public ::testing::Test {
protected:
    void SetUp() override { Open(); }

    // Tests default to 1 MiB segments: every segment is zero-filled when made.
    static TopicOptions Defaults() {
        TopicOptions o;
        o.segment_bytes = 1 << 20;
        o.max_record_bytes = 512 << 10;
        return o;
    }

    static TopicOptions SmallSegments() {
        TopicOptions o;
        o.segment_bytes = 64 << 10;
        o.index_interval_bytes = 256;
        o.max_record_bytes = 16 << 10;
        return o;
    }

    void Open() {
        LogOptions options;
        options.dir = dir_.Sub("log");
        options.fs = &fs_;
        options.max_pending_bytes = max_pending_bytes_;
        auto log = Log::Open(options);
        ASSERT_TRUE(log.ok()) << log.status().ToString();
        log_ = std::move(log).value();
    }

    // Closes the log (flushing what it can) and opens it again.
    void Reopen() {
        log_.reset();
        fs_.Revive();
        Open();
    }

    Topic* Create(const std::string& name = "t", TopicOptions options = Defaults()) {
        auto topic = log_->CreateTopic(name, options);
        EXPECT_TRUE(topic.ok()) << topic.status().ToString();
        return topic.ok() ? *topic : nullptr;
    }

    Topic* Get(const std::string& name = "t") {
        auto topic = log_->GetTopic(name);
        EXPECT_TRUE(topic.ok()) << topic.status().ToString();
        return topic.ok() ? *topic : nullptr;
    }

    static std::string Payload(int i, size_t size = 100) {
        std::string s = "record-" + std::to_string(i) + "-";
        while (s.size() < size) s += static_cast<char>('a' + (s.size() + i) % 26);
        s.resize(size);
        return s;
    }

    // Publishes Payload(first..first+count) to partition 0 and checks each offset.
    void PublishMany(Topic* topic, int first, int count, size_t size = 100) {
        for (int i = first; i < first + count; ++i) {
            auto pos = topic->PublishTo(PartitionId(0), Payload(i, size));
            ASSERT_TRUE(pos.ok()) << pos.status().ToString();
            ASSERT_EQ(pos->offset, Offset(i));
        }
    }

    // Every visible record of a partition from `from`, as strings; fails the test on error.
    std::vector<std::string> ReadAll(Topic* topic, PartitionId partition = PartitionId(0),
                                     Offset from = Offset(0)) {
        std::vector<std::string> out;
        auto reader = topic->OpenReader(partition, from);
        EXPECT_TRUE(reader.ok()) << reader.status().ToString();
        if (!reader.ok()) return out;
        for (;;) {
            auto batch = (*reader)->Read(97, 1 << 20);
            EXPECT_TRUE(batch.ok()) << batch.status().ToString();
            if (!batch.ok() || batch->empty()) break;
            for (const RecordView& r : *batch) {
                EXPECT_EQ(r.offset, from + static_cast<int64_t>(out.size()));
                out.emplace_back(r.payload);
            }
        }
        return out;
    }

    // Reads until an error or the end; returns the status and how many records came first.
    Status ReadUntilError(Topic* topic, size_t* records) {
        *records = 0;
        auto reader = topic->OpenReader(PartitionId(0), Offset(0));
        if (!reader.ok()) return reader.status();
        for (;;) {
            auto batch = (*reader)->Read(100, 1 << 20);
            if (!batch.ok()) return batch.status();
            if (batch->empty()) return Status::Ok();
            *records += batch->size();
        }
    }

    std::string PartitionDir(const std::string& topic = "t", int partition = 0) {
        return dir_.Sub("log") + "/" + topic + "/" + std::to_string(partition);
    }

    TempDir dir_;
    FaultFileSystem fs_;
    uint64_t max_pending_bytes_ = 64ull << 20;
    std::unique_ptr<Log> log_;
};

}  // namespace eventloom::testing
