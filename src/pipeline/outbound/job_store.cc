// JobStore over the state store (job_store.h).
#include "pipeline/outbound/job_store.h"

#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <utility>

namespace eventloom::pipeline {

namespace {

using nlohmann::json;

// Compare-and-set conflicts tolerated per outcome before giving up with Aborted (retryable).
constexpr int kMaxConflicts = 16;

int64_t SystemNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Status CheckId(std::string_view id) {
    if (id.empty()) return InvalidArgumentError("job id is empty");
    if (id.size() > kMaxStateNameBytes) {
        return InvalidArgumentError(
            fmt::format("job id is {} bytes, longer than {}", id.size(), kMaxStateNameBytes));
    }
    return Status::Ok();
}

std::string EncodeRecord(const JobRecord& job) {
    json j = {{"id", job.id},
              {"pipeline", job.pipeline},
              {"topic", job.topic},
              {"partition", job.partition},
              {"offset", job.offset},
              {"status", std::string(JobStatusName(job.status))},
              {"result", job.result},
              {"result_type", job.result_type},
              {"error", job.error},
              {"webhook_url", job.webhook_url},
              {"created_ms", job.created_ms},
              {"updated_ms", job.updated_ms}};
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<JobRecord> DecodeRecord(std::string_view id, std::string_view text) {
    auto bad = [&](std::string_view why) {
        return DataLossError(
            fmt::format("job '{}': the record in bucket '{}' {}", id, kJobBucket, why));
    };
    const json j = json::parse(text, nullptr, false);
    if (!j.is_object()) return bad("is not a JSON object");
    JobRecord job;
    try {
        job.id = j.at("id").get<std::string>();
        job.pipeline = j.value("pipeline", "");
        job.topic = j.value("topic", "");
        job.partition = j.value("partition", 0);
        job.offset = j.value("offset", int64_t{0});
        const std::string status = j.at("status").get<std::string>();
        const std::optional<JobStatus> parsed = ParseJobStatus(status);
        if (!parsed) return bad(fmt::format("has an unknown status '{}'", status));
        job.status = *parsed;
        job.result = j.value("result", "");
        job.result_type = j.value("result_type", "");
        job.error = j.value("error", "");
        job.webhook_url = j.value("webhook_url", "");
        job.created_ms = j.value("created_ms", int64_t{0});
        job.updated_ms = j.value("updated_ms", int64_t{0});
    } catch (const json::exception& e) {
        return bad(fmt::format("has a field of the wrong type ({})", e.what()));
    }
    return job;
}

}  // namespace

std::string_view JobStatusName(JobStatus status) {
    switch (status) {
        case JobStatus::kQueued:
            return "queued";
        case JobStatus::kSucceeded:
            return "succeeded";
        case JobStatus::kFailed:
            return "failed";
    }
    return "unknown";
}

std::optional<JobStatus> ParseJobStatus(std::string_view name) {
    if (name == "queued") return JobStatus::kQueued;
    if (name == "succeeded") return JobStatus::kSucceeded;
    if (name == "failed") return JobStatus::kFailed;
    return std::nullopt;
}

std::string FormatRfc3339Ms(int64_t unix_ms) {
    // Floor division, so times before 1970 still get a millisecond part in [0, 999].
    int64_t seconds = unix_ms / 1000;
    int64_t millis = unix_ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::string JobRecordToJson(const JobRecord& job) {
    json j = {{"id", job.id},
              {"status", std::string(JobStatusName(job.status))},
              {"topic", job.topic},
              {"partition", job.partition},
              {"offset", job.offset},
              {"created", FormatRfc3339Ms(job.created_ms)},
              {"updated", FormatRfc3339Ms(job.updated_ms)}};
    if (job.status == JobStatus::kSucceeded) {
        json result = json::parse(job.result, nullptr, false);
        j["result"] = result.is_discarded() ? json(job.result) : std::move(result);
        j["type"] = job.result_type;
    }
    if (job.status == JobStatus::kFailed) j["error"] = job.error;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

JobStore::JobStore(StateStore* state, std::chrono::seconds ttl, std::function<int64_t()> now_ms)
    : state_(state), ttl_(ttl), now_ms_(std::move(now_ms)) {}

int64_t JobStore::NowMs() const { return now_ms_ ? now_ms_() : SystemNowMs(); }

Status JobStore::Create(const JobRecord& job) {
    EVENTLOOM_RETURN_IF_ERROR(CheckId(job.id));
    JobRecord record = job;
    record.status = JobStatus::kQueued;
    record.result.clear();
    record.result_type.clear();
    record.error.clear();
    record.updated_ms = NowMs();
    if (record.created_ms == 0) record.created_ms = record.updated_ms;

    // Revision 0: only when the key is missing or expired.
    auto written = state_->CompareAndSet(kJobBucket, record.id, 0, EncodeRecord(record), ttl_);
    if (written.ok()) return Status::Ok();
    if (written.status().code() == StatusCode::kAborted) {
        return AlreadyExistsError(fmt::format("job '{}' already exists", record.id));
    }
    return written.status().WithContext(fmt::format("creating job '{}'", record.id));
}

Result<JobRecord> JobStore::Get(std::string_view id) {
    EVENTLOOM_RETURN_IF_ERROR(CheckId(id));
    auto entry = state_->Get(kJobBucket, id);
    if (!entry.ok()) return entry.status().WithContext(fmt::format("reading job '{}'", id));
    if (!entry->has_value()) return NotFoundError(fmt::format("no job '{}'", id));
    return DecodeRecord(id, (*entry)->value);
}

Result<JobRecord> JobStore::Succeed(std::string_view id, std::string result_json,
                                    std::string result_type) {
    return Update(id, [&](JobRecord& job) {
        job.status = JobStatus::kSucceeded;
        job.result = std::move(result_json);
        job.result_type = std::move(result_type);
    });
}

Result<JobRecord> JobStore::Fail(std::string_view id, std::string error) {
    return Update(id, [&](JobRecord& job) {
        job.status = JobStatus::kFailed;
        job.error = std::move(error);
    });
}

Status JobStore::SetPosition(std::string_view id, int32_t partition, int64_t offset) {
    return Update(
               id,
               [&](JobRecord& job) {
                   job.partition = partition;
                   job.offset = offset;
               },
               /*any_status=*/true)
        .status();
}

Result<JobRecord> JobStore::Update(std::string_view id,
                                   const std::function<void(JobRecord&)>& change, bool any_status) {
    EVENTLOOM_RETURN_IF_ERROR(CheckId(id));
    for (int conflicts = 0; conflicts < kMaxConflicts; ++conflicts) {
        // Read the record and its revision.
        auto entry = state_->Get(kJobBucket, id);
        if (!entry.ok()) return entry.status().WithContext(fmt::format("reading job '{}'", id));
        if (!entry->has_value()) return NotFoundError(fmt::format("no job '{}'", id));
        EVENTLOOM_ASSIGN_OR_RETURN(JobRecord job, DecodeRecord(id, (*entry)->value));
        if (!any_status && job.status != JobStatus::kQueued) return job;  // the first outcome wins

        // Write the change unless someone else wrote in between.
        change(job);
        job.updated_ms = NowMs();
        auto written =
            state_->CompareAndSet(kJobBucket, id, (*entry)->revision, EncodeRecord(job), ttl_);
        if (written.ok()) return job;
        if (written.status().code() != StatusCode::kAborted) {
            return written.status().WithContext(fmt::format("updating job '{}'", id));
        }
    }
    return AbortedError(fmt::format("job '{}': {} conflicting writes in a row, giving up for now",
                                    id, kMaxConflicts));
}

}  // namespace eventloom::pipeline
