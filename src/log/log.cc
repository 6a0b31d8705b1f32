#include "eventloom/log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "common/file.h"
#include "common/logging.h"
#include "log/topic.h"

namespace eventloom {
namespace {

// How often the flusher thread looks at every partition: often when a topic syncs on an
// interval, rarely otherwise (only spare segments and retention need it then).
constexpr auto kFastTick = std::chrono::milliseconds(5);
constexpr auto kSlowTick = std::chrono::milliseconds(50);
constexpr auto kRetentionInterval = std::chrono::seconds(5);

// Holds an exclusive flock on "<dir>/LOCK" so two processes never write one log.
class DirLock {
public:
    static Result<std::unique_ptr<DirLock>> Acquire(const std::string& dir) {
        std::string path = dir + "/LOCK";
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return FailedPreconditionError("open " + path + ": " + std::strerror(errno));
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd);
            return FailedPreconditionError("log directory " + dir +
                                           " is in use by another eventloom process");
        }
        return std::make_unique<DirLock>(fd);
    }
    explicit DirLock(int fd) : fd_(fd) {}
    ~DirLock() { ::close(fd_); }

private:
    int fd_;
};

class LogImpl final : public Log, public FlushScheduler {
public:
    explicit LogImpl(LogOptions options) : options_(std::move(options)) {}
    ~LogImpl() override;

    Status Start();
    Result<Topic*> CreateTopic(const std::string& name, const TopicOptions& options) override;
    Result<Topic*> GetTopic(const std::string& name) override;
    std::vector<std::string> ListTopics() override;
    Status Flush() override;
    void RequestFlush(Partition* partition) override;

private:
    void Run();
    std::vector<Partition*> AllPartitions();

    LogOptions options_;
    std::unique_ptr<DirLock> lock_;

    std::mutex topics_mu_;
    std::map<std::string, std::unique_ptr<LogTopic>> topics_;  // guarded by topics_mu_

    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    // Partitions waiting for a background flush, with the time it is due.
    std::deque<std::pair<Partition*, std::chrono::steady_clock::time_point>> queue_;
    bool stopping_ = false;               // guarded by queue_mu_
    std::atomic<bool> fast_tick_{false};  // some topic syncs on an interval
    std::thread flusher_;
};

LogImpl::~LogImpl() {
    {
        std::lock_guard<std::mutex> lock(queue_mu_);
        stopping_ = true;
    }
    queue_cv_.notify_all();
    if (flusher_.joinable()) flusher_.join();
    Status status = options_.read_only ? Status::Ok() : Flush();
    if (!status.ok())
        logging::Get("log")->error("closing log {}: {}", options_.dir, status.ToString());
}

Status LogImpl::Start() {
    FileSystem* fs = options_.fs;
    if (options_.read_only) {
        if (!fs->Exists(options_.dir))
            return NotFoundError("log directory " + options_.dir + " does not exist");
    } else {
        EVENTLOOM_RETURN_IF_ERROR(fs->CreateDirs(options_.dir));
        EVENTLOOM_ASSIGN_OR_RETURN(lock_, DirLock::Acquire(options_.dir));
    }
    EVENTLOOM_ASSIGN_OR_RETURN(auto names, fs->ListDir(options_.dir));
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
        if (!ValidateTopicName(name).ok()) continue;
        std::string dir = options_.dir + "/" + name;
        if (!fs->Exists(dir + "/topic.json")) continue;
        auto topic =
            LogTopic::Open(fs, dir, name, options_.max_pending_bytes, this, options_.read_only);
        if (!topic.ok()) return topic.status().WithContext("topic " + name);
        topics_.emplace(name, std::move(topic).value());
    }
    for (auto& [name, topic] : topics_) {
        if (topic->options().durability == Durability::kInterval) fast_tick_ = true;
    }
    if (!options_.read_only) flusher_ = std::thread([this] { Run(); });
    return Status::Ok();
}

