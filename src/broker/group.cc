#include "broker/group.h"

#include <nlohmann/json.hpp>

#include "broker/embedded_broker.h"
#include "common/logging.h"

namespace eventloom {
namespace {

constexpr auto kDeadLetterRetry = std::chrono::seconds(1);
constexpr size_t kReadBatch = 256;

bool IsDeadLetterExtension(const std::string& name) { return name.rfind("deadletter", 0) == 0; }

}  // namespace

ConsumerGroup::ConsumerGroup(EmbeddedBroker* broker, Topic* topic, ConsumerOptions options,
                             std::string progress_path, FileSystem* fs)
    : broker_(broker),
      topic_(topic),
      options_(std::move(options)),
      progress_path_(std::move(progress_path)),
      fs_(fs),
      ready_(options_.priority_max_wait),
      last_commit_(Clock::now()) {}

bool ConsumerGroup::Compatible(const ConsumerOptions& o) const {
    return o.lease == options_.lease && o.max_deliveries == options_.max_deliveries &&
           o.dead_letter_topic == options_.dead_letter_topic &&
           o.max_outstanding == options_.max_outstanding &&
           o.one_in_flight_per_key == options_.one_in_flight_per_key;
}

Status ConsumerGroup::Open() {
    nlohmann::json progress;
    if (fs_->Exists(progress_path_)) {
        EVENTLOOM_ASSIGN_OR_RETURN(std::string text, fs_->ReadFile(progress_path_));
        progress = nlohmann::json::parse(text, nullptr, false);
        if (progress.is_discarded() || !progress.is_object()) {
            return DataLossError(progress_path_ + ": consumer group progress is not valid JSON");
        }
    }
    for (int32_t p = 0; p < topic_->partitions(); ++p) {
        EVENTLOOM_ASSIGN_OR_RETURN(PartitionInfo info, topic_->Describe(PartitionId(p)));
        PartitionState state;
        Offset from =
            options_.start == StartFrom::kLatest ? info.visible_offset : info.start_offset;
        const nlohmann::json* saved = nullptr;
        if (progress.contains("partitions") && progress["partitions"].is_array() &&
            p < static_cast<int32_t>(progress["partitions"].size())) {
            saved = &progress["partitions"][static_cast<size_t>(p)];
        }
        if (saved != nullptr) {
            try {
                from = Offset(saved->at("committed").get<int64_t>());
                state.restored_read_to = saved->at("read_to").get<int64_t>();
                for (auto& [offset, attempts] : saved->at("unsettled").items()) {
                    state.restored_unsettled[std::stoll(offset)] = attempts.get<int>();
                }
            } catch (const std::exception& e) {
                return DataLossError(progress_path_ + ": partition " + std::to_string(p) + ": " +
                                     e.what());
            }
            if (from < info.start_offset) {
                logging::Get("broker")->warn(
                    "group={} topic={} partition={} committed offset {} was removed by "
                    "retention; resuming at {}",
                    options_.group, options_.topic, p, from.value(), info.start_offset.value());
                from = info.start_offset;
            }
            from = std::min(from, info.visible_offset);
        }
        EVENTLOOM_ASSIGN_OR_RETURN(state.reader, topic_->OpenReader(PartitionId(p), from));
        partitions_.push_back(std::move(state));
    }
    return Status::Ok();
}

uint64_t ConsumerGroup::AddMember() {
    std::lock_guard<std::mutex> lock(mu_);
    return next_member_++;
}

void ConsumerGroup::RemoveMember(uint64_t member) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t p = 0; p < partitions_.size(); ++p) {
            for (auto& [offset, slot] : partitions_[p].slots) {
                if (slot.state == SlotState::kInFlight && slot.member == member) {
                    MakeReady(static_cast<int32_t>(p), offset, slot);
                }
            }
        }
    }
    topic_->NotifyChange();
}

ConsumerGroup::Slot* ConsumerGroup::Find(const Ref& ref) {
    auto& slots = partitions_[static_cast<size_t>(ref.partition)].slots;
    auto it = slots.find(ref.offset);
    if (it == slots.end() || it->second.generation != ref.generation) return nullptr;
    return &it->second;
}

