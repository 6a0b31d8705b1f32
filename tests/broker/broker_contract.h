// The broker contract's test suite, written once and run against every engine: each engine's
// test file instantiates BrokerContractTest with a harness that opens (and reopens) it.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "eventloom/broker.h"

namespace eventloom::testing {

using namespace std::chrono_literals;

// Opens one engine for a test, and reopens it over the same storage.
class BrokerHarness {
public:
    virtual ~BrokerHarness() = default;
    virtual Broker* broker() = 0;
    // Closes the broker (all consumers must be gone) and opens it again on the same data.
    virtual void Restart() = 0;
};

struct BrokerEngine {
    std::string name;
    std::function<std::unique_ptr<BrokerHarness>()> open;
};

inline std::string EngineName(const ::testing::TestParamInfo<BrokerEngine>& info) {
    return info.param.name;
}

class BrokerContractTest : public ::testing::TestWithParam<BrokerEngine> {
protected:
    void SetUp() override { harness_ = GetParam().open(); }
    Broker* broker() { return harness_->broker(); }

    std::unique_ptr<BrokerHarness> harness_;
};

inline Event MakeEvent(const std::string& id, const std::string& key = "", int priority = -1) {
    Event e;
    e.id = id;
    e.source = "test";
    e.type = "test.event";
    e.partitionkey = key;
    if (priority >= 0) e.priority = priority;
    e.data = "data-" + id;
    e.has_data = true;
    return e;
}

inline TopicOptions Partitions(int n) {
    TopicOptions o;
    o.partitions = n;
    o.segment_bytes = 1 << 20;
    o.max_record_bytes = 256 << 10;
    return o;
}

inline ConsumerOptions Group(const std::string& group, const std::string& topic = "orders") {
    ConsumerOptions o;
    o.topic = topic;
    o.group = group;
    o.lease = 30s;
    o.commit_interval = 0ms;
    return o;
}

inline std::string Id(const Delivery& d) { return d.event->id; }

class Contract : public BrokerContractTest {
protected:
    void SetUp() override {
        BrokerContractTest::SetUp();
        ASSERT_TRUE(broker()->CreateTopic("orders", Partitions(3)).ok());
    }

    void Publish(const std::string& id, const std::string& key = "", int priority = -1) {
        auto r = broker()->Publish("orders", MakeEvent(id, key, priority));
        ASSERT_TRUE(r.ok()) << r.status().ToString();
    }

    std::unique_ptr<Consumer> Join(const ConsumerOptions& options) {
        auto c = broker()->Subscribe(options);
        EXPECT_TRUE(c.ok()) << c.status().ToString();
        return c.ok() ? std::move(c).value() : nullptr;
    }

    // Fetches until `n` deliveries came or `patience` passed.
    std::vector<Delivery> FetchN(Consumer& c, size_t n, std::chrono::milliseconds patience = 10s) {
        std::vector<Delivery> all;
        auto deadline = std::chrono::steady_clock::now() + patience;
        while (all.size() < n && std::chrono::steady_clock::now() < deadline) {
            auto batch = c.Fetch(n - all.size(), 100ms);
            EXPECT_TRUE(batch.ok()) << batch.status().ToString();
            if (!batch.ok()) break;
            for (auto& d : *batch) all.push_back(std::move(d));
        }
        return all;
    }

    std::vector<Event> ReadTopic(const std::string& topic, size_t n) {
        auto c = Join(Group("reader-" + topic, topic));
        std::vector<Event> out;
        for (auto& d : FetchN(*c, n)) {
            out.push_back(*d.event);
            EXPECT_TRUE(c->Ack(d.tag).ok());
        }
        return out;
    }
};

}  // namespace eventloom::testing
