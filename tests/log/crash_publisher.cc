// A publisher for the crash test: publishes events into a log from three threads, and after
// each publish is acknowledged as durable appends "partition offset sequence" to an ack file.
// The test kills it with SIGKILL at random moments and checks the log against the ack file.
//
//   log_crash_publisher DATA_DIR ACK_FILE FIRST_SEQUENCE
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "eventloom/event.h"
#include "eventloom/log.h"
#include "log/crash_common.h"

using namespace eventloom;

namespace {

int g_ack_fd = -1;

void Ack(RecordPosition pos, int64_t seq) {
    char line[96];
    int n = std::snprintf(line, sizeof(line), "%d %lld %lld\n", pos.partition.value(),
                          static_cast<long long>(pos.offset.value()), static_cast<long long>(seq));
    if (::write(g_ack_fd, line, static_cast<size_t>(n)) != n) std::abort();
}

[[noreturn]] void Die(const Status& s) {
    std::fprintf(stderr, "crash_publisher: %s\n", s.ToString().c_str());
    std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s DATA_DIR ACK_FILE FIRST_SEQUENCE\n", argv[0]);
        return 2;
    }
    g_ack_fd = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_ack_fd < 0) return 3;
    int64_t first = std::atoll(argv[3]);

    LogOptions options;
    options.dir = argv[1];
    auto log = Log::Open(options);
    if (!log.ok()) Die(log.status());
    auto topic = (*log)->CreateTopic("crash", crash_test::TopicOptionsForCrashTest());
    if (!topic.ok()) Die(topic.status());
    Topic* t = *topic;

    std::atomic<int64_t> next_seq{first};
    std::vector<std::thread> threads;
    // One-at-a-time publishers, keyed so they spread over the partitions.
    for (int k = 0; k < 2; ++k) {
        threads.emplace_back([&] {
            for (;;) {
                int64_t seq = next_seq++;
                auto pos = t->Publish("key-" + std::to_string(seq % 7),
                                      EncodeEvent(crash_test::MakeEvent(seq)));
                if (!pos.ok()) Die(pos.status());
                Ack(*pos, seq);
            }
        });
    }
    // A windowed publisher: appends many, then waits for each to be durable.
    threads.emplace_back([&] {
        for (;;) {
            std::deque<std::pair<RecordPosition, int64_t>> window;
            for (int i = 0; i < 64; ++i) {
                int64_t seq = next_seq++;
                auto pos = t->Append("", EncodeEvent(crash_test::MakeEvent(seq)));
                if (!pos.ok()) Die(pos.status());
                window.emplace_back(*pos, seq);
            }
            for (auto& [pos, seq] : window) {
                if (Status s = t->WaitDurable(pos); !s.ok()) Die(s);
                Ack(pos, seq);
            }
        }
    });
    for (auto& th : threads) th.join();
    return 0;
}