Result<Topic*> LogImpl::CreateTopic(const std::string& name, const TopicOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicName(name));
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicOptions(options));
    if (options_.read_only) {
        return FailedPreconditionError("log " + options_.dir + " is open read-only");
    }
    std::lock_guard<std::mutex> lock(topics_mu_);
    auto it = topics_.find(name);
    if (it != topics_.end()) {
        if (it->second->options() == options) return static_cast<Topic*>(it->second.get());
        return AlreadyExistsError("topic " + name + " exists with other options");
    }
    EVENTLOOM_ASSIGN_OR_RETURN(
        auto topic, LogTopic::Create(options_.fs, options_.dir + "/" + name, name, options,
                                     options_.max_pending_bytes, this));
    Topic* raw = topic.get();
    if (options.durability == Durability::kInterval) fast_tick_ = true;
    topics_.emplace(name, std::move(topic));
    return raw;
}

Result<Topic*> LogImpl::GetTopic(const std::string& name) {
    std::lock_guard<std::mutex> lock(topics_mu_);
    auto it = topics_.find(name);
    if (it == topics_.end()) return NotFoundError("topic " + name + " does not exist");
    return static_cast<Topic*>(it->second.get());
}

std::vector<std::string> LogImpl::ListTopics() {
    std::lock_guard<std::mutex> lock(topics_mu_);
    std::vector<std::string> names;
    for (const auto& [name, topic] : topics_) names.push_back(name);
    return names;
}

std::vector<Partition*> LogImpl::AllPartitions() {
    std::lock_guard<std::mutex> lock(topics_mu_);
    std::vector<Partition*> all;
    for (auto& [name, topic] : topics_) {
        for (Partition* p : topic->partition_list()) all.push_back(p);
    }
    return all;
}

Status LogImpl::Flush() {
    Status first;
    for (Partition* p : AllPartitions()) {
        Status status = p->Flush();
        if (first.ok() && !status.ok()) first = status;
    }
    return first;
}

void LogImpl::RequestFlush(Partition* partition) {
    // The flush waits out the linger: a caller that waits for durability meanwhile flushes
    // itself, with everything appended so far, instead of a small batch going first.
    auto due = std::chrono::steady_clock::now() + options_.flush_linger;
    bool was_empty;
    {
        std::lock_guard<std::mutex> lock(queue_mu_);
        was_empty = queue_.empty();
        queue_.emplace_back(partition, due);
    }
    if (was_empty) queue_cv_.notify_one();
}

void LogImpl::Run() {
    auto next_retention = std::chrono::steady_clock::now() + kRetentionInterval;
    std::vector<Partition*> work;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(queue_mu_);
            auto tick = std::chrono::steady_clock::now() + (fast_tick_ ? kFastTick : kSlowTick);
            while (!stopping_) {
                auto until = queue_.empty() ? tick : std::min(tick, queue_.front().second);
                if (std::chrono::steady_clock::now() >= until) break;
                queue_cv_.wait_until(lock, until);
            }
            if (stopping_) return;
            auto now = std::chrono::steady_clock::now();
            while (!queue_.empty() && queue_.front().second <= now) {
                work.push_back(queue_.front().first);
                queue_.pop_front();
            }
        }
        for (Partition* p : work) p->BackgroundFlush();
        work.clear();

        auto now = std::chrono::steady_clock::now();
        std::vector<Partition*> all = AllPartitions();
        for (Partition* p : all) p->Tick(now);
        if (now >= next_retention) {
            next_retention = now + kRetentionInterval;
            for (Partition* p : all) {
                Status status = p->EnforceRetention();
                if (!status.ok()) logging::Get("log")->warn("retention: {}", status.ToString());
            }
        }
    }
}

}  // namespace

Result<std::unique_ptr<Log>> Log::Open(const LogOptions& options) {
    if (options.dir.empty()) return InvalidArgumentError("log directory is empty");
    LogOptions resolved = options;
    if (resolved.fs == nullptr) resolved.fs = FileSystem::Default();
    auto log = std::make_unique<LogImpl>(std::move(resolved));
    EVENTLOOM_RETURN_IF_ERROR(log->Start());
    return std::unique_ptr<Log>(std::move(log));
}

}  // namespace eventloom
