// The llm stage's hooks (pipeline/expr/llm_hooks.h): prompts from template files and inline
// templates, the system message, the schema, sampling options, the output field, and errors
// in template and schema files reported at their own file:line:col.
#include "pipeline/expr/llm_hooks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/config/pipeline_spec.h"
#include "support/temp_dir.h"

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

Event Ticket(const std::string& data = R"({"customer":"Ada","subject":"Charged twice",)"
                                       R"("body":"Twice for invoice 2231."})") {
    Event e;
    e.id = "t-1";
    e.source = "test";
    e.type = "ticket.cleaned";
    e.datacontenttype = "application/json";
    e.data = data;
    e.has_data = true;
    return e;
}

// An llm stage whose `with:` is `with_yaml` (first line at line 10 of dir/p.yaml), in a
// pipeline declaring model `m`; files it names are written into the temp dir first.
class LlmHooksTest : public ::testing::Test {
protected:
    void Write(const std::string& name, const std::string& text) {
        std::filesystem::create_directories(std::filesystem::path(dir_.Sub(name)).parent_path());
        std::ofstream(dir_.Sub(name)) << text;
    }

    StageSpec Stage(const std::string& with_yaml) {
        std::string yaml =
            "version: 1\nname: p\nmodels:\n  m: { backend: echo }\nstages:\n  - name: classify\n"
            "    consumes: in\n    uses: llm\n    emits: out\n    with:\n";
        std::istringstream lines(with_yaml);
        for (std::string line; std::getline(lines, line);) yaml += "      " + line + "\n";
        auto spec = ParsePipeline(yaml, dir_.Sub("p.yaml"), dir_.path());
        EXPECT_TRUE(spec.ok()) << spec.status().ToString();
        if (!spec.ok() || spec->stages.empty()) return StageSpec();
        return spec->stages[0];
    }

    LlmHooks Hooks(const std::string& with_yaml) {
        auto hooks = MakeLlmHooks(Stage(with_yaml), dir_.path());
        EXPECT_TRUE(hooks.ok()) << hooks.status().ToString();
        return hooks.ok() ? std::move(hooks).value() : LlmHooks();
    }

    std::vector<Diagnostic> Errors(const std::string& with_yaml) {
        std::vector<Diagnostic> found;
        auto hooks = MakeLlmHooks(Stage(with_yaml), dir_.path(), &found);
        EXPECT_FALSE(hooks.ok());
        if (!hooks.ok()) {
            EXPECT_EQ(hooks.status().code(), StatusCode::kInvalidArgument);
            for (const Diagnostic& d : found) {
                EXPECT_THAT(hooks.status().message(), HasSubstr(d.ToString()));
            }
        }
        return found;
    }

    testing::TempDir dir_;
};

TEST_F(LlmHooksTest, PromptAndSystemFromTemplateFiles) {
    Write("prompts/user.txt", "Ticket from {{ data.customer }}\nSubject: {{ data.subject }}\n");
    Write("prompts/system.txt", "You triage tickets of type {{ event.type }}.");
    LlmHooks hooks = Hooks("model: m\nsystem_file: prompts/system.txt\nprompt: prompts/user.txt\n");
    ASSERT_TRUE(hooks.make_request);
    auto request = hooks.make_request(Ticket());
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    ASSERT_EQ(request->messages.size(), 2u);
    EXPECT_EQ(request->messages[0].role, "system");
    EXPECT_EQ(request->messages[0].content, "You triage tickets of type ticket.cleaned.");
    EXPECT_EQ(request->messages[1].role, "user");
    EXPECT_EQ(request->messages[1].content, "Ticket from Ada\nSubject: Charged twice\n");
    EXPECT_EQ(request->id, "t-1");
    EXPECT_TRUE(request->json_schema.empty());
}

TEST_F(LlmHooksTest, InlineSystemAndPromptText) {
    LlmHooks hooks =
        Hooks("model: m\nsystem: \"Be brief.\"\nprompt_text: \"Summarize: {{ data.body }}\"\n");
    auto request = hooks.make_request(Ticket());
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    ASSERT_EQ(request->messages.size(), 2u);
    EXPECT_EQ(request->messages[0].content, "Be brief.");
    EXPECT_EQ(request->messages[1].content, "Summarize: Twice for invoice 2231.");
}

