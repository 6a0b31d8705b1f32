// What the crash test's publisher writes, shared with the checking side.
#pragma once

#include <string>

#include "eventloom/event.h"
#include "eventloom/log.h"

namespace eventloom::crash_test {

// Small segments so that crashes also land in rolls; two partitions.
inline TopicOptions TopicOptionsForCrashTest() {
    TopicOptions o;
    o.partitions = 2;
    o.segment_bytes = 256 << 10;
    o.max_record_bytes = 64 << 10;
    o.index_interval_bytes = 1024;
    return o;
}

// Event `seq`: its id names the sequence; its data length varies up to 40 KiB, so records
// straddle pages and some writes are large.
inline std::string DataFor(int64_t seq) {
    size_t len = (seq % 97 == 0) ? 40000 + static_cast<size_t>(seq % 1000)
                                 : 50 + static_cast<size_t>((seq * 7919) % 600);
    std::string data(len, '\0');
    for (size_t i = 0; i < len; ++i) data[i] = static_cast<char>('a' + (seq + i) % 26);
    return data;
}

inline Event MakeEvent(int64_t seq) {
    Event e;
    e.id = "seq-" + std::to_string(seq);
    e.source = "crash-test";
    e.type = "crash.test";
    e.data = DataFor(seq);
    e.has_data = true;
    return e;
}

}  // namespace eventloom::crash_test
