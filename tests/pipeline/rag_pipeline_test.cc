// A pipeline file with a live index and a retrieve stage: document events update the index
// while the pipeline runs, and questions come out with the chunks that answer them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "pipeline/pipeline.h"
#include "support/temp_dir.h"
#include "support/topic_reader.h"

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr const char* kPipeline = R"(version: 1
name: helpdesk
broker: { dir: DATA }
indexes:
  kb:
    source: kb.docs
    chunking: { unit: characters, size: 200, overlap: 20 }
    embedder: hashing
    dimension: 256
    filter_fields: [product]
stages:
  - name: lookup
    consumes: questions
    uses: retrieve
    with:
      index: kb
      query: "{{ data.question }}"
      k: 2
      filters: { product: "{{ data.product }}" }
    emits: questions.with-context
)";

// A small corpus with known answers.
const std::vector<std::tuple<std::string, std::string, std::string>> kCorpus = {
    {"password", "web",
     "To reset your password, open the login page and choose 'Forgot password'. A reset link "
     "is emailed to you and stays valid for one hour."},
    {"refunds", "web",
     "Refunds are paid back to the original card within five business days after we receive "
     "the returned item."},
    {"shipping", "app",
     "Standard shipping takes three to five days; express shipping arrives the next day when "
     "ordered before noon."},
    {"invoices", "app",
     "Invoices are issued monthly as PDF files. You can download past invoices from the billing "
     "section of your account."},
    {"two-factor", "web",
     "Two-factor authentication adds a one-time code from an authenticator app to every sign "
     "in. Enable it under security settings."},
};

class RagPipelineTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string yaml = kPipeline;
        yaml.replace(yaml.find("DATA"), 4, dir_.Sub("data"));
        auto spec = ParsePipeline(yaml, "helpdesk.yaml", dir_.path());
        ASSERT_TRUE(spec.ok()) << spec.status().ToString();
        auto p = Pipeline::Open(std::move(*spec), {});
        ASSERT_TRUE(p.ok()) << p.status().ToString();
        pipeline_ = std::move(*p);
        ASSERT_TRUE(pipeline_->Start().ok());
    }

    void Publish(const std::string& topic, const std::string& id, const json& data) {
        Event e;
        e.id = id;
        e.source = "test";
        e.type = topic == "questions" ? "question.asked" : "doc.changed";
        e.datacontenttype = "application/json";
        e.data = data.dump();
        e.has_data = true;
        ASSERT_TRUE(pipeline_->broker()->Publish(topic, e).ok());
    }

    // Waits until the index has applied `events` document events.
    void WaitForIndex(int64_t events) {
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < give_up) {
            const IndexStatus s = pipeline_->Indexes().at(0);
            if (s.indexer.upserts + s.indexer.deletes + s.indexer.dead_lettered +
                    s.indexer.skipped >=
                events) {
                return;
            }
            std::this_thread::sleep_for(5ms);
        }
        ADD_FAILURE() << "the index did not apply " << events << " events in 30 s";
    }

    void LoadCorpus() {
        for (const auto& [id, product, text] : kCorpus) {
            Publish("kb.docs", "doc-" + id,
                    {{"id", id}, {"text", text}, {"metadata", {{"product", product}}}});
        }
        WaitForIndex(static_cast<int64_t>(kCorpus.size()));
    }

    testing::TempDir dir_;
    std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(RagPipelineTest, QuestionsComeOutWithTheChunksThatAnswerThem) {
    LoadCorpus();
    Publish("questions", "q1", {{"question", "I forgot my password, how do I reset it?"}});
    Publish("questions", "q2", {{"question", "when is my money back after a refund"}});
    Publish("questions", "q3", {{"question", "where can I download an invoice PDF"}});
    testing::TopicReader out(pipeline_->broker(), "questions.with-context");
    const auto& events = out.WaitFor(3);
    ASSERT_EQ(events.size(), 3u);
    std::map<std::string, json> by_cause;
    for (const Event& e : events) by_cause[e.causationid] = json::parse(e.data);
    const std::map<std::string, std::string> expected = {
        {"q1", "password"}, {"q2", "refunds"}, {"q3", "invoices"}};
    for (const auto& [question, doc] : expected) {
        const json& context = by_cause[question]["context"];
        ASSERT_TRUE(context.is_object()) << question;
        ASSERT_FALSE(context["hits"].empty()) << question;
        EXPECT_EQ(context["hits"][0]["doc"], doc) << context.dump(2);
        EXPECT_EQ(context["index"], "kb");
        EXPECT_THAT(context["text"].get<std::string>(),
                    HasSubstr(context["hits"][0]["text"].get<std::string>()));
        // The offsets the search read the index at: every document applied.
        int64_t applied = 0;
        for (const auto& [partition, offset] : context["offsets"].items()) {
            applied += offset.get<int64_t>();
        }
        EXPECT_EQ(applied, static_cast<int64_t>(kCorpus.size()));
        EXPECT_TRUE(by_cause[question].contains("question"));  // the input's data is kept
    }
}