Result<ConsumerGroup::Slot*> ConsumerGroup::FindLeased(const DeliveryTag& tag) {
    int32_t p = tag.partition.value();
    if (p < 0 || p >= static_cast<int32_t>(partitions_.size())) {
        return InvalidArgumentError("delivery names partition " + std::to_string(p) +
                                    ", which topic " + options_.topic + " does not have");
    }
    auto& slots = partitions_[static_cast<size_t>(p)].slots;
    auto it = slots.find(tag.offset.value());
    if (it == slots.end() || it->second.state != SlotState::kInFlight ||
        it->second.attempts != tag.attempt) {
        return FailedPreconditionError(
            "delivery topic=" + options_.topic + " partition=" + std::to_string(p) + " offset=" +
            std::to_string(tag.offset.value()) + " attempt=" + std::to_string(tag.attempt) +
            " is no longer leased (already settled, or its lease expired and it was redelivered)");
    }
    return &it->second;
}

void ConsumerGroup::MakeReady(int32_t partition, int64_t offset, Slot& slot) {
    slot.state = SlotState::kReady;
    slot.generation = next_generation_++;
    int priority = slot.event && slot.event->priority ? *slot.event->priority : 0;
    ready_.Push(Ref{partition, offset, slot.generation}, priority, Clock::now());
}

void ConsumerGroup::FireTimers(Clock::time_point now) {
    for (;;) {
        Timer timer;
        if (!leases_.empty() && leases_.front().at <= now) {
            timer = leases_.front();
            leases_.pop_front();
        } else if (!timers_.empty() && timers_.top().at <= now) {
            timer = timers_.top();
            timers_.pop();
        } else {
            break;
        }
        Slot* slot = Find(timer.ref);
        if (slot == nullptr) continue;  // settled or changed since: a stale timer
        if (slot->state == SlotState::kInFlight) ++stats_.redelivered;
        if (slot->state == SlotState::kInFlight || slot->state == SlotState::kDelayed) {
            MakeReady(timer.ref.partition, timer.ref.offset, *slot);
        }
    }
}

void ConsumerGroup::NoteArrival(Clock::time_point now) {
    if (last_arrival_ != Clock::time_point{}) {
        double gap = std::chrono::duration<double, std::micro>(now - last_arrival_).count();
        arrival_gap_us_ = arrival_gap_us_ * 0.875 + std::min(gap, 1e6) * 0.125;
    }
    last_arrival_ = now;
}

std::chrono::microseconds ConsumerGroup::SpinFor() {
    // While events arrive closer together than kMaxSpin, poll for a little longer than the
    // usual gap, so the next one is picked up without a wake-up; otherwise the configured spin.
    constexpr double kMaxSpinUs = 500;
    if (options_.spin.count() == 0) return options_.spin;
    double gap;
    {
        std::lock_guard<std::mutex> lock(mu_);
        gap = arrival_gap_us_;
    }
    if (gap > kMaxSpinUs) return options_.spin;
    auto adaptive = std::chrono::microseconds(static_cast<int64_t>(gap * 1.5));
    return std::clamp(adaptive, options_.spin,
                      std::chrono::microseconds(static_cast<int64_t>(kMaxSpinUs)));
}

