#include "broker/embedded_broker.h"

#include "broker/group.h"
#include "common/file.h"
#include "common/logging.h"

namespace eventloom {
namespace {

// Records scanned per partition at start-up to rebuild the dedupe window.
constexpr int64_t kDedupeScan = 50'000;

int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class EmbeddedConsumer final : public Consumer {
public:
    EmbeddedConsumer(std::shared_ptr<ConsumerGroup> group, uint64_t member)
        : group_(std::move(group)), member_(member) {}
    ~EmbeddedConsumer() override {
        group_->RemoveMember(member_);
        Status status = group_->Commit();
        if (!status.ok()) logging::Get("broker")->warn("closing consumer: {}", status.ToString());
    }

    Result<std::vector<Delivery>> Fetch(size_t max, std::chrono::milliseconds wait) override {
        return group_->Fetch(member_, max, wait);
    }
    Status Ack(const DeliveryTag& tag) override { return group_->Ack(tag); }
    Status Nack(const DeliveryTag& tag, std::chrono::milliseconds delay,
                std::string_view error) override {
        return group_->Nack(tag, delay, error);
    }
    Status Term(const DeliveryTag& tag, std::string_view reason) override {
        return group_->Term(tag, reason);
    }
    Status ExtendLease(const DeliveryTag& tag) override { return group_->ExtendLease(tag); }
    Status Commit() override { return group_->Commit(); }
    ConsumerStats Stats() override { return group_->Stats(); }

private:
    std::shared_ptr<ConsumerGroup> group_;
    uint64_t member_;
};

}  // namespace

EmbeddedBroker::~EmbeddedBroker() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (committer_.joinable()) committer_.join();
}

void EmbeddedBroker::CommitLoop() {
    constexpr auto kPeriod = std::chrono::milliseconds(20);
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_cv_.wait_for(lock, kPeriod, [&] { return stopping_; })) {
        std::vector<std::shared_ptr<ConsumerGroup>> groups;
        for (auto& [key, weak] : groups_) {
            if (auto group = weak.lock()) groups.push_back(std::move(group));
        }
        lock.unlock();
        for (auto& group : groups) {
            Status status = group->CommitIfDue();
            if (!status.ok()) logging::Get("broker")->warn("{}", status.ToString());
        }
        groups.clear();  // the last reference may go here, outside mu_
        lock.lock();
    }
}

Status EmbeddedBroker::Open() {
    LogOptions log_options;
    log_options.dir = options_.dir;
    log_options.fs = options_.fs;
    EVENTLOOM_ASSIGN_OR_RETURN(log_, Log::Open(log_options));
    FileSystem* fs = options_.fs ? options_.fs : FileSystem::Default();
    EVENTLOOM_RETURN_IF_ERROR(fs->CreateDirs(options_.dir + "/_groups"));
    committer_ = std::thread([this] { CommitLoop(); });
    return Status::Ok();
}

Status EmbeddedBroker::CreateTopic(const std::string& name, const TopicOptions& options) {
    return log_->CreateTopic(name, options).status();
}

Result<TopicOptions> EmbeddedBroker::DescribeTopic(const std::string& name) {
    EVENTLOOM_ASSIGN_OR_RETURN(Topic * topic, GetTopic(name));
    return topic->options();
}

std::vector<std::string> EmbeddedBroker::ListTopics() { return log_->ListTopics(); }

Result<Topic*> EmbeddedBroker::GetTopic(const std::string& name) { return log_->GetTopic(name); }

std::string EmbeddedBroker::DeadLetterTopic(const ConsumerOptions& options) const {
    return options.dead_letter_topic.empty() ? options.topic + ".dead-letter"
                                             : options.dead_letter_topic;
}

EmbeddedBroker::Dedupe& EmbeddedBroker::DedupeFor(const std::string& topic) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = dedupe_[topic];
    if (!slot) {
        slot = std::make_unique<Dedupe>();
        slot->ids.reserve(options_.dedupe_max_ids + 1);
    }
    return *slot;
}

