// The embedded broker: the broker contract over eventloom's own log, in one process.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "eventloom/broker.h"
#include "eventloom/log.h"

namespace eventloom {

class ConsumerGroup;

class EmbeddedBroker final : public Broker {
public:
    explicit EmbeddedBroker(EmbeddedBrokerOptions options) : options_(std::move(options)) {}
    ~EmbeddedBroker() override;

    Status Open();

    Status CreateTopic(const std::string& name, const TopicOptions& options) override;
    Result<TopicOptions> DescribeTopic(const std::string& name) override;
    std::vector<std::string> ListTopics() override;
    Result<PublishResult> Publish(const std::string& topic, const Event& event,
                                  const PublishOptions& options) override;
    Result<std::vector<PublishResult>> PublishBatch(const std::string& topic,
                                                    std::span<const Event> events,
                                                    const PublishOptions& options) override;
    Result<std::unique_ptr<Consumer>> Subscribe(const ConsumerOptions& options) override;

    std::string DeadLetterTopic(const ConsumerOptions& options) const;
    Log* log() { return log_.get(); }

private:
    // The ids published to one topic within the dedupe window.
    struct Dedupe {
        std::mutex mu;
        bool loaded = false;
        std::unordered_map<std::string, PublishResult> ids;
        std::deque<std::pair<int64_t, std::string>> order;  // (published ms, id), oldest first
    };

    Result<Topic*> GetTopic(const std::string& name);
    Dedupe& DedupeFor(const std::string& topic);
    void LoadDedupe(Topic* topic, Dedupe& dedupe);
    void Remember(Dedupe& dedupe, const std::string& id, PublishResult at, int64_t now_ms);

    EmbeddedBrokerOptions options_;
    std::unique_ptr<Log> log_;

    std::mutex mu_;
    std::map<std::string, std::unique_ptr<Dedupe>> dedupe_;       // guarded by mu_
    std::map<std::string, std::weak_ptr<ConsumerGroup>> groups_;  // guarded by mu_

    void CommitLoop();
    std::condition_variable stop_cv_;
    bool stopping_ = false;  // guarded by mu_
    std::thread committer_;
};

}  // namespace eventloom
