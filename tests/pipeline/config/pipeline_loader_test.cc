// Tests of the pipeline file loader (pipeline/config/pipeline_spec.h): the real example file,
// every kind of diagnostic at its line and column, several problems reported at once,
// environment substitution, and files that cannot be read.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/config/pipeline_spec.h"
#include "support/temp_dir.h"

namespace eventloom::pipeline {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kExample =
    std::string(EVENTLOOM_SOURCE_DIR) + "/examples/support-triage/pipeline.yaml";

// Sets an environment variable for one test and puts the old value back afterwards.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value != nullptr) {
            setenv(name, value, 1);
        } else {
            unsetenv(name);
        }
    }
    ~ScopedEnv() {
        if (old_) {
            setenv(name_.c_str(), old_->c_str(), 1);
        } else {
            unsetenv(name_.c_str());
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

// The example's variables unset (or fixed), so the test sees its defaults whatever the
// environment of the machine running it.
class ExampleFileTest : public ::testing::Test {
protected:
    ScopedEnv data_dir_{"EVENTLOOM_DATA_DIR", nullptr};
    ScopedEnv model_{"EVENTLOOM_MODEL", "models/tiny.gguf"};
    ScopedEnv threads_{"EVENTLOOM_THREADS", nullptr};
    ScopedEnv listen_{"EVENTLOOM_LISTEN", nullptr};

    PipelineSpec Load() {
        std::vector<Diagnostic> diagnostics;
        auto spec = LoadPipelineFile(kExample, &diagnostics);
        EXPECT_TRUE(spec.ok()) << spec.status().ToString();
        EXPECT_TRUE(diagnostics.empty());
        return spec.ok() ? std::move(spec).value() : PipelineSpec();
    }
};

TEST_F(ExampleFileTest, HasItsNameVersionAndBroker) {
    PipelineSpec spec = Load();
    EXPECT_EQ(spec.name, "support-triage");
    EXPECT_EQ(spec.version, 1);
    EXPECT_EQ(spec.broker_dir, ".eventloom");
    EXPECT_EQ(spec.broker_url, "");
    EXPECT_EQ(spec.file, kExample);
    EXPECT_EQ(spec.dir, std::string(EVENTLOOM_SOURCE_DIR) + "/examples/support-triage");
    EXPECT_EQ(spec.ResultsTopic(), "support-triage.results");
}

TEST_F(ExampleFileTest, HasEveryStageWithItsKindAndTopics) {
    PipelineSpec spec = Load();
    std::vector<std::string> names;
    for (const StageSpec& s : spec.stages) names.push_back(s.name);
    EXPECT_THAT(names, ElementsAre("clean", "context", "classify", "route", "notify-billing",
                                   "notify-urgent", "notify-general", "chat"));

    struct Want {
        const char* name;
        StageKind kind;
        const char* consumes;
        std::vector<std::string> emits;
    };
    const Want wants[] = {
        {"clean", StageKind::kTransform, "tickets", {"tickets.clean"}},
        {"context", StageKind::kRetrieve, "tickets.clean", {"tickets.context"}},
        {"classify", StageKind::kLlm, "tickets.context", {"tickets.classified"}},
        {"route",
         StageKind::kRoute,
         "tickets.classified",
         {"tickets.billing", "tickets.urgent", "tickets.general"}},
        {"notify-billing", StageKind::kNotify, "tickets.billing", {}},
        {"notify-urgent", StageKind::kNotify, "tickets.urgent", {}},
        {"notify-general", StageKind::kNotify, "tickets.general", {}},
        {"chat", StageKind::kLlm, "chat.requests", {"chat.replies"}},
    };
    for (const Want& w : wants) {
        SCOPED_TRACE(w.name);
        const StageSpec* stage = spec.FindStage(w.name);
        ASSERT_NE(stage, nullptr);
        EXPECT_EQ(stage->kind, w.kind);
        EXPECT_EQ(stage->consumes, w.consumes);
        EXPECT_EQ(stage->emits, w.emits);
    }
}

TEST_F(ExampleFileTest, KeepsStageSettingsAndDefaults) {
    PipelineSpec spec = Load();
    const StageSpec* clean = spec.FindStage("clean");
    ASSERT_NE(clean, nullptr);
    EXPECT_EQ(clean->concurrency, 2);
    EXPECT_EQ(clean->delivery, DeliveryMode::kAtLeastOnce);
    EXPECT_EQ(clean->timeout, milliseconds(30'000));
    EXPECT_EQ(clean->dead_letter, "");

    const StageSpec* classify = spec.FindStage("classify");
    ASSERT_NE(classify, nullptr);
    EXPECT_EQ(classify->retry.max_attempts, 3);
    EXPECT_EQ(classify->retry.initial_delay, milliseconds(500));
    EXPECT_EQ(classify->concurrency, 1);
}

TEST_F(ExampleFileTest, KeepsWithOptionsAsTypedJsonWithTheirLines) {
    PipelineSpec spec = Load();
    const StageSpec* classify = spec.FindStage("classify");
    ASSERT_NE(classify, nullptr);
    const nlohmann::json& with = classify->with.value;
    EXPECT_EQ(with["model"], "triage");
    EXPECT_EQ(with["prompt"], "prompts/classify.txt");
    EXPECT_EQ(with["max_tokens"], 96);
    EXPECT_TRUE(with["max_tokens"].is_number_integer());
    EXPECT_TRUE(with["temperature"].is_number());

    // Where the classify stage's `model: triage` is in the file.
    std::ifstream file(kExample);
    int line = 0;
    int model_line = 0;
    bool in_classify = false;
    for (std::string text; std::getline(file, text) && model_line == 0;) {
        ++line;
        if (text == "  - name: classify") in_classify = true;
        if (in_classify && text == "      model: triage") model_line = line;
    }
    ASSERT_GT(model_line, 0);
    const SourceLocation model_at = classify->with.LocationOf("/model");
    EXPECT_EQ(model_at.file, kExample);
    EXPECT_EQ(model_at.line, model_line);
    EXPECT_EQ(model_at.column, 14);
    EXPECT_GT(classify->where.line, 0);
    EXPECT_EQ(classify->where.column, 5);

    const StageSpec* clean = spec.FindStage("clean");
    ASSERT_NE(clean, nullptr);
    const nlohmann::json& steps = clean->with.value["steps"];
    ASSERT_TRUE(steps.is_array());
    ASSERT_EQ(steps.size(), 3u);
    EXPECT_EQ(steps[0]["select"], nlohmann::json({"subject", "body", "customer"}));
    EXPECT_EQ(steps[1]["redact"]["replacement"], "[redacted]");
    EXPECT_EQ(steps[2]["truncate"]["max_tokens"], 200);
}

TEST_F(ExampleFileTest, HasItsTopicsAndModels) {
    PipelineSpec spec = Load();
    ASSERT_EQ(spec.topics.size(), 2u);
    EXPECT_EQ(spec.topics[0].name, "tickets");
    EXPECT_EQ(spec.topics[1].name, "kb.docs");
    EXPECT_EQ(spec.topics[0].options.partitions, 2);
    EXPECT_EQ(spec.topics[0].options.durability, Durability::kAlways);

    ASSERT_EQ(spec.models.size(), 1u);
    const ModelSpec* model = spec.FindModel("triage");
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->backend, ModelBackend::kLlama);
    EXPECT_EQ(model->slots, 4);
    EXPECT_EQ(model->context, 1024);
    EXPECT_EQ(model->threads, 0);
    // A relative model path resolves from the pipeline file's folder.
    EXPECT_EQ(model->path,
              std::string(EVENTLOOM_SOURCE_DIR) + "/examples/support-triage/models/tiny.gguf");
}

TEST_F(ExampleFileTest, HasItsKnowledgeBase) {
    PipelineSpec spec = Load();
    ASSERT_EQ(spec.indexes.size(), 1u);
    const IndexSpec& kb = spec.indexes[0];
    EXPECT_EQ(kb.name, "kb");
    EXPECT_EQ(kb.source, "kb.docs");
    EXPECT_TRUE(kb.chunk_by_tokens);
    EXPECT_EQ(kb.chunk_size, 120);
    EXPECT_EQ(kb.embedder, "hashing");
    EXPECT_THAT(kb.filter_fields, ElementsAre("product"));
}

TEST_F(ExampleFileTest, HasItsGateway) {
    PipelineSpec spec = Load();
    const GatewaySpec& gateway = spec.gateway;
    EXPECT_TRUE(gateway.enabled);
    EXPECT_EQ(gateway.listen, "127.0.0.1:8080");
    ASSERT_EQ(gateway.openai.size(), 1u);
    EXPECT_EQ(gateway.openai[0].model, "triage-chat");
    EXPECT_EQ(gateway.openai[0].topic, "chat.requests");
    EXPECT_THAT(gateway.event_topics, ElementsAre("tickets", "kb.docs"));
    EXPECT_THAT(gateway.job_topics, ElementsAre("tickets"));
    EXPECT_EQ(gateway.webhook_secret_env, "EVENTLOOM_WEBHOOK_SECRET");
    EXPECT_TRUE(gateway.api_keys.empty());
}

TEST_F(ExampleFileTest, EnvironmentOverridesTheDefaults) {
    ScopedEnv listen("EVENTLOOM_LISTEN", "0.0.0.0:9000");
    ScopedEnv threads("EVENTLOOM_THREADS", "3");
    ScopedEnv model("EVENTLOOM_MODEL", "/abs/model.gguf");
    PipelineSpec spec = Load();
    EXPECT_EQ(spec.gateway.listen, "0.0.0.0:9000");
    ASSERT_EQ(spec.models.size(), 1u);
    EXPECT_EQ(spec.models[0].threads, 3);
    EXPECT_EQ(spec.models[0].path, "/abs/model.gguf");
}

// ---------------------------------------------------------------------------------------------
// Diagnostics.

// A small valid pipeline; the cases below break one thing in it at a time.
constexpr const char* kValid = R"(version: 1
name: p
models:
  m: { backend: echo }
stages:
  - name: a
    consumes: in
    uses: transform
    with: { steps: [] }
    emits: out
)";

std::vector<Diagnostic> Diagnose(const std::string& yaml) {
    std::vector<Diagnostic> diagnostics;
    auto spec = ParsePipeline(yaml, "p.yaml", "/pipelines", &diagnostics);
    EXPECT_FALSE(spec.ok()) << "the file loaded";
    if (!spec.ok()) {
        EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
        // The status lists every diagnostic, one per line.
        for (const Diagnostic& d : diagnostics) {
            EXPECT_THAT(spec.status().message(), HasSubstr(d.ToString()));
        }
    }
    return diagnostics;
}

TEST(PipelineLoader, ValidBaseFileLoads) {
    auto spec = ParsePipeline(kValid, "p.yaml", "/pipelines");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->file, "p.yaml");
    EXPECT_EQ(spec->dir, "/pipelines");
    ASSERT_EQ(spec->stages.size(), 1u);
    EXPECT_EQ(spec->stages[0].where.line, 6);
    EXPECT_EQ(spec->stages[0].where.column, 5);
    ASSERT_EQ(spec->models.size(), 1u);
    EXPECT_EQ(spec->models[0].backend, ModelBackend::kEcho);
    EXPECT_FALSE(spec->gateway.enabled);
}

TEST(PipelineLoader, EachBadFileGetsItsMessageAtItsPlace) {
    struct Case {
        const char* what;
        std::string yaml;
        int line;
        int column;
        std::vector<std::string> message_parts;
    };
    const std::string stage_head =
        "version: 1\nname: p\nmodels:\n  m: { backend: echo }\n"
        "stages:\n  - name: a\n    consumes: in\n";
    const Case cases[] = {
        {"unknown key, with the expected ones and a guess",
         stage_head + "    uses: transform\n    emits: out\n    concurency: 2\n",
         10,
         5,
         {"unknown key 'concurency' in stage 'a'",
          "(expected one of: name, consumes, uses, with, emits, delivery, concurrency, retry, "
          "dead_letter, rate_limit, timeout)",
          "did you mean 'concurrency'?"}},
        {"unknown key at the top level",
         std::string(kValid) + "gatway: {}\n",
         11,
         1,
         {"unknown key 'gatway' at the top level", "did you mean 'gateway'?",
          "expected one of: version, name, broker, topics, models, indexes, gateway, stages"}},
        {"wrong type",
         stage_head + "    uses: transform\n    emits: out\n    concurrency: many\n",
         10,
         18,
         {"stage 'a': concurrency: expected an integer, got 'many'"}},
        {"a number out of range",
         stage_head + "    uses: transform\n    emits: out\n    concurrency: 0\n",
         10,
         18,
         {"stage 'a': concurrency: must be between 1 and 256, got 0"}},
        {"a list where a mapping belongs",
         stage_head + "    uses: transform\n    emits: out\n    retry: [1, 2]\n",
         10,
         12,
         {"stage 'a' retry: expected a mapping, got a list"}},
        {"missing required key",
         "version: 1\nname: p\nstages:\n  - name: a\n    uses: transform\n    emits: out\n",
         4,
         5,
         {"stage 'a': missing required key 'consumes'"}},
        {"missing emits on a transform stage",
         stage_head + "    uses: transform\n",
         6,
         5,
         {"stage 'a': missing required key 'emits'"}},
        {"unknown stage kind",
         stage_head + "    uses: transfrom\n    emits: out\n",
         8,
         11,
         {"stage 'a': uses: unknown stage kind 'transfrom'",
          "(expected one of: transform, route, llm, http, emit, notify, retrieve)",
          "did you mean 'transform'?"}},
        {"duplicate stage name",
         std::string(kValid) + "  - name: a\n    consumes: out\n    uses: notify\n",
         11,
         11,
         {"duplicate stage name 'a' (first defined at line 6)"}},
        {"bad duration",
         stage_head + "    uses: transform\n    emits: out\n    timeout: 5 minutes\n",
         10,
         14,
         {"stage 'a': timeout:", "5 minutes"}},
        {"bad duration inside retry",
         stage_head + "    uses: transform\n    emits: out\n    retry: { initial_delay: soon }\n",
         10,
         29,
         {"stage 'a': retry.initial_delay:", "soon"}},
        {"bad topic name",
         stage_head + "    uses: transform\n    emits: \"bad topic\"\n",
         9,
         12,
         {"stage 'a': emits: topic name 'bad topic' may contain only letters, digits, '.', '_' "
          "and '-'"}},
        {"reserved topic name",
         "version: 1\nname: p\nstages:\n  - name: a\n    consumes: _internal\n    uses: notify\n",
         5,
         15,
         {"stage 'a': consumes: topic name '_internal' must not start with '.' or '_'"}},
        {"an index without a source",
         "version: 1\nname: p\nindexes:\n  kb: { embedder: hashing }\n" +
             std::string(kValid).substr(19),
         4,
         7,
         {"index 'kb': missing required key 'source'"}},
        {"an index with an unknown embedder",
         "version: 1\nname: p\nindexes:\n  kb: { source: docs, embedder: hashng }\n" +
             std::string(kValid).substr(19),
         4,
         33,
         {"index 'kb': embedder: unknown embedder 'hashng'", "did you mean 'hashing'?"}},
        {"an index whose overlap is not below its size",
         "version: 1\nname: p\nindexes:\n  kb:\n    source: docs\n"
         "    chunking: { size: 50, overlap: 50 }\n" +
             std::string(kValid).substr(19),
         6,
         15,
         {"index 'kb': chunking.overlap (50) must be smaller than chunking.size (50)"}},
        {"an index with an unknown chunking unit",
         "version: 1\nname: p\nindexes:\n  kb:\n    source: docs\n"
         "    chunking: { unit: words }\n" +
             std::string(kValid).substr(19),
         6,
         23,
         {"index 'kb': chunking.unit: unknown unit 'words'; expected tokens or characters"}},
        {"a retrieve stage naming an unknown index",
         "version: 1\nname: p\nindexes:\n  kb: { source: docs }\nstages:\n  - name: a\n"
         "    consumes: in\n    uses: retrieve\n    with: { index: bk, query: x }\n"
         "    emits: out\n",
         9,
         20,
         {"stage 'a': with.index: unknown index 'bk'", "did you mean 'kb'?", "indexes: kb"}},
        {"a retrieve stage without an index",
         "version: 1\nname: p\nstages:\n  - name: a\n"
         "    consumes: in\n    uses: retrieve\n    with: { query: x }\n    emits: out\n",
         7,
         11,
         {"stage 'a': with.index is required for a retrieve stage",
          "no indexes are declared under 'indexes:'"}},
        {"unset environment variable",
         "version: 1\nname: ${EL_LOADER_TEST_UNSET}\nstages:\n  - name: a\n    consumes: in\n"
         "    uses: notify\n",
         2,
         7,
         {"name:", "EL_LOADER_TEST_UNSET"}},
        {"unknown model in an llm stage",
         stage_head + "    uses: llm\n    with: { model: n }\n    emits: out\n",
         9,
         20,
         {"stage 'a': with.model: unknown model 'n'", "did you mean 'm'?", "(models: m)"}},
        {"llm stage without a model",
         stage_head + "    uses: llm\n    emits: out\n",
         6,
         5,
         {"stage 'a': with.model is required for an llm stage (models: m)"}},
        {"llm stage when no model is declared",
         "version: 1\nname: p\nstages:\n  - name: a\n    consumes: in\n    uses: llm\n"
         "    with: { model: m }\n    emits: out\n",
         7,
         20,
         {"unknown model 'm'", "no models are declared under 'models:'"}},
        {"emits on a notify stage",
         stage_head + "    uses: notify\n    emits: out\n",
         9,
         12,
         {"stage 'a': emits: a notify stage emits nothing", "p.results", "remove 'emits'"}},
        {"emits on a route stage",
         stage_head + "    uses: route\n    with: { default: out }\n    emits: other\n",
         10,
         12,
         {"stage 'a': emits: a route stage publishes to the topics of with.routes"}},
        {"unsupported version",
         "version: 2\nname: p\nstages:\n  - name: a\n    consumes: in\n    uses: notify\n",
         1,
         10,
         {"version: unsupported version 2; expected 1"}},
        {"stages not a list",
         "version: 1\nname: p\nstages: { a: 1 }\n",
         3,
         9,
         {"stages: expected a list of stages"}},
        {"unknown model backend",
         "version: 1\nname: p\nmodels:\n  m: { backend: gpt }\nstages:\n  - name: a\n"
         "    consumes: in\n    uses: notify\n",
         4,
         17,
         {"model 'm': backend: unknown backend 'gpt'; expected one of: llama, openai, echo"}},
        {"bad durability of a topic",
         "version: 1\nname: p\ntopics:\n  in: { durability: sometimes }\nstages:\n"
         "  - name: a\n    consumes: in\n    uses: notify\n",
         4,
         21,
         {"topic 'in': durability:", "sometimes"}},
        {"gateway topic that no stage consumes",
         std::string(kValid) + "gateway:\n  events: [nowhere]\n",
         12,
         12,
         {"gateway.events: topic 'nowhere' is not consumed by any stage"}},
        {"bad gateway listen address",
         std::string(kValid) + "gateway:\n  listen: localhost\n",
         12,
         11,
         {"gateway.listen: expected HOST:PORT", "no ':PORT'"}},
        {"YAML syntax error",
         "version: 1\nname: p\nstages:\n  - name: a\n    consumes: [in\n    uses: notify\n",
         6,
         9,
         {"YAML syntax: end of sequence flow not found"}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.what) + "\n" + c.yaml);
        std::vector<Diagnostic> found = Diagnose(c.yaml);
        ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
        EXPECT_EQ(found[0].where.file, "p.yaml");
        EXPECT_EQ(found[0].where.line, c.line) << found[0].ToString();
        EXPECT_EQ(found[0].where.column, c.column) << found[0].ToString();
        for (const std::string& part : c.message_parts) {
            EXPECT_THAT(found[0].message, HasSubstr(part));
        }
    }
}