TEST_F(LlmHooksTest, SamplingOptionsApplyAndDefaultsStay) {
    LlmHooks hooks = Hooks(
        "model: m\nprompt_text: hi\nmax_tokens: 48\ntemperature: 0\ntop_k: 5\nseed: 7\n"
        "stop: [\"\\n\\n\", END]\n");
    auto request = hooks.make_request(Ticket());
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    EXPECT_EQ(request->max_tokens, 48);
    EXPECT_EQ(request->sampling.temperature, 0.0f);
    EXPECT_EQ(request->sampling.top_k, 5);
    EXPECT_EQ(request->sampling.seed, 7u);
    EXPECT_EQ(request->stop, (std::vector<std::string>{"\n\n", "END"}));
    EXPECT_EQ(request->sampling.top_p, LlmRequest().sampling.top_p);
}

TEST_F(LlmHooksTest, SchemaFileIsLoadedAsCompactJson) {
    Write("schemas/s.json", "{\n  \"type\": \"object\",\n  \"required\": [\"category\"]\n}\n");
    LlmHooks hooks = Hooks("model: m\nprompt_text: hi\nschema: schemas/s.json\n");
    auto request = hooks.make_request(Ticket());
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    EXPECT_EQ(json::parse(request->json_schema),
              json({{"type", "object"}, {"required", {"category"}}}));
    EXPECT_EQ(request->json_schema.find('\n'), std::string::npos);
}

TEST_F(LlmHooksTest, WithoutAPromptTheDataIsTheRequest) {
    LlmHooks hooks = Hooks("model: m\nsystem: \"Be kind.\"\nmax_tokens: 9\n");
    Event e = Ticket(R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":100,)"
                     R"("temperature":0.5})");
    auto request = hooks.make_request(e);
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    ASSERT_EQ(request->messages.size(), 2u);
    EXPECT_EQ(request->messages[0].role, "system");
    EXPECT_EQ(request->messages[0].content, "Be kind.");
    EXPECT_EQ(request->messages[1].content, "Hi");
    EXPECT_EQ(request->max_tokens, 9);               // the stage's option wins
    EXPECT_EQ(request->sampling.temperature, 0.5f);  // the request's own where none given
}

TEST_F(LlmHooksTest, RequestWithItsOwnSystemMessageKeepsIt) {
    LlmHooks hooks = Hooks("model: m\nsystem: \"Stage system.\"\n");
    auto request = hooks.make_request(Ticket(
        R"({"messages":[{"role":"system","content":"Own."},{"role":"user","content":"Hi"}]})"));
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    ASSERT_EQ(request->messages.size(), 2u);
    EXPECT_EQ(request->messages[0].content, "Own.");
}

TEST_F(LlmHooksTest, BadRequestDataFailsNamingTheStage) {
    LlmHooks hooks = Hooks("model: m\n");
    auto request = hooks.make_request(Ticket(R"({"messages": 3})"));
    ASSERT_FALSE(request.ok());
    EXPECT_EQ(request.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(request.status().message(), HasSubstr("stage 'classify'"));
}

TEST_F(LlmHooksTest, OutputWithASchemaAddsTheParsedCompletion) {
    Write("s.json", R"({"type":"object"})");
    LlmHooks hooks =
        Hooks("model: m\nprompt_text: hi\nschema: s.json\noutput: triage\ntype: ticket.triaged\n");
    EXPECT_EQ(hooks.output_type, "ticket.triaged");
    ASSERT_TRUE(hooks.make_output);
    LlmResult result;
    result.text = R"({"category":"billing","urgency":4})";
    result.finish_reason = "stop";
    auto out = hooks.make_output(Ticket(), result, "m");
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const json data = json::parse(*out);
    EXPECT_EQ(data["customer"], "Ada");
    EXPECT_EQ(data["triage"], json({{"category", "billing"}, {"urgency", 4}}));
}

TEST_F(LlmHooksTest, OutputWithoutASchemaAddsTheText) {
    LlmHooks hooks = Hooks("model: m\nprompt_text: hi\noutput: summary\n");
    LlmResult result;
    result.text = "{not json";
    auto out = hooks.make_output(Ticket(), result, "m");
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(json::parse(*out)["summary"], "{not json");
}

TEST_F(LlmHooksTest, OutputOnAnEventWithoutDataStartsAnObject) {
    LlmHooks hooks = Hooks("model: m\nprompt_text: hi\noutput: summary\n");
    Event e = Ticket();
    e.data.clear();
    e.has_data = false;
    LlmResult result;
    result.text = "short";
    auto out = hooks.make_output(e, result, "m");
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(json::parse(*out), json({{"summary", "short"}}));
}

TEST_F(LlmHooksTest, CompletionThatIsNotJsonUnderASchemaFailsNamingTheStage) {
    Write("s.json", R"({"type":"object"})");
    LlmHooks hooks = Hooks("model: m\nprompt_text: hi\nschema: s.json\noutput: triage\n");
    LlmResult result;
    result.text = R"({"category": "bill)";
    result.finish_reason = "length";
    auto out = hooks.make_output(Ticket(), result, "m");
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(out.status().message(), HasSubstr("stage 'classify'"));
    EXPECT_THAT(out.status().message(), HasSubstr("not valid JSON"));
    EXPECT_THAT(out.status().message(), HasSubstr("'length'"));
}