void ConsumerGroup::ReadAhead() {
    size_t checked = 0;
    while (outstanding_ < options_.max_outstanding && checked < partitions_.size()) {
        auto p = static_cast<int32_t>(next_partition_);
        PartitionState& ps = partitions_[next_partition_];
        next_partition_ = (next_partition_ + 1) % partitions_.size();
        size_t room = std::min(kReadBatch, options_.max_outstanding - outstanding_);
        auto batch = ps.reader->Read(room, 1 << 20);
        if (!batch.ok()) {
            // A damaged partition stops here; the others go on. The error repeats on each
            // attempt, so it is logged at most once a minute per partition.
            auto now = Clock::now();
            if (now - ps.last_error_logged > std::chrono::minutes(1)) {
                ps.last_error_logged = now;
                logging::Get("broker")->error("group={} {}", options_.group,
                                              batch.status().ToString());
            }
            ++checked;
            continue;
        }
        if (batch->empty()) {
            ++checked;
            continue;
        }
        checked = 0;
        NoteArrival(Clock::now());
        for (const RecordView& record : *batch) {
            int64_t offset = record.offset.value();
            int attempts = 0;
            if (offset < ps.restored_read_to) {
                auto it = ps.restored_unsettled.find(offset);
                if (it == ps.restored_unsettled.end()) continue;  // settled before the restart
                attempts = it->second;
                ps.restored_unsettled.erase(it);
            }
            Slot slot;
            slot.attempts = attempts;
            slot.published_ms = record.timestamp_ms;
            auto event = DecodeEvent(record.payload);
            if (event.ok()) {
                slot.event = std::make_shared<const Event>(std::move(event).value());
            } else {
                slot.dead_letter_reason = "undecodable record: " + event.status().message();
                slot.last_error = std::string(record.payload.substr(0, 4096));
            }
            auto [it, inserted] = ps.slots.emplace(offset, std::move(slot));
            ++outstanding_;
            MakeReady(p, offset, it->second);
        }
    }
}

Result<std::vector<Delivery>> ConsumerGroup::Fetch(uint64_t member, size_t max,
                                                   std::chrono::milliseconds wait) {
    std::vector<Delivery> out;
    auto deadline = Clock::now() + wait;
    for (;;) {
        uint64_t version = topic_->ChangeVersion();
        std::vector<DeadLetter> letters;
        Clock::time_point wake = deadline;
        Clock::time_point now;
        {
            std::lock_guard<std::mutex> lock(mu_);
            now = Clock::now();
            FireTimers(now);
            ReadAhead();
            while (out.size() < max) {
                std::optional<Ref> ref = ready_.Pop(now);
                if (!ref) break;
                Slot* slot = Find(*ref);
                if (slot == nullptr || slot->state != SlotState::kReady) continue;
                const std::string* key = slot->event ? &slot->event->partitionkey : nullptr;
                if (options_.one_in_flight_per_key && key && !key->empty()) {
                    auto owner = key_owner_.find(*key);
                    std::pair<int32_t, int64_t> me{ref->partition, ref->offset};
                    if (owner != key_owner_.end() && owner->second != me) {
                        key_waiting_[*key].push_back(*ref);
                        continue;
                    }
                    key_owner_[*key] = me;
                }
                if (!slot->dead_letter_reason.empty()) {
                    letters.push_back(PrepareDeadLetter(ref->partition, ref->offset, *slot,
                                                        slot->dead_letter_reason));
                    continue;
                }
                if (options_.max_deliveries > 0 && slot->attempts >= options_.max_deliveries) {
                    letters.push_back(
                        PrepareDeadLetter(ref->partition, ref->offset, *slot,
                                          "delivered " + std::to_string(slot->attempts) +
                                              " times without success (max_deliveries " +
                                              std::to_string(options_.max_deliveries) + ")"));
                    continue;
                }
                ++slot->attempts;
                slot->state = SlotState::kInFlight;
                slot->member = member;
                slot->generation = next_generation_++;
                slot->deadline = now + options_.lease;
                leases_.push_back(
                    {slot->deadline, {ref->partition, ref->offset, slot->generation}});
                Delivery d;
                d.topic = options_.topic;
                d.tag = {PartitionId(ref->partition), Offset(ref->offset), slot->attempts};
                d.event = slot->event;
                d.published_ms = slot->published_ms;
                d.lease_expires = slot->deadline;
                out.push_back(std::move(d));
            }
            if (!timers_.empty()) wake = std::min(wake, timers_.top().at);
            if (!leases_.empty()) wake = std::min(wake, leases_.front().at);
        }
        bool sent = !letters.empty();
        if (sent) SendDeadLetters(std::move(letters));
        if (!out.empty() || now >= deadline) return out;
        if (!sent) topic_->WaitForChange(version, wake, SpinFor());
    }
}

void ConsumerGroup::Settle(int32_t partition, int64_t offset) {
    auto& slots = partitions_[static_cast<size_t>(partition)].slots;
    auto it = slots.find(offset);
    if (it == slots.end()) return;
    ReleaseKey(it->second, partition, offset);
    slots.erase(it);
    --outstanding_;
    dirty_ = true;
}