TEST(PipelineLoader, ReadsIndexes) {
    auto spec = ParsePipeline(
        "version: 1\nname: p\nmodels:\n  m: { backend: echo }\n"
        "indexes:\n  kb:\n    source: docs\n    dir: kb-data\n"
        "    chunking: { unit: characters, size: 500, overlap: 50 }\n"
        "    dimension: 128\n    filter_fields: [product, lang]\n"
        "stages:\n  - name: a\n    consumes: in\n    uses: retrieve\n"
        "    with: { index: kb, query: '{{ data.q }}' }\n    emits: out\n",
        "p.yaml", "/pipelines");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    ASSERT_EQ(spec->indexes.size(), 1u);
    const IndexSpec& kb = spec->indexes[0];
    EXPECT_EQ(kb.name, "kb");
    EXPECT_EQ(kb.source, "docs");
    EXPECT_EQ(kb.dir, "/pipelines/kb-data");
    EXPECT_FALSE(kb.chunk_by_tokens);
    EXPECT_EQ(kb.chunk_size, 500);
    EXPECT_EQ(kb.chunk_overlap, 50);
    EXPECT_EQ(kb.embedder, "hashing");
    EXPECT_EQ(kb.dimension, 128);
    EXPECT_THAT(kb.filter_fields, ElementsAre("product", "lang"));
    EXPECT_EQ(spec->stages[0].kind, StageKind::kRetrieve);
    EXPECT_EQ(spec->FindIndex("kb"), &spec->indexes[0]);
    EXPECT_EQ(spec->FindIndex("other"), nullptr);
}

