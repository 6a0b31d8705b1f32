// The deterministic test model: a small llama-architecture GGUF file that eventloom writes
// itself, so that tests and benchmarks run real inference without downloading weights.
//
// The tokenizer is real (copied from llama.cpp's ggml-vocab-llama-spm.gguf, 32,000 tokens);
// the weights are pseudo-random, drawn from N(0, 0.02) by a PRNG seeded with `seed`. The
// compute is that of a real model of the same shape; the text it generates is gibberish.
// The same options always produce the same bytes (with the same build: the weights go through
// the C library's log, sin and cos).
//
// Thread-safety: WriteTestModel may run concurrently for different output paths. It writes a
// temporary file beside `out` and renames it into place, so a reader never sees a partly
// written model under the final name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom::llm {

enum class TestModelSize {
    kTiny,   // 256 wide, 4 layers, 4 heads, FFN 768, f16: about 20M parameters, 40 MB
    kSmall,  // 768 wide, 12 layers, 12 heads, FFN 2048, q8_0: about 134M parameters, 143 MB
};

// "tiny" or "small". InvalidArgument names the text otherwise.
Result<TestModelSize> ParseTestModelSize(std::string_view text);
std::string_view TestModelSizeName(TestModelSize size);

struct TestModelOptions {
    TestModelSize size = TestModelSize::kTiny;
    // The GGUF file to write; its directory must exist.
    std::string out;
    // The GGUF file whose tokenizer.* keys are copied; empty means DefaultVocabPath().
    std::string vocab;
    uint64_t seed = 1;
};

// $EVENTLOOM_VOCAB when set, otherwise ggml-vocab-llama-spm.gguf in the models folder of the
// llama.cpp installation eventloom was built against.
std::string DefaultVocabPath();

struct TestModelInfo {
    int64_t parameters = 0;
    uint64_t bytes = 0;  // size of the written file
    std::string path;
};

// Writes the model described by `options`. Errors name the file concerned:
//   NotFound            the vocab file or the output directory does not exist
//   InvalidArgument     the vocab file is not a GGUF file or has no tokenizer; `out` is
//                       empty or a directory
//   DataLoss            the vocab file is a truncated or corrupt GGUF file
//   FailedPrecondition  the output directory is not writable (or not a directory)
//   ResourceExhausted   the disk is full
[[nodiscard]] Result<TestModelInfo> WriteTestModel(const TestModelOptions& options);

}  // namespace eventloom::llm
