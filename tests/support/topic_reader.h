// Test helper: reads what a stage published. A consumer group of its own on a topic, from the
// earliest offset, acking everything it reads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "eventloom/broker.h"

namespace eventloom::testing {

class TopicReader {
public:
    // `broker` must outlive the reader. Fails the current test when the subscription fails.
    TopicReader(Broker* broker, const std::string& topic, const std::string& group = "test-reader");

    // Events read so far plus new ones, until there are at least `count` or `timeout` passed;
    // returns all of them in the order read.
    const std::vector<Event>& WaitFor(size_t count,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
    const std::vector<Event>& events() const { return events_; }

private:
    std::unique_ptr<Consumer> consumer_;
    std::vector<Event> events_;
};

}  // namespace eventloom::testing
