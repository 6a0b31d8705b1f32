// JobStore over the SQLite state store: the lifecycle of a job, the first outcome winning,
// expiry, and the JSON a client reads.
#include "pipeline/outbound/job_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using nlohmann::json;
using pipeline::JobRecord;
using pipeline::JobStatus;
using pipeline::JobStore;

// 2024-05-01T12:30:05.123Z
constexpr int64_t kStartMs = 1714566605123;

class JobStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        StateStoreOptions s;
        s.path = dir_.Sub("state.db");
        s.now_ms = [this] { return now_ms_.load(); };
        auto state = OpenSqliteStateStore(s);
        ASSERT_TRUE(state.ok()) << state.status().ToString();
        state_ = std::move(state).value();
        jobs_ = std::make_unique<JobStore>(state_.get(), 1h, [this] { return now_ms_.load(); });
    }

    JobRecord Queued(const std::string& id) {
        JobRecord job;
        job.id = id;
        job.pipeline = "shop";
        job.topic = "orders";
        job.partition = 1;
        job.offset = 42;
        job.webhook_url = "https://example.test/hook";
        return job;
    }

    void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }

    TempDir dir_;
    std::atomic<int64_t> now_ms_{kStartMs};
    std::unique_ptr<StateStore> state_;
    std::unique_ptr<JobStore> jobs_;
};

TEST_F(JobStoreTest, CreatedJobReadsBackQueued) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());

    auto job = jobs_->Get("j1");
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    EXPECT_EQ(job->status, JobStatus::kQueued);
    EXPECT_EQ(job->topic, "orders");
    EXPECT_EQ(job->partition, 1);
    EXPECT_EQ(job->offset, 42);
    EXPECT_EQ(job->webhook_url, "https://example.test/hook");
    EXPECT_EQ(job->created_ms, kStartMs);
    EXPECT_EQ(job->updated_ms, kStartMs);
}

TEST_F(JobStoreTest, CreateIgnoresAnOutcomeInTheGivenRecord) {
    JobRecord job = Queued("j1");
    job.status = JobStatus::kSucceeded;
    job.result = "{}";
    ASSERT_TRUE(jobs_->Create(job).ok());

    EXPECT_EQ(jobs_->Get("j1")->status, JobStatus::kQueued);
    EXPECT_EQ(jobs_->Get("j1")->result, "");
}

TEST_F(JobStoreTest, SecondCreateOfAnIdIsAlreadyExists) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());

    Status again = jobs_->Create(Queued("j1"));
    EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
    EXPECT_THAT(again.message(), HasSubstr("j1"));
}

TEST_F(JobStoreTest, UnknownJobIsNotFound) {
    EXPECT_EQ(jobs_->Get("nope").status().code(), StatusCode::kNotFound);
    EXPECT_EQ(jobs_->Succeed("nope", "{}", "t").status().code(), StatusCode::kNotFound);
    EXPECT_EQ(jobs_->Fail("nope", "why").status().code(), StatusCode::kNotFound);
}

TEST_F(JobStoreTest, EmptyIdIsInvalidArgument) {
    EXPECT_EQ(jobs_->Create(Queued("")).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(jobs_->Get("").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, SucceedStoresResultAndType) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    Advance(1500ms);

    auto done = jobs_->Succeed("j1", R"({"category":"billing"})", "ticket.routed");
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    EXPECT_EQ(done->status, JobStatus::kSucceeded);

    auto stored = jobs_->Get("j1");
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->status, JobStatus::kSucceeded);
    EXPECT_EQ(stored->result, R"({"category":"billing"})");
    EXPECT_EQ(stored->result_type, "ticket.routed");
    EXPECT_EQ(stored->created_ms, kStartMs);
    EXPECT_EQ(stored->updated_ms, kStartMs + 1500);
}

TEST_F(JobStoreTest, FailStoresError) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());

    ASSERT_TRUE(jobs_->Fail("j1", "stage 'classify': model gone").ok());

    auto stored = jobs_->Get("j1");
    EXPECT_EQ(stored->status, JobStatus::kFailed);
    EXPECT_EQ(stored->error, "stage 'classify': model gone");
}

TEST_F(JobStoreTest, RedeliveredSuccessReturnsTheFirstResult) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    ASSERT_TRUE(jobs_->Succeed("j1", R"({"n":1})", "first").ok());
    Advance(10ms);

    auto again = jobs_->Succeed("j1", R"({"n":2})", "second");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->result, R"({"n":1})");
    EXPECT_EQ(again->result_type, "first");
    EXPECT_EQ(again->updated_ms, kStartMs);
    EXPECT_EQ(jobs_->Get("j1")->result, R"({"n":1})");
}

TEST_F(JobStoreTest, FailureAfterSuccessKeepsTheSuccess) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    ASSERT_TRUE(jobs_->Succeed("j1", "{}", "done").ok());

    auto late = jobs_->Fail("j1", "late failure");
    ASSERT_TRUE(late.ok());
    EXPECT_EQ(late->status, JobStatus::kSucceeded);
    EXPECT_EQ(jobs_->Get("j1")->status, JobStatus::kSucceeded);
    EXPECT_EQ(jobs_->Get("j1")->error, "");
}

