// ReplyHub: see reply_hub.h.
#include "gateway/reply_hub.h"

#include <set>

#include "common/logging.h"

namespace eventloom::gateway {

using namespace std::chrono_literals;

ReplyHub::ReplyHub(Broker* broker, std::string group) : broker_(broker), group_(std::move(group)) {}

ReplyHub::~ReplyHub() { Stop(); }

Status ReplyHub::Start(const std::vector<std::string>& topics) {
    std::set<std::string> seen;
    for (const std::string& topic : topics) {
        if (topic.empty() || !seen.insert(topic).second) continue;

        // The pipeline normally creates its topics first; a gateway alone still starts.
        if (auto described = broker_->DescribeTopic(topic); !described.ok()) {
            if (described.status().code() != StatusCode::kNotFound) return described.status();
            EVENTLOOM_RETURN_IF_ERROR(broker_->CreateTopic(topic, TopicOptions{}));
        }

        ConsumerOptions o;
        o.topic = topic;
        o.group = group_;
        o.start = StartFrom::kLatest;
        o.max_deliveries = 0;
        o.stage = group_;
        auto consumer = broker_->Subscribe(o);
        if (!consumer.ok()) {
            Stop();
            return consumer.status().WithContext("gateway: subscribe to topic '" + topic + "'");
        }
        consumers_.push_back(std::move(consumer).value());
        topics_.push_back(topic);
    }

    // Threads start once every subscription succeeded.
    for (size_t i = 0; i < consumers_.size(); ++i) {
        threads_.emplace_back(
            [this, consumer = consumers_[i].get(), topic = topics_[i]] { Run(consumer, topic); });
    }
    return Status::Ok();
}

void ReplyHub::Stop() {
    stopping_ = true;
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
    consumers_.clear();
    topics_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.clear();
}

uint64_t ReplyHub::Register(const std::string& correlation_id, Callback callback) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t token = next_token_++;
    waiters_[correlation_id][token] = std::make_shared<Callback>(std::move(callback));
    return token;
}

void ReplyHub::Unregister(const std::string& correlation_id, uint64_t token) {
    std::shared_ptr<Callback> removed;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = waiters_.find(correlation_id);
        if (it == waiters_.end()) return;
        if (auto w = it->second.find(token); w != it->second.end()) {
            removed = std::move(w->second);
            it->second.erase(w);
        }
        if (it->second.empty()) waiters_.erase(it);
    }
    // Wait for a callback that may be running right now, so none runs after this returns.
    std::lock_guard<std::mutex> running(callback_mu_);
}

void ReplyHub::Dispatch(const std::string& topic, const std::shared_ptr<const Event>& event) {
    std::lock_guard<std::mutex> running(callback_mu_);
    std::vector<std::shared_ptr<Callback>> callbacks;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = waiters_.find(event->correlationid);
        if (it != waiters_.end()) {
            for (const auto& [token, callback] : it->second) callbacks.push_back(callback);
        }
    }
    if (callbacks.empty()) {
        ++dropped_;
        return;
    }
    for (const auto& callback : callbacks) (*callback)(topic, event);
}

void ReplyHub::Run(Consumer* consumer, const std::string& topic) {
    auto log = logging::Get("gateway");
    while (!stopping_) {
        auto deliveries = consumer->Fetch(64, 100ms);
        if (!deliveries.ok()) {
            log->warn("reply fetch topic={}: {}", topic, deliveries.status().ToString());
            std::this_thread::sleep_for(100ms);
            continue;
        }
        for (const Delivery& d : *deliveries) {
            if (Status s = consumer->Ack(d.tag); !s.ok()) {
                log->warn("reply ack topic={} partition={} offset={}: {}", topic,
                          d.tag.partition.value(), d.tag.offset.value(), s.ToString());
            }
            if (d.event) Dispatch(topic, d.event);
        }
    }
}

}  // namespace eventloom::gateway
