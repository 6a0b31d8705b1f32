// eventloom generate: runs one request on a model (a GGUF file in process, or an
// OpenAI-compatible server) and streams its tokens to the terminal.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "common/file.h"
#include "eventloom/llm.h"

namespace eventloom::cli {

bool IsModelUrl(const std::string& model) {
    return model.rfind("http://", 0) == 0 || model.rfind("https://", 0) == 0;
}

Result<std::unique_ptr<LlmBackend>> OpenModel(const ModelFlags& f) {
    if (f.model.empty()) {
        return InvalidArgumentError(
            "no model: pass --model FILE.gguf or --model http://host:port/v1 (or set "
            "$EVENTLOOM_MODEL)");
    }
    if (IsModelUrl(f.model)) {
        OpenAiOptions o;
        o.base_url = f.model;
        o.model = f.server_model;
        o.chat = !f.raw;
        o.max_concurrent = f.slots;
        o.send_top_k = !f.no_top_k;
        return OpenOpenAiBackend(o);
    }
    LlamaOptions o;
    o.model_path = f.model;
    o.slots = f.slots;
    o.context_per_slot = f.context;
    o.threads = f.threads;
    return OpenLlamaBackend(o);
}

void AddModelFlags(CLI::App* cmd, ModelFlags& f) {
    const char* env = std::getenv("EVENTLOOM_MODEL");
    if (env) f.model = env;
    cmd->add_option("--model,-m", f.model,
                    "A GGUF model file (run in process by llama.cpp), or the API root of an "
                    "OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (default: "
                    "$EVENTLOOM_MODEL)");
    cmd->add_option("--server-model", f.server_model,
                    "With a server: the model name to ask for (sent as \"model\")");
    cmd->add_flag("--no-top-k", f.no_top_k,
                  "With a server: do not send top_k (hosted APIs that reject unknown "
                  "parameters)");
    cmd->add_option("--threads", f.threads, "With a GGUF file: CPU threads (0: all cores)")
        ->capture_default_str();
    cmd->add_option("--context", f.context, "With a GGUF file: context tokens per sequence")
        ->capture_default_str();
}

namespace {

struct GenerateFlags {
    ModelFlags model;
    std::string prompt;
    std::string system;
    int max_tokens = 128;
    float temperature = 0.8f;
    int top_k = 40;
    float top_p = 0.95f;
    uint32_t seed = 0;
    std::vector<std::string> stop;
    std::string json_schema_file;
    bool ignore_eos = false;
    bool quiet = false;
};

int RunGenerate(GenerateFlags& f) {
    if (f.prompt == "-") {
        std::ostringstream s;
        s << std::cin.rdbuf();
        f.prompt = s.str();
    }
    LlmRequest r;
    r.id = "cli";
    if (f.model.raw) {
        r.prompt = f.system.empty() ? f.prompt : f.system + "\n" + f.prompt;
    } else {
        if (!f.system.empty()) r.messages.push_back({"system", f.system});
        r.messages.push_back({"user", f.prompt});
    }
    r.max_tokens = f.max_tokens;
    r.sampling.temperature = f.temperature;
    r.sampling.top_k = f.top_k;
    r.sampling.top_p = f.top_p;
    r.sampling.seed = f.seed;
    r.stop = f.stop;
    r.ignore_eos = f.ignore_eos;
    if (!f.json_schema_file.empty()) {
        auto schema = FileSystem::Default()->ReadFile(f.json_schema_file);
        if (!schema.ok()) return Fail(schema.status());
        r.json_schema = *schema;
    }

    f.model.slots = 1;
    auto backend = OpenModel(f.model);
    if (!backend.ok()) return Fail(backend.status());
    auto result = (*backend)->Generate(r,
                                       [](std::string_view piece) {
                                           std::fwrite(piece.data(), 1, piece.size(), stdout);
                                           std::fflush(stdout);
                                       },
                                       {});
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!result.ok()) return Fail(result.status());
    if (!f.quiet) {
        const auto& u = result->usage;
        double rate = u.decode_ms > 0 && u.completion_tokens > 1
                          ? (u.completion_tokens - 1) * 1000.0 / u.decode_ms
                          : 0;
        std::fprintf(stderr,
                     "model %s: %d prompt tokens (%d from cache), %d generated, finish %s; "
                     "first token %.0f ms, %.1f tokens/s\n",
                     (*backend)->model().c_str(), u.prompt_tokens, u.cached_prompt_tokens,
                     u.completion_tokens, result->finish_reason.c_str(), u.ttft_ms, rate);
    }
    return 0;
}

}  // namespace

void AddLlmCommands(CLI::App& app, GlobalOptions& g, Action& action) {
    auto f = std::make_shared<GenerateFlags>();
    auto* gen = app.add_subcommand(
        "generate",
        "Run one prompt on a model and stream the tokens to the terminal. The model is a GGUF "
        "file you bring (or `eventloom model make-test` writes a test model, whose text is "
        "gibberish) or an OpenAI-compatible server. Nothing is downloaded.");
    AddModelFlags(gen, f->model);
    gen->add_option("prompt", f->prompt, "The prompt; - reads it from standard input")->required();
    gen->add_option("--system", f->system, "A system message before the prompt");
    gen->add_flag("--raw", f->model.raw,
                  "Send the prompt as is, without the model's chat template (servers: "
                  "/completions instead of /chat/completions)");
    gen->add_option("--max-tokens,-n", f->max_tokens, "New tokens at most")->capture_default_str();
    gen->add_option("--temperature,-t", f->temperature, "0 is greedy")->capture_default_str();
    gen->add_option("--top-k", f->top_k, "0 is off")->capture_default_str();
    gen->add_option("--top-p", f->top_p, "1 is off")->capture_default_str();
    gen->add_option("--seed", f->seed, "Sampling seed")->capture_default_str();
    gen->add_option("--stop", f->stop, "A stop sequence (repeatable)");
    gen->add_option("--json-schema", f->json_schema_file,
                    "A JSON Schema file: the output is constrained to match it");
    gen->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past end-of-sequence");
    gen->add_flag("--quiet,-q", f->quiet, "No summary line on standard error");
    gen->callback([f, &action] { action = [f] { return RunGenerate(*f); }; });
    (void)g;
}

}  // namespace eventloom::cli