void EmbeddedBroker::Remember(Dedupe& dedupe, const std::string& id, PublishResult at,
                              int64_t now_ms) {
    dedupe.ids[id] = at;
    dedupe.order.emplace_back(now_ms, id);
    int64_t horizon = now_ms - std::chrono::milliseconds(options_.dedupe_window).count();
    while (!dedupe.order.empty() && (dedupe.order.front().first < horizon ||
                                     dedupe.order.size() > options_.dedupe_max_ids)) {
        auto it = dedupe.ids.find(dedupe.order.front().second);
        // The id may have been published again later; only forget the oldest entry's own.
        if (it != dedupe.ids.end()) dedupe.ids.erase(it);
        dedupe.order.pop_front();
    }
}

void EmbeddedBroker::LoadDedupe(Topic* topic, Dedupe& dedupe) {
    // Rebuild the window from the newest records of each partition, so a producer retrying
    // across a restart of this process is still deduplicated.
    dedupe.loaded = true;
    int64_t horizon = NowMs() - std::chrono::milliseconds(options_.dedupe_window).count();
    std::vector<std::tuple<int64_t, std::string, PublishResult>> seen;
    for (int32_t p = 0; p < topic->partitions(); ++p) {
        auto info = topic->Describe(PartitionId(p));
        if (!info.ok()) continue;
        Offset from =
            std::max(info->start_offset, Offset(info->visible_offset.value() - kDedupeScan));
        auto reader = topic->OpenReader(PartitionId(p), from);
        if (!reader.ok()) continue;
        for (;;) {
            auto batch = (*reader)->Read(1024, 4 << 20);
            if (!batch.ok() || batch->empty()) break;
            for (const RecordView& r : *batch) {
                if (r.timestamp_ms < horizon) continue;
                auto event = DecodeEvent(r.payload);
                if (!event.ok()) continue;
                seen.emplace_back(r.timestamp_ms, event->id,
                                  PublishResult{PartitionId(p), r.offset, true});
            }
        }
    }
    std::sort(seen.begin(), seen.end(),
              [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
    for (auto& [ms, id, at] : seen) Remember(dedupe, id, at, ms);
}

Result<PublishResult> EmbeddedBroker::Publish(const std::string& topic, const Event& event,
                                              const PublishOptions& options) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto results,
                               PublishBatch(topic, std::span<const Event>(&event, 1), options));
    return results.front();
}

Result<std::vector<PublishResult>> EmbeddedBroker::PublishBatch(const std::string& topic_name,
                                                                std::span<const Event> events,
                                                                const PublishOptions& options) {
    EVENTLOOM_ASSIGN_OR_RETURN(Topic * topic, GetTopic(topic_name));
    std::vector<std::string> records(events.size());
    std::vector<std::string> ids(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
        const Event* e = &events[i];
        Event filled;
        if (e->id.empty() || e->time.empty()) {
            filled = *e;
            FillDefaults(&filled);
            e = &filled;
        }
        Status valid = ValidateEvent(*e);
        if (!valid.ok()) {
            return events.size() == 1 ? valid
                                      : valid.WithContext("event [" + std::to_string(i) + "]");
        }
        AppendEncodedEvent(*e, &records[i]);
        ids[i] = e->id;
    }

    std::vector<PublishResult> results(events.size());
    std::map<int32_t, RecordPosition> last;  // per partition, the position to wait for
    Dedupe& dedupe = DedupeFor(topic_name);
    {
        std::lock_guard<std::mutex> lock(dedupe.mu);
        if (options.dedupe && !dedupe.loaded) LoadDedupe(topic, dedupe);
        int64_t now_ms = NowMs();
        for (size_t i = 0; i < events.size(); ++i) {
            if (options.dedupe) {
                auto it = dedupe.ids.find(ids[i]);
                if (it != dedupe.ids.end()) {
                    results[i] = it->second;
                    results[i].duplicate = true;
                    // The first copy may not be durable yet: wait for it like for our own.
                    RecordPosition at{it->second.partition, it->second.offset};
                    auto [slot, fresh] = last.emplace(at.partition.value(), at);
                    if (!fresh && slot->second.offset < at.offset) slot->second = at;
                    continue;
                }
            }
            // This call waits for durability below, and flushes then.
            auto pos = topic->Append(events[i].partitionkey, records[i], /*caller_waits=*/true);
            if (!pos.ok() && pos.status().code() == StatusCode::kResourceExhausted) {
                // Backpressure: let what is pending become durable, then try once more.
                for (auto& [p, at] : last) EVENTLOOM_RETURN_IF_ERROR(topic->WaitDurable(at));
                pos = topic->Append(events[i].partitionkey, records[i], /*caller_waits=*/true);
            }
            if (!pos.ok()) return pos.status();
            results[i] = PublishResult{pos->partition, pos->offset, false};
            last[pos->partition.value()] = *pos;
            if (options.dedupe) Remember(dedupe, ids[i], results[i], now_ms);
        }
    }
    for (auto& [p, at] : last) EVENTLOOM_RETURN_IF_ERROR(topic->WaitDurable(at));
    return results;
}