void ConsumerGroup::ReleaseKey(const Slot& slot, int32_t partition, int64_t offset) {
    if (!options_.one_in_flight_per_key || !slot.event || slot.event->partitionkey.empty()) return;
    const std::string& key = slot.event->partitionkey;
    auto owner = key_owner_.find(key);
    if (owner == key_owner_.end() || owner->second != std::make_pair(partition, offset)) return;
    key_owner_.erase(owner);
    auto waiting = key_waiting_.find(key);
    if (waiting == key_waiting_.end()) return;
    // The next event of the key goes back to the ready lanes, first of its key again.
    Ref next = waiting->second.front();
    waiting->second.pop_front();
    if (waiting->second.empty()) key_waiting_.erase(waiting);
    Slot* next_slot = Find(next);
    if (next_slot != nullptr) {
        MakeReady(next.partition, next.offset, *next_slot);
    }
}

Status ConsumerGroup::Ack(const DeliveryTag& tag) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        EVENTLOOM_ASSIGN_OR_RETURN(Slot * slot, FindLeased(tag));
        (void)slot;
        Settle(tag.partition.value(), tag.offset.value());
    }
    topic_->NotifyChange();
    return Status::Ok();
}

Status ConsumerGroup::Nack(const DeliveryTag& tag, std::chrono::milliseconds delay,
                           std::string_view error) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        EVENTLOOM_ASSIGN_OR_RETURN(Slot * slot, FindLeased(tag));
        slot->last_error = std::string(error);
        slot->generation = next_generation_++;
        if (delay.count() <= 0) {
            MakeReady(tag.partition.value(), tag.offset.value(), *slot);
        } else {
            slot->state = SlotState::kDelayed;
            slot->deadline = Clock::now() + delay;
            timers_.push(
                {slot->deadline, {tag.partition.value(), tag.offset.value(), slot->generation}});
        }
    }
    topic_->NotifyChange();
    return Status::Ok();
}

Status ConsumerGroup::Term(const DeliveryTag& tag, std::string_view reason) {
    DeadLetter letter;
    {
        std::lock_guard<std::mutex> lock(mu_);
        EVENTLOOM_ASSIGN_OR_RETURN(Slot * slot, FindLeased(tag));
        letter = PrepareDeadLetter(tag.partition.value(), tag.offset.value(), *slot,
                                   reason.empty() ? "terminated by the consumer" : reason);
    }
    std::vector<DeadLetter> letters;
    letters.push_back(std::move(letter));
    SendDeadLetters(std::move(letters));
    return Status::Ok();
}

Status ConsumerGroup::ExtendLease(const DeliveryTag& tag) {
    std::lock_guard<std::mutex> lock(mu_);
    EVENTLOOM_ASSIGN_OR_RETURN(Slot * slot, FindLeased(tag));
    slot->generation = next_generation_++;
    slot->deadline = Clock::now() + options_.lease;
    leases_.push_back(
        {slot->deadline, {tag.partition.value(), tag.offset.value(), slot->generation}});
    return Status::Ok();
}

ConsumerGroup::DeadLetter ConsumerGroup::PrepareDeadLetter(int32_t partition, int64_t offset,
                                                           Slot& slot, std::string_view reason_in) {
    std::string reason = ToValidUtf8(reason_in);  // may view slot.dead_letter_reason: copy first
    slot.state = SlotState::kDeadLettering;
    slot.generation = next_generation_++;
    slot.dead_letter_reason = reason;

    DeadLetter letter;
    letter.ref = {partition, offset, slot.generation};
    if (slot.event) {
        letter.event = *slot.event;
    } else {
        letter.event.id =
            options_.topic + "-" + std::to_string(partition) + "-" + std::to_string(offset);
        letter.event.source = "eventloom";
        letter.event.type = "eventloom.undecodable";
        letter.event.datacontenttype = "application/octet-stream";
        letter.event.data = slot.last_error;
        letter.event.has_data = true;
    }
    Event& e = letter.event;
    std::erase_if(e.extensions, [](const auto& kv) { return IsDeadLetterExtension(kv.first); });
    e.extensions.emplace_back(kDeadLetterReason, reason);
    if (!options_.stage.empty()) e.extensions.emplace_back(kDeadLetterStage, options_.stage);
    e.extensions.emplace_back(kDeadLetterAttempts, std::to_string(slot.attempts));
    if (slot.event && !slot.last_error.empty()) {
        e.extensions.emplace_back(kDeadLetterError, ToValidUtf8(slot.last_error.substr(0, 2048)));
    }
    e.extensions.emplace_back(kDeadLetterSource, options_.topic + "/" + std::to_string(partition) +
                                                     "/" + std::to_string(offset));
    return letter;
}