TEST(PipelineLoader, ReportsEveryProblemAtOnce) {
    const std::string yaml = R"(version: 1
name: p
models:
  m: { backend: echo }
stages:
  - name: a
    consumes: in
    uses: transfrom
    emits: out
  - name: b
    consumes: out
    uses: llm
    with: { model: x }
    emits: done
    timeout: never
  - name: b
    consumes: done
    uses: notify
    emits: more
)";
    std::vector<Diagnostic> found = Diagnose(yaml);
    std::vector<std::string> places;
    for (const Diagnostic& d : found) places.push_back(d.where.ToString());
    EXPECT_THAT(places, ElementsAre("p.yaml:8:11", "p.yaml:13:20", "p.yaml:15:14", "p.yaml:16:11",
                                    "p.yaml:19:12"))
        << DiagnosticsStatus(found).ToString();
}

TEST(PipelineLoader, DiagnosticReadsFileLineColumnAndMessage) {
    Diagnostic d{{"p.yaml", 12, 7}, "stage 'x': bad"};
    EXPECT_EQ(d.ToString(), "p.yaml:12:7: error: stage 'x': bad");
    EXPECT_EQ((SourceLocation{"p.yaml", 3, 0}).ToString(), "p.yaml:3");
    EXPECT_EQ((SourceLocation{"p.yaml", 0, 0}).ToString(), "p.yaml");
}

