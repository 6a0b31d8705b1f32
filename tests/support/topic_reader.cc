#include "support/topic_reader.h"

#include <gtest/gtest.h>

namespace eventloom::testing {

TopicReader::TopicReader(Broker* broker, const std::string& topic, const std::string& group) {
    ConsumerOptions o;
    o.topic = topic;
    o.group = group;
    o.max_deliveries = 0;
    o.spin = std::chrono::microseconds(0);
    auto consumer = broker->Subscribe(o);
    EXPECT_TRUE(consumer.ok()) << "subscribe to '" << topic
                               << "': " << consumer.status().ToString();
    if (consumer.ok()) consumer_ = std::move(consumer).value();
}

const std::vector<Event>& TopicReader::WaitFor(size_t count, std::chrono::milliseconds timeout) {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (consumer_ && events_.size() < count && std::chrono::steady_clock::now() < give_up) {
        auto deliveries = consumer_->Fetch(64, std::chrono::milliseconds(50));
        if (!deliveries.ok()) break;
        for (const Delivery& d : *deliveries) {
            events_.push_back(*d.event);
            consumer_->Ack(d.tag).IgnoreError();
        }
    }
    return events_;
}

}  // namespace eventloom::testing