TEST_F(LlmHooksTest, OutputOnDataThatIsNotAnObjectFails) {
    LlmHooks hooks = Hooks("model: m\nprompt_text: hi\noutput: summary\n");
    LlmResult result;
    result.text = "x";
    auto list = hooks.make_output(Ticket("[1, 2]"), result, "m");
    ASSERT_FALSE(list.ok());
    EXPECT_THAT(list.status().message(), HasSubstr("is not a JSON object; cannot add 'summary'"));
    Event text = Ticket("plain words");
    text.datacontenttype = "text/plain";
    auto plain = hooks.make_output(text, result, "m");
    ASSERT_FALSE(plain.ok());
    EXPECT_THAT(plain.status().message(), HasSubstr("is not JSON; cannot add 'summary'"));
}

TEST_F(LlmHooksTest, WithoutOutputThereIsNoOutputHook) {
    LlmHooks hooks = Hooks("model: m\nprompt_text: hi\n");
    EXPECT_FALSE(hooks.make_output);
    EXPECT_EQ(hooks.output_type, "");
}

TEST_F(LlmHooksTest, BadTemplateFileIsReportedAtItsFileLineAndColumn) {
    Write("prompts/bad.txt", "Line one\nSubject: {{ data.subject | uper }}\n");
    std::vector<Diagnostic> found = Errors("model: m\nprompt: prompts/bad.txt\n");
    ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.file, dir_.Sub("prompts/bad.txt"));
    EXPECT_EQ(found[0].where.line, 2);
    EXPECT_EQ(found[0].where.column, 28);
    EXPECT_THAT(found[0].message, HasSubstr("stage 'classify': prompt: unknown filter 'uper'"));
}

TEST_F(LlmHooksTest, UnclosedHoleInASystemFileIsReportedWhereItOpens) {
    Write("sys.txt", "ok\n\n  {{ event.type\nmore\n");
    std::vector<Diagnostic> found = Errors("model: m\nsystem_file: sys.txt\n");
    ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.ToString(), dir_.Sub("sys.txt") + ":3:3");
    EXPECT_THAT(found[0].message, HasSubstr("system_file: expected '}}' to close '{{'"));
}

TEST_F(LlmHooksTest, BadSchemaFileIsReportedAtItsFileLine) {
    Write("s.json", "{\n  \"type\": \"object\",\n  oops\n}\n");
    std::vector<Diagnostic> found = Errors("model: m\nschema: s.json\n");
    ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.file, dir_.Sub("s.json"));
    EXPECT_EQ(found[0].where.line, 3);
    EXPECT_THAT(found[0].message, HasSubstr("stage 'classify': schema: not valid JSON"));
}

TEST_F(LlmHooksTest, MissingFileIsReportedAtTheOptionNamingThePath) {
    std::vector<Diagnostic> found = Errors("model: m\nprompt: prompts/nope.txt\n");
    ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.file, dir_.Sub("p.yaml"));
    EXPECT_EQ(found[0].where.line, 12);
    EXPECT_EQ(found[0].where.column, 15);
    EXPECT_THAT(found[0].message, HasSubstr("stage 'classify': prompt: cannot read '" +
                                            dir_.Sub("prompts/nope.txt") + "'"));
}