TEST(PipelineLoader, EmptyFileIsReportedAsNotAMapping) {
    std::vector<Diagnostic> found = Diagnose("");
    ASSERT_EQ(found.size(), 1u);
    EXPECT_THAT(found[0].message, HasSubstr("pipeline: expected a mapping"));
}

TEST(PipelineLoader, DuplicateKeysAreReported) {
    std::vector<Diagnostic> found = Diagnose(std::string(kValid) + "name: q\n");
    ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.line, 11);
    EXPECT_THAT(found[0].message, HasSubstr("duplicate key 'name' in the top level"));
}

// ---------------------------------------------------------------------------------------------
// Environment substitution in the file.

TEST(PipelineLoader, SubstitutesEnvironmentVariablesInScalars) {
    ScopedEnv name("EL_LOADER_NAME", "from-env");
    ScopedEnv workers("EL_LOADER_WORKERS", "4");
    ScopedEnv unset("EL_LOADER_UNSET", nullptr);
    const std::string yaml = R"(version: 1
name: ${EL_LOADER_NAME}
stages:
  - name: a
    consumes: ${EL_LOADER_UNSET:-in}
    uses: emit
    concurrency: ${EL_LOADER_WORKERS}
    timeout: ${EL_LOADER_UNSET:-2s}
    with:
      type: x
      count: ${EL_LOADER_UNSET:-5}
      quoted: "${EL_LOADER_UNSET:-5}"
      literal: "$${not.a.variable}"
      nested: ${EL_LOADER_UNSET:-${EL_LOADER_NAME}-x}
    emits: out
)";
    auto spec = ParsePipeline(yaml, "p.yaml", ".");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->name, "from-env");
    ASSERT_EQ(spec->stages.size(), 1u);
    const StageSpec& stage = spec->stages[0];
    EXPECT_EQ(stage.consumes, "in");
    EXPECT_EQ(stage.concurrency, 4);
    EXPECT_EQ(stage.timeout, milliseconds(2000));
    // A plain scalar takes its JSON type after substitution; a quoted one stays a string.
    EXPECT_EQ(stage.with.value["count"], 5);
    EXPECT_EQ(stage.with.value["quoted"], "5");
    EXPECT_EQ(stage.with.value["literal"], "${not.a.variable}");
    EXPECT_EQ(stage.with.value["nested"], "from-env-x");
}

