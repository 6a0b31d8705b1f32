// Jobs: asynchronous requests accepted by the gateway (POST /v1/jobs), and what became of them.
//
// A job is the event the gateway published; its id is the event's id, and every event the
// pipeline derives from it carries that id as `correlationid`. The gateway creates the record
// (queued); a notify stage with `store: true` completes it with the result; the job-failure
// stage (on every dead-letter topic) fails it with the reason. Records live in the state store
// (bucket "jobs", key = the job id, value = the record as JSON), so they survive restarts.
//
// Expiry: every write of a record (creation, its outcome) keeps it for `ttl` from that write,
// so a finished job stays readable for `ttl` after it finished. A ttl of 0 keeps records until
// they are deleted. An expired record is NotFound, as if it never existed.
//
// Outcomes: the first outcome wins. Succeed or Fail on a job that already finished changes
// nothing and returns the stored record, so redelivered events are harmless; a caller tells
// "I finished it" from "it was already finished" by comparing the returned record's status
// and updated_ms. Concurrent outcomes are settled by compare-and-set on the record's revision.
//
// Errors: InvalidArgument for an empty or over-long id (state.h names: 1 to 512 bytes);
// NotFound for an unknown or expired job; AlreadyExists from Create for a taken id; DataLoss
// naming the job when its stored record is not a record; the state store's own errors
// (Unavailable: retry) otherwise.
//
// Ownership and thread-safety: JobStore does not own the state store, which must outlive it.
// JobStore is thread-safe (the state store is, and the store keeps no other state).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "eventloom/state.h"
#include "eventloom/status.h"

namespace eventloom::pipeline {

// The state store bucket holding job records.
inline constexpr std::string_view kJobBucket = "jobs";

enum class JobStatus { kQueued, kSucceeded, kFailed };
std::string_view JobStatusName(JobStatus status);  // "queued", "succeeded", "failed"
// The inverse of JobStatusName; nullopt for any other text.
std::optional<JobStatus> ParseJobStatus(std::string_view name);

struct JobRecord {
    std::string id;
    std::string pipeline;
    std::string topic;  // where the job's event was published
    int32_t partition = 0;
    int64_t offset = 0;
    JobStatus status = JobStatus::kQueued;
    std::string result;       // JSON text (the final event's data) once succeeded
    std::string result_type;  // the final event's type
    std::string error;        // why it failed
    std::string webhook_url;  // empty: no webhook
    int64_t created_ms = 0;   // Unix milliseconds; Create fills it in when 0
    int64_t updated_ms = 0;   // Unix milliseconds of the last write; set by the store
};

// {"id", "status", "topic", "partition", "offset", "created", "updated", "result"?, "type"?,
// "error"?} with times in RFC 3339 (UTC, milliseconds), `result` as JSON (text that is not
// JSON as a JSON string) and `type` the result's event type, both only once succeeded, and
// `error` only once failed: the body of GET /v1/jobs/{id}.
std::string JobRecordToJson(const JobRecord& job);

// Unix milliseconds as RFC 3339 in UTC: "2024-05-01T12:30:05.123Z".
std::string FormatRfc3339Ms(int64_t unix_ms);

class JobStore {
public:
    // `state` must outlive the store. `now_ms` is the clock for created_ms/updated_ms in Unix
    // milliseconds (empty: the system clock); expiry itself follows the state store's clock.
    explicit JobStore(StateStore* state, std::chrono::seconds ttl = std::chrono::hours(24),
                      std::function<int64_t()> now_ms = {});

    // A new queued job; AlreadyExists when the id is taken. The stored record has status
    // queued and no outcome, whatever `job` says about them.
    Status Create(const JobRecord& job);
    // NotFound when there is no such job (or it expired).
    Result<JobRecord> Get(std::string_view id);
    // Records the outcome; a job already finished keeps its first outcome (redeliveries are
    // harmless) and the call returns that record. NotFound when the job is unknown.
    Result<JobRecord> Succeed(std::string_view id, std::string result_json,
                              std::string result_type);
    Result<JobRecord> Fail(std::string_view id, std::string error);
    // Records where the job's event landed (the record is created before the publish, so that
    // the pipeline never finishes a job the store does not know). Any status; NotFound when
    // the job is unknown.
    Status SetPosition(std::string_view id, int32_t partition, int64_t offset);

    std::chrono::seconds ttl() const { return ttl_; }

private:
    // Reads the record with its revision and, while it is queued (or always, with
    // `any_status`), applies `change` to it and writes it back with compare-and-set,
    // re-reading after a conflict.
    Result<JobRecord> Update(std::string_view id, const std::function<void(JobRecord&)>& change,
                             bool any_status = false);
    int64_t NowMs() const;

    StateStore* state_;
    std::chrono::seconds ttl_;
    std::function<int64_t()> now_ms_;
};

}  // namespace eventloom::pipeline