void ConsumerGroup::SendDeadLetters(std::vector<DeadLetter> letters) {
    PublishOptions publish;
    publish.dedupe = false;  // an event may be dead-lettered again after a redrive
    for (DeadLetter& letter : letters) {
        auto result = broker_->Publish(broker_->DeadLetterTopic(options_), letter.event, publish);
        std::lock_guard<std::mutex> lock(mu_);
        Slot* slot = Find(letter.ref);
        if (slot == nullptr) continue;
        if (result.ok()) {
            ++stats_.dead_lettered;
            Settle(letter.ref.partition, letter.ref.offset);
            continue;
        }
        logging::Get("broker")->error("group={} topic={} dead-lettering offset {}: {}",
                                      options_.group, options_.topic, letter.ref.offset,
                                      result.status().ToString());
        slot->state = SlotState::kDelayed;
        slot->generation = next_generation_++;
        slot->deadline = Clock::now() + kDeadLetterRetry;
        timers_.push({slot->deadline, {letter.ref.partition, letter.ref.offset, slot->generation}});
    }
    topic_->NotifyChange();
}

std::string ConsumerGroup::ProgressJson() {
    nlohmann::json partitions = nlohmann::json::array();
    for (PartitionState& ps : partitions_) {
        nlohmann::json unsettled = nlohmann::json::object();
        for (const auto& [offset, slot] : ps.slots)
            unsettled[std::to_string(offset)] = slot.attempts;
        // Offsets restored but not read again yet are still unsettled.
        for (const auto& [offset, attempts] : ps.restored_unsettled) {
            unsettled[std::to_string(offset)] = attempts;
        }
        int64_t committed = ps.committed().value();
        for (const auto& [offset, attempts] : ps.restored_unsettled) {
            committed = std::min(committed, offset);
        }
        partitions.push_back({{"committed", committed},
                              {"read_to", std::max(ps.reader->next().value(), ps.restored_read_to)},
                              {"unsettled", unsettled}});
    }
    nlohmann::json j = {
        {"group", options_.group}, {"topic", options_.topic}, {"partitions", partitions}};
    return j.dump() + "\n";
}

Status ConsumerGroup::WriteProgress(bool force) {
    std::string json;
    uint64_t seq;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto now = Clock::now();
        if (!force && (!dirty_ || now - last_commit_ < options_.commit_interval)) {
            return Status::Ok();
        }
        json = ProgressJson();
        seq = ++progress_seq_;
        dirty_ = false;
        last_commit_ = now;
    }
    std::lock_guard<std::mutex> lock(commit_mu_);
    if (seq <= written_seq_) return Status::Ok();
    Status status = fs_->WriteFileAtomic(progress_path_, json);
    if (!status.ok()) return status.WithContext("writing consumer group progress");
    written_seq_ = seq;
    return Status::Ok();
}

Status ConsumerGroup::Commit() { return WriteProgress(true); }

ConsumerStats ConsumerGroup::Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    ConsumerStats s = stats_;
    for (int32_t p = 0; p < static_cast<int32_t>(partitions_.size()); ++p) {
        const PartitionState& ps = partitions_[static_cast<size_t>(p)];
        auto info = topic_->Describe(PartitionId(p));
        if (info.ok()) s.lag += info->visible_offset - ps.reader->next();
        for (const auto& [offset, slot] : ps.slots) {
            if (slot.state == SlotState::kInFlight) {
                ++s.in_flight;
            } else {
                ++s.waiting;
                if (slot.state == SlotState::kReady) ++s.lag;
            }
        }
    }
    return s;
}

}  // namespace eventloom