TEST(PipelineLoader, UnsetVariableInsideWithIsReportedAtItsValue) {
    ScopedEnv unset("EL_LOADER_UNSET", nullptr);
    std::vector<Diagnostic> found = Diagnose(R"(version: 1
name: p
stages:
  - name: a
    consumes: in
    uses: emit
    with: { type: "${EL_LOADER_UNSET}" }
    emits: out
)");
    ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.line, 7);
    EXPECT_EQ(found[0].where.column, 19);
    EXPECT_THAT(found[0].message, HasSubstr("stage 'a': with.type"));
    EXPECT_THAT(found[0].message, HasSubstr("EL_LOADER_UNSET"));
}

// ---------------------------------------------------------------------------------------------
// Files.

TEST(LoadPipelineFile, MissingFileNamesThePath) {
    testing::TempDir dir;
    const std::string path = dir.Sub("no-such-pipeline.yaml");
    std::vector<Diagnostic> found;
    auto spec = LoadPipelineFile(path, &found);
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), StatusCode::kNotFound);
    EXPECT_THAT(spec.status().ToString(), HasSubstr(path));
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].where.file, path);
    EXPECT_THAT(found[0].message, HasSubstr("cannot read the file"));
}

TEST(LoadPipelineFile, DiagnosticsNameTheFileAsGiven) {
    testing::TempDir dir;
    const std::string path = dir.Sub("bad.yaml");
    std::ofstream(path) << "version: 1\nname: p\nstages: []\n";
    std::vector<Diagnostic> found;
    auto spec = LoadPipelineFile(path, &found);
    ASSERT_FALSE(spec.ok());
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].where.ToString(), path + ":3:9");
    EXPECT_THAT(found[0].message, HasSubstr("a pipeline needs at least one stage"));
}

TEST(LoadPipelineFile, RelativeFileResolvesPathsFromItsFolder) {
    testing::TempDir dir;
    const std::string path = dir.Sub("p.yaml");
    std::ofstream(path) << "version: 1\nname: p\nmodels:\n  m: { path: m.gguf }\n"
                           "stages:\n  - name: a\n    consumes: in\n    uses: notify\n";
    auto spec = LoadPipelineFile(path);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->dir, dir.path());
    ASSERT_EQ(spec->models.size(), 1u);
    EXPECT_EQ(spec->models[0].path, dir.Sub("m.gguf"));
}

}  // namespace
}  // namespace eventloom::pipeline