TEST_F(LlmHooksTest, BadOptionsAreReportedAtTheirPlaceAllAtOnce) {
    std::vector<Diagnostic> found = Errors(
        "model: m\n"
        "promt: x.txt\n"
        "max_tokens: 0\n"
        "temperature: hot\n"
        "top_p: 2\n"
        "prompt_text: \"{{ data.x | nope }}\"\n"
        "output: \"\"\n");
    std::vector<std::string> got;
    for (const Diagnostic& d : found) got.push_back(d.where.ToString() + " " + d.message);
    ASSERT_EQ(found.size(), 6u) << DiagnosticsStatus(found).ToString();
    const std::string file = dir_.Sub("p.yaml");
    EXPECT_THAT(got, ::testing::UnorderedElementsAre(
                         file + ":12:14 stage 'classify': promt: unknown key 'promt'; expected "
                                "one of model, system, system_file, prompt, prompt_text, schema, "
                                "max_tokens, temperature, top_p, top_k, seed, stop, output, "
                                "chunks, type",
                         file + ":13:19 stage 'classify': max_tokens: expected at least 1",
                         file + ":14:20 stage 'classify': temperature: expected a number, "
                                "found a string",
                         file + ":15:14 stage 'classify': top_p: expected a number in (0, 1]",
                         file + ":16:20 stage 'classify': prompt_text: at column 13: unknown "
                                "filter 'nope' (known: default, upper, lower, trim, json, "
                                "truncate, join, length)",
                         file + ":17:15 stage 'classify': output: expected a field name"));
}

TEST_F(LlmHooksTest, BothFormsOfAnOptionAreAnError) {
    std::vector<Diagnostic> found =
        Errors("model: m\nsystem: a\nsystem_file: s.txt\nprompt: p.txt\nprompt_text: b\n");
    std::vector<std::string> messages;
    for (const Diagnostic& d : found) messages.push_back(d.message);
    EXPECT_THAT(messages,
                ::testing::Contains(HasSubstr("give 'system' or 'system_file', not both")));
    EXPECT_THAT(messages,
                ::testing::Contains(HasSubstr("give 'prompt' or 'prompt_text', not both")));
}

// The example pipeline's classify stage, with its real prompt, system and schema files.
TEST(LlmHooksExample, ClassifyStageBuildsItsRequestFromTheExampleFiles) {
    const std::string dir = std::string(EVENTLOOM_SOURCE_DIR) + "/examples/support-triage";
    auto spec = LoadPipelineFile(dir + "/pipeline.yaml");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    const StageSpec* classify = spec->FindStage("classify");
    ASSERT_NE(classify, nullptr);
    auto hooks = MakeLlmHooks(*classify, spec->dir);
    ASSERT_TRUE(hooks.ok()) << hooks.status().ToString();

    auto request = hooks->make_request(Ticket());
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    ASSERT_EQ(request->messages.size(), 2u);
    EXPECT_THAT(request->messages[0].content, HasSubstr("You are a support triage assistant."));
    EXPECT_EQ(request->messages[1].content,
              "Ticket from Ada\nSubject: Charged twice\n\nTwice for invoice 2231.\n\n"
              "Help articles that may apply:\n(none)\n");
    EXPECT_EQ(request->max_tokens, 96);
    // With the retrieve stage's context, the articles' text is in the prompt.
    auto with_context = hooks->make_request(Ticket(
        R"({"customer":"Ada","subject":"s","body":"b","context":{"text":"Refunds take 3 days."}})"));
    ASSERT_TRUE(with_context.ok());
    EXPECT_THAT(with_context->messages[1].content,
                HasSubstr("Help articles that may apply:\nRefunds take 3 days.\n"));
    EXPECT_EQ(request->sampling.temperature, 0.0f);
    const json schema = json::parse(request->json_schema);
    EXPECT_EQ(schema["required"], json({"category", "urgency", "summary"}));

    // No customer: the template's default.
    auto anonymous = hooks->make_request(Ticket(R"({"subject":"s","body":"b"})"));
    ASSERT_TRUE(anonymous.ok());
    EXPECT_THAT(anonymous->messages[1].content, HasSubstr("Ticket from an unknown customer"));

    ASSERT_TRUE(hooks->make_output);
    LlmResult result;
    result.text = R"({"category":"billing","urgency":3,"summary":"double charge"})";
    auto out = hooks->make_output(Ticket(), result, "triage");
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(json::parse(*out)["triage"]["category"], "billing");
}

}  // namespace
}  // namespace eventloom::pipeline
