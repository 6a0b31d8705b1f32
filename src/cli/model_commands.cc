// eventloom model make-test: writes the deterministic test model (src/llm/test_model).
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli/cli.h"
#include "llm/test_model/test_model.h"

namespace eventloom::cli {
namespace {

struct MakeTestFlags {
    std::string size = "tiny";
    std::string out;
    std::string vocab;
    uint64_t seed = 1;
};

int RunMakeTest(const MakeTestFlags& f) {
    auto size = llm::ParseTestModelSize(f.size);
    if (!size.ok()) return Fail(size.status());
    llm::TestModelOptions options;
    options.size = *size;
    options.out = f.out;
    options.vocab = f.vocab;
    options.seed = f.seed;

    const auto start = std::chrono::steady_clock::now();
    auto info = llm::WriteTestModel(options);
    if (!info.ok()) return Fail(info.status());
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;

    char line[512];
    std::snprintf(line, sizeof(line),
                  "wrote test model %s: size=%s, %.1f MB, %.1fM parameters, seed=%llu, %.2f s",
                  info->path.c_str(), f.size.c_str(), static_cast<double>(info->bytes) / 1e6,
                  static_cast<double>(info->parameters) / 1e6,
                  static_cast<unsigned long long>(f.seed), took.count());
    std::cout << line << "\n";
    return 0;
}

}  // namespace

void AddModelCommands(CLI::App& app, GlobalOptions& g, Action& action) {
    auto* model = app.add_subcommand("model",
                                     "Model files: make-test writes the deterministic test model "
                                     "(gibberish text, real compute)");
    model->require_subcommand(1);

    auto flags = std::make_shared<MakeTestFlags>();
    auto* make_test = model->add_subcommand(
        "make-test",
        "Write the deterministic test model, a GGUF file for tests and benchmarks: llama "
        "architecture, a real tokenizer (llama.cpp's ggml-vocab-llama-spm.gguf, 32,000 tokens) "
        "and pseudo-random weights. Its compute is that of a real model of its size; the text "
        "it generates is gibberish. The same --seed always writes the same bytes. Nothing is "
        "downloaded. tiny: 256 wide, 4 layers, f16, about 40 MB; small: 768 wide, 12 layers, "
        "q8_0, about 143 MB.");
    make_test->add_option("--size", flags->size, "tiny or small")->capture_default_str();
    make_test->add_option("--out", flags->out, "GGUF file to write (its directory must exist)")
        ->required();
    make_test->add_option("--seed", flags->seed, "Seed of the weights")->capture_default_str();
    make_test->add_option("--vocab", flags->vocab,
                          "GGUF file whose tokenizer is copied (default: " +
                              llm::DefaultVocabPath() + "; $EVENTLOOM_VOCAB overrides it)");
    make_test->callback([&action, flags] { action = [flags] { return RunMakeTest(*flags); }; });
}

}  // namespace eventloom::cli