TEST_F(RagPipelineTest, FiltersKeepOnlyMatchingDocuments) {
    LoadCorpus();
    Publish("questions", "q1", {{"question", "reset password login"}, {"product", "app"}});
    testing::TopicReader out(pipeline_->broker(), "questions.with-context");
    const auto& events = out.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    const json context = json::parse(events[0].data)["context"];
    for (const json& hit : context["hits"]) {
        EXPECT_EQ(hit["metadata"]["product"], "app") << hit.dump();
        EXPECT_NE(hit["doc"], "password");
    }
}

TEST_F(RagPipelineTest, AnUpdateIsAnsweredByTheNextQuestion) {
    LoadCorpus();
    Publish("kb.docs", "update-1",
            {{"id", "shipping"},
             {"text", "Shipping is suspended during the warehouse move; orders ship in March."},
             {"metadata", {{"product", "app"}}}});
    WaitForIndex(static_cast<int64_t>(kCorpus.size()) + 1);
    Publish("questions", "q1", {{"question", "how long does shipping take"}});
    testing::TopicReader out(pipeline_->broker(), "questions.with-context");
    const auto& events = out.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    const json context = json::parse(events[0].data)["context"];
    ASSERT_FALSE(context["hits"].empty());
    EXPECT_EQ(context["hits"][0]["doc"], "shipping");
    EXPECT_THAT(context["hits"][0]["text"].get<std::string>(), HasSubstr("warehouse move"));
    EXPECT_THAT(context["text"].get<std::string>(), ::testing::Not(HasSubstr("express")));
}

TEST_F(RagPipelineTest, MalformedDocumentEventsAreDeadLetteredWithTheReason) {
    Publish("kb.docs", "bad", {{"text", "a document without an id"}});
    WaitForIndex(1);
    testing::TopicReader dead(pipeline_->broker(), "index.kb.dead-letter");
    const auto& events = dead.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    std::string reason;
    for (const auto& [k, v] : events[0].extensions) {
        if (k == kDeadLetterReason) reason = v;
    }
    EXPECT_THAT(reason, HasSubstr("data has no 'id'"));
}

TEST_F(RagPipelineTest, RebuildGivesTheSameAnswersAsTheLiveIndex) {
    LoadCorpus();
    Publish("kb.docs", "del", {{"id", "two-factor"}, {"op", "delete"}});
    WaitForIndex(static_cast<int64_t>(kCorpus.size()) + 1);
    auto search = [&](const std::string& text) {
        rag::SearchQuery q;
        q.text = text;
        q.k = 3;
        auto r = pipeline_->SearchIndex("kb", q);
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        std::vector<std::string> docs;
        if (r.ok()) {
            for (const auto& h : r->hits) docs.push_back(h.doc_id);
        }
        return docs;
    };
    const std::vector<std::string> questions = {"reset password", "refund card", "shipping days",
                                                "invoice pdf", "authenticator code"};
    std::vector<std::vector<std::string>> live;
    for (const auto& q : questions) live.push_back(search(q));
    pipeline_->Stop();
    pipeline_.reset();

    std::string yaml = kPipeline;
    yaml.replace(yaml.find("DATA"), 4, dir_.Sub("data"));
    auto parsed = ParsePipeline(yaml, "helpdesk.yaml", dir_.path());
    ASSERT_TRUE(parsed.ok());
    auto p = Pipeline::Open(std::move(*parsed), {});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pipeline_ = std::move(*p);
    int64_t done = 0;
    Status st = pipeline_->RebuildIndex("kb", [&](int64_t d, int64_t) { done = d; });
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(done, static_cast<int64_t>(kCorpus.size()) + 1);
    std::vector<std::vector<std::string>> rebuilt;
    for (const auto& q : questions) rebuilt.push_back(search(q));
    EXPECT_EQ(rebuilt, live);
    EXPECT_EQ(pipeline_->Indexes().at(0).index.documents, static_cast<int64_t>(kCorpus.size()) - 1);
    EXPECT_EQ(pipeline_->RebuildIndex("nope", [](int64_t, int64_t) {}).code(),
              StatusCode::kNotFound);
}

}  // namespace
}  // namespace eventloom::pipeline