TEST_F(JobStoreTest, SuccessAfterFailureKeepsTheFailure) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    ASSERT_TRUE(jobs_->Fail("j1", "first failure").ok());

    auto late = jobs_->Succeed("j1", "{}", "done");
    ASSERT_TRUE(late.ok());
    EXPECT_EQ(late->status, JobStatus::kFailed);
    EXPECT_EQ(late->error, "first failure");
}

TEST_F(JobStoreTest, ConcurrentOutcomesAgreeOnOneWinner) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());

    std::vector<std::thread> threads;
    std::vector<JobRecord> seen(8);
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&, i] {
            auto r = i % 2 == 0 ? jobs_->Succeed("j1", std::to_string(i), "t")
                                : jobs_->Fail("j1", std::to_string(i));
            ASSERT_TRUE(r.ok()) << r.status().ToString();
            seen[i] = *r;
        });
    }
    for (auto& t : threads) t.join();

    auto stored = jobs_->Get("j1");
    ASSERT_TRUE(stored.ok());
    for (const JobRecord& r : seen) {
        EXPECT_EQ(r.status, stored->status);
        EXPECT_EQ(r.result, stored->result);
        EXPECT_EQ(r.error, stored->error);
    }
}

TEST_F(JobStoreTest, QueuedJobExpiresAfterTtl) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());

    Advance(1h - 1ms);
    EXPECT_TRUE(jobs_->Get("j1").ok());
    Advance(2ms);
    EXPECT_EQ(jobs_->Get("j1").status().code(), StatusCode::kNotFound);
}

TEST_F(JobStoreTest, FinishedJobIsKeptForTtlAfterItsOutcome) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    Advance(50min);
    ASSERT_TRUE(jobs_->Succeed("j1", "{}", "done").ok());

    Advance(50min);
    EXPECT_TRUE(jobs_->Get("j1").ok());
    Advance(11min);
    EXPECT_EQ(jobs_->Get("j1").status().code(), StatusCode::kNotFound);
}

TEST_F(JobStoreTest, ExpiredIdCanBeCreatedAgain) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    Advance(2h);

    EXPECT_TRUE(jobs_->Create(Queued("j1")).ok());
}

TEST_F(JobStoreTest, DamagedRecordIsDataLossNamingTheJob) {
    ASSERT_TRUE(state_->Put(pipeline::kJobBucket, "j1", "not json").ok());

    auto job = jobs_->Get("j1");
    EXPECT_EQ(job.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(job.status().message(), HasSubstr("job 'j1'"));
}

TEST_F(JobStoreTest, RecordsSurviveReopeningTheStateStore) {
    ASSERT_TRUE(jobs_->Create(Queued("j1")).ok());
    ASSERT_TRUE(jobs_->Succeed("j1", R"({"ok":true})", "done").ok());
    jobs_.reset();
    state_.reset();

    StateStoreOptions s;
    s.path = dir_.Sub("state.db");
    s.now_ms = [this] { return now_ms_.load(); };
    auto state = OpenSqliteStateStore(s);
    ASSERT_TRUE(state.ok());
    JobStore reopened(state->get());
    EXPECT_EQ(reopened.Get("j1")->result, R"({"ok":true})");
}

TEST(JobRecordToJson, SucceededJobShowsResultAsJsonAndTimesInRfc3339) {
    JobRecord job;
    job.id = "j1";
    job.topic = "orders";
    job.partition = 1;
    job.offset = 42;
    job.status = JobStatus::kSucceeded;
    job.result = R"({"category":"billing"})";
    job.result_type = "ticket.routed";
    job.created_ms = kStartMs;
    job.updated_ms = kStartMs + 877;

    const json j = json::parse(pipeline::JobRecordToJson(job));
    EXPECT_EQ(j, json::parse(R"({"id":"j1","status":"succeeded","topic":"orders","partition":1,
        "offset":42,"created":"2024-05-01T12:30:05.123Z","updated":"2024-05-01T12:30:06.000Z",
        "result":{"category":"billing"},"type":"ticket.routed"})"));
}

TEST(JobRecordToJson, FailedJobShowsErrorAndNoResult) {
    JobRecord job;
    job.id = "j1";
    job.status = JobStatus::kFailed;
    job.error = "boom";

    const json j = json::parse(pipeline::JobRecordToJson(job));
    EXPECT_EQ(j["status"], "failed");
    EXPECT_EQ(j["error"], "boom");
    EXPECT_FALSE(j.contains("result"));
}

TEST(JobRecordToJson, QueuedJobHasNeitherResultNorError) {
    JobRecord job;
    job.id = "j1";

    const json j = json::parse(pipeline::JobRecordToJson(job));
    EXPECT_EQ(j["status"], "queued");
    EXPECT_FALSE(j.contains("result"));
    EXPECT_FALSE(j.contains("error"));
}

TEST(JobRecordToJson, ResultThatIsNotJsonIsAString) {
    JobRecord job;
    job.id = "j1";
    job.status = JobStatus::kSucceeded;
    job.result = "plain words";

    EXPECT_EQ(json::parse(pipeline::JobRecordToJson(job))["result"], "plain words");
}

}  // namespace
}  // namespace eventloom::testing
