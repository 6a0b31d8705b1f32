// Kills a real publisher process with SIGKILL at random moments, then reopens the log and
// checks that every publish acknowledged as durable is present and intact, and that nothing
// corrupt is ever served. Each round continues on the log the previous rounds left.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "log/crash_common.h"
#include "log/log_fixture.h"

namespace eventloom::testing {
namespace {

constexpr int kRounds = 60;

struct Ack {
    int32_t partition;
    int64_t offset;
    int64_t seq;
};

std::vector<Ack> ReadAcks(const std::string& path) {
    std::vector<Ack> acks;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (in.eof()) break;  // a line cut by the kill has no newline
        std::istringstream fields(line);
        Ack a{};
        if (fields >> a.partition >> a.offset >> a.seq) acks.push_back(a);
    }
    return acks;
}

pid_t StartPublisher(const std::string& data_dir, const std::string& ack_file, int64_t first) {
    pid_t pid = ::fork();
    if (pid == 0) {
        std::string seq = std::to_string(first);
        ::execl(CRASH_PUBLISHER, CRASH_PUBLISHER, data_dir.c_str(), ack_file.c_str(), seq.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

// Every record of every partition, decoded; fails the test on any error.
std::map<std::pair<int32_t, int64_t>, Event> ReadLog(const std::string& dir) {
    std::map<std::pair<int32_t, int64_t>, Event> events;
    LogOptions options;
    options.dir = dir;
    auto log = Log::Open(options);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    if (!log.ok()) return events;
    auto topic = (*log)->GetTopic("crash");
    if (!topic.ok()) return events;  // killed before the topic was made
    for (int32_t p = 0; p < (*topic)->partitions(); ++p) {
        auto info = (*topic)->Describe(PartitionId(p));
        EXPECT_TRUE(info->error.empty()) << info->error;
        auto reader = (*topic)->OpenReader(PartitionId(p), Offset(0));
        EXPECT_TRUE(reader.ok()) << reader.status().ToString();
        if (!reader.ok()) continue;
        for (;;) {
            auto batch = (*reader)->Read(500, 4 << 20);
            EXPECT_TRUE(batch.ok()) << batch.status().ToString();
            if (!batch.ok() || batch->empty()) break;
            for (const RecordView& r : *batch) {
                auto event = DecodeEvent(r.payload);
                EXPECT_TRUE(event.ok()) << "partition " << p << " offset " << r.offset.value()
                                        << ": " << event.status().ToString();
                if (event.ok()) events[{p, r.offset.value()}] = std::move(event).value();
            }
        }
    }
    return events;
}

TEST(LogCrash, AcknowledgedPublishesSurviveSigkill) {
    TempDir dir;
    std::string data_dir = dir.Sub("log");
    std::string ack_file = dir.Sub("acks");
    std::mt19937 rng(20261203);
    std::uniform_int_distribution<int> delay_ms(1, 120);
    size_t checked_total = 0;

    for (int round = 0; round < kRounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        pid_t pid = StartPublisher(data_dir, ack_file, int64_t{round} * 10'000'000);
        ASSERT_GT(pid, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status)) << "publisher exited on its own with " << status;

        auto events = ReadLog(data_dir);
        std::vector<Ack> acks = ReadAcks(ack_file);
        for (const Ack& a : acks) {
            auto it = events.find({a.partition, a.offset});
            ASSERT_NE(it, events.end()) << "acknowledged seq " << a.seq << " at partition "
                                        << a.partition << " offset " << a.offset << " is missing";
            EXPECT_EQ(it->second.id, "seq-" + std::to_string(a.seq));
            EXPECT_EQ(it->second.data, crash_test::DataFor(a.seq));
        }
        // Records never acknowledged may survive too; they must be intact all the same.
        for (const auto& [where, event] : events) {
            ASSERT_EQ(event.id.rfind("seq-", 0), 0u);
            int64_t seq = std::stoll(event.id.substr(4));
            EXPECT_EQ(event.data, crash_test::DataFor(seq)) << event.id;
        }
        checked_total = acks.size();
    }
    EXPECT_GT(checked_total, 0u);  // the publisher got far enough to acknowledge something
}

}  // namespace
}  // namespace eventloom::testing