Result<std::unique_ptr<Consumer>> EmbeddedBroker::Subscribe(const ConsumerOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicName(options.group).WithContext("consumer group"));
    if (options.lease.count() <= 0) return InvalidArgumentError("lease must be positive");
    if (options.max_outstanding == 0) return InvalidArgumentError("max_outstanding must be > 0");
    if (options.max_deliveries < 0) return InvalidArgumentError("max_deliveries is negative");
    EVENTLOOM_ASSIGN_OR_RETURN(Topic * topic, GetTopic(options.topic));

    // The dead-letter topic exists before anything can be sent there.
    std::string dead_letter = DeadLetterTopic(options);
    if (!log_->GetTopic(dead_letter).ok()) {
        TopicOptions dlq_options;
        dlq_options.segment_bytes = 16 << 20;
        dlq_options.max_record_bytes = topic->options().max_record_bytes + (64 << 10);
        dlq_options.segment_bytes =
            std::max<uint64_t>(dlq_options.segment_bytes, 2ull * dlq_options.max_record_bytes);
        EVENTLOOM_RETURN_IF_ERROR(log_->CreateTopic(dead_letter, dlq_options).status());
    }

    std::shared_ptr<ConsumerGroup> group;
    {
        std::lock_guard<std::mutex> lock(mu_);
        std::string key = options.group + "/" + options.topic;
        group = groups_[key].lock();
        if (group && !group->Compatible(options)) {
            return FailedPreconditionError("consumer group " + options.group + " on topic " +
                                           options.topic +
                                           " is open with other lease, delivery or dead-letter "
                                           "options in this process");
        }
        if (!group) {
            FileSystem* fs = options_.fs ? options_.fs : FileSystem::Default();
            std::string dir = options_.dir + "/_groups/" + options.group;
            EVENTLOOM_RETURN_IF_ERROR(fs->CreateDirs(dir));
            group = std::make_shared<ConsumerGroup>(this, topic, options,
                                                    dir + "/" + options.topic + ".json", fs);
            EVENTLOOM_RETURN_IF_ERROR(group->Open());
            groups_[key] = group;
        }
    }
    uint64_t member = group->AddMember();
    return std::unique_ptr<Consumer>(std::make_unique<EmbeddedConsumer>(std::move(group), member));
}

Result<std::unique_ptr<Broker>> OpenEmbeddedBroker(const EmbeddedBrokerOptions& options) {
    auto broker = std::make_unique<EmbeddedBroker>(options);
    EVENTLOOM_RETURN_IF_ERROR(broker->Open());
    return std::unique_ptr<Broker>(std::move(broker));
}

}  // namespace eventloom
