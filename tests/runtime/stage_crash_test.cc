// Effectively-once across crashes: a worker process runs an effectively-once stage and is
// killed with SIGKILL at random moments, again and again; each restart resumes from the
// consumer group's progress. At the end every input has exactly one output: none missing,
// none duplicated.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include "eventloom/broker.h"
#include "eventloom/log.h"
#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

constexpr int kEvents = 20000;
constexpr int kKills = 50;

pid_t StartWorker(const std::string& data, const std::string& state) {
    pid_t pid = ::fork();
    if (pid == 0) {
        ::execl(STAGE_CRASH_WORKER, STAGE_CRASH_WORKER, data.c_str(), state.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

void Kill(pid_t pid) {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
}

// Output events by the input they came from (causationid), read without taking the log's
// lock, so it works while a worker runs.
std::map<std::string, int> Outputs(const std::string& data, int64_t* records) {
    std::map<std::string, int> by_input;
    *records = 0;
    LogOptions options;
    options.dir = data;
    options.read_only = true;
    auto log = Log::Open(options);
    if (!log.ok()) return by_input;
    auto topic = (*log)->GetTopic("out");
    if (!topic.ok()) return by_input;
    for (int32_t p = 0; p < (*topic)->partitions(); ++p) {
        auto reader = (*topic)->OpenReader(PartitionId(p), Offset(0));
        if (!reader.ok()) continue;
        for (;;) {
            auto batch = (*reader)->Read(1000, 4 << 20);
            EXPECT_TRUE(batch.ok()) << batch.status().ToString();
            if (!batch.ok() || batch->empty()) break;
            for (const RecordView& r : *batch) {
                auto event = DecodeEvent(r.payload);
                EXPECT_TRUE(event.ok()) << event.status().ToString();
                if (!event.ok()) continue;
                ++by_input[event->causationid];
                ++*records;
            }
        }
    }
    return by_input;
}

TEST(StageCrash, EffectivelyOnceSurvivesRepeatedSigkill) {
    TempDir dir;
    std::string data = dir.Sub("data"), state = dir.Sub("state.db");
    {
        EmbeddedBrokerOptions b;
        b.dir = data;
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        TopicOptions t;
        t.partitions = 2;
        t.segment_bytes = 1 << 20;
        t.max_record_bytes = 64 << 10;
        ASSERT_TRUE((*broker)->CreateTopic("in", t).ok());
        ASSERT_TRUE((*broker)->CreateTopic("out", t).ok());
        std::vector<Event> events;
        for (int i = 0; i < kEvents; ++i) {
            Event e;
            e.id = "in-" + std::to_string(i);
            e.source = "test";
            e.type = "crash.in";
            e.partitionkey = "k" + std::to_string(i % 13);
            events.push_back(std::move(e));
        }
        ASSERT_TRUE((*broker)->PublishBatch("in", events).ok());
    }

    std::mt19937 rng(7);
    std::uniform_int_distribution<int> delay_ms(30, 250);
    int mid_work = 0;  // rounds killed while inputs were still waiting
    for (int round = 0; round < kKills; ++round) {
        pid_t pid = StartWorker(data, state);
        ASSERT_GT(pid, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        Kill(pid);
        int64_t records = 0;
        size_t done = Outputs(data, &records).size();
        if (done > 0 && done < static_cast<size_t>(kEvents)) ++mid_work;
    }
    std::printf("%d of %d kills landed while work was in progress\n", mid_work, kKills);
    EXPECT_GT(mid_work, 0);

    // A last run, left to finish the work.
    pid_t pid = StartWorker(data, state);
    int64_t records = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    while (std::chrono::steady_clock::now() < deadline) {
        if (Outputs(data, &records).size() >= static_cast<size_t>(kEvents)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a late duplicate would show
    Kill(pid);

    auto outputs = Outputs(data, &records);
    EXPECT_EQ(outputs.size(), static_cast<size_t>(kEvents)) << "inputs with an output";
    EXPECT_EQ(records, kEvents) << "output records: more means duplicates";
    for (int i = 0; i < kEvents; ++i) {
        auto it = outputs.find("in-" + std::to_string(i));
        ASSERT_NE(it, outputs.end()) << "in-" << i << " has no output";
        EXPECT_EQ(it->second, 1) << "in-" << i << " has " << it->second << " outputs";
    }
}

}  // namespace
}  // namespace eventloom::testing
