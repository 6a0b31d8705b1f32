#include "llm/test_model/test_model.h"

#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace eventloom::llm {
namespace {

using testing::TempDir;

struct GgufFree {
    void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufFree>;

struct GgmlFree {
    void operator()(ggml_context* ctx) const { ggml_free(ctx); }
};
using GgmlPtr = std::unique_ptr<ggml_context, GgmlFree>;

bool Contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Bytes of one element of a numeric GGUF array.
size_t ElementSize(gguf_type type) {
    switch (type) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_BOOL:
            return 1;
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_INT16:
            return 2;
        case GGUF_TYPE_UINT64:
        case GGUF_TYPE_INT64:
        case GGUF_TYPE_FLOAT64:
            return 8;
        default:
            return 4;
    }
}

// Metadata only.
GgufPtr OpenGguf(const std::string& path) {
    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
    return GgufPtr(gguf_init_from_file(path.c_str(), params));
}

uint32_t U32(const gguf_context* ctx, const char* key) {
    const int64_t id = gguf_find_key(ctx, key);
    EXPECT_GE(id, 0) << key;
    return id < 0 ? 0 : gguf_get_val_u32(ctx, id);
}

std::string Str(const gguf_context* ctx, const char* key) {
    const int64_t id = gguf_find_key(ctx, key);
    EXPECT_GE(id, 0) << key;
    return id < 0 ? "" : gguf_get_val_str(ctx, id);
}

// One tiny model written once, shared by the tests that only read it.
class TinyModel : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir();
        TestModelOptions options;
        options.out = dir_->Sub("tiny.gguf");
        auto info = WriteTestModel(options);
        ASSERT_TRUE(info.ok()) << info.status().ToString();
        info_ = new TestModelInfo(*info);
    }
    static void TearDownTestSuite() {
        delete info_;
        delete dir_;
    }

    static const std::string& path() { return info_->path; }

    static TempDir* dir_;
    static TestModelInfo* info_;
};

TempDir* TinyModel::dir_ = nullptr;
TestModelInfo* TinyModel::info_ = nullptr;

TEST(ParseTestModelSize, AcceptsTinyAndSmall) {
    EXPECT_EQ(*ParseTestModelSize("tiny"), TestModelSize::kTiny);
    EXPECT_EQ(*ParseTestModelSize("small"), TestModelSize::kSmall);
}

TEST(ParseTestModelSize, UnknownSizeIsInvalidArgumentNamingIt) {
    auto size = ParseTestModelSize("huge");
    EXPECT_EQ(size.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(size.status().message(), "'huge'")) << size.status().ToString();
    EXPECT_TRUE(Contains(size.status().message(), "tiny, small"));
}

TEST(DefaultVocabPath, EnvironmentOverridesTheBuiltInPath) {
    ::unsetenv("EVENTLOOM_VOCAB");
    const std::string built_in = DefaultVocabPath();
    EXPECT_TRUE(Contains(built_in, "ggml-vocab-llama-spm.gguf")) << built_in;
    ::setenv("EVENTLOOM_VOCAB", "/elsewhere/vocab.gguf", 1);
    EXPECT_EQ(DefaultVocabPath(), "/elsewhere/vocab.gguf");
    ::unsetenv("EVENTLOOM_VOCAB");
}

TEST_F(TinyModel, InfoDescribesTheFile) {
    EXPECT_EQ(info_->bytes, std::filesystem::file_size(path()));
    // 2 x 32000 x 256 (embeddings, output) + 4 layers x (4 x 256^2 + 3 x 256 x 768) + 9 norms.
    EXPECT_EQ(info_->parameters, 19'794'176);
}

TEST_F(TinyModel, LeavesNoTemporaryFileBehind) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_->path())) {
        names.push_back(entry.path().filename().string());
    }
    EXPECT_EQ(names, std::vector<std::string>{"tiny.gguf"});
}

TEST_F(TinyModel, HasLlamaHyperparameters) {
    GgufPtr ctx = OpenGguf(path());
    ASSERT_TRUE(ctx);
    EXPECT_EQ(Str(ctx.get(), "general.architecture"), "llama");
    EXPECT_EQ(Str(ctx.get(), "general.name"), "eventloom-test-tiny");
    EXPECT_EQ(U32(ctx.get(), "general.file_type"), 1u);  // mostly f16
    EXPECT_EQ(U32(ctx.get(), "llama.context_length"), 32768u);
    EXPECT_EQ(U32(ctx.get(), "llama.embedding_length"), 256u);
    EXPECT_EQ(U32(ctx.get(), "llama.block_count"), 4u);
    EXPECT_EQ(U32(ctx.get(), "llama.feed_forward_length"), 768u);
    EXPECT_EQ(U32(ctx.get(), "llama.attention.head_count"), 4u);
    EXPECT_EQ(U32(ctx.get(), "llama.attention.head_count_kv"), 4u);
    EXPECT_EQ(U32(ctx.get(), "llama.rope.dimension_count"), 64u);
    EXPECT_EQ(U32(ctx.get(), "llama.vocab_size"), 32000u);
    const int64_t eps = gguf_find_key(ctx.get(), "llama.attention.layer_norm_rms_epsilon");
    ASSERT_GE(eps, 0);
    EXPECT_FLOAT_EQ(gguf_get_val_f32(ctx.get(), eps), 1e-5f);
}

TEST_F(TinyModel, TensorsHaveLlamaNamesAndShapes) {
    GgufPtr ctx = OpenGguf(path());
    ASSERT_TRUE(ctx);
    EXPECT_EQ(gguf_get_n_tensors(ctx.get()), 3 + 4 * 9);

    // ggml order: ne[0] is the row length (the input width), ne[1] the number of rows.
    struct Case {
        const char* name;
        int64_t ne0;
        int64_t ne1;
        ggml_type type;
    };
    const Case cases[] = {
        {"token_embd.weight", 256, 32000, GGML_TYPE_F16},
        {"output_norm.weight", 256, 1, GGML_TYPE_F32},
        {"output.weight", 256, 32000, GGML_TYPE_F16},
        {"blk.0.attn_norm.weight", 256, 1, GGML_TYPE_F32},
        {"blk.0.attn_q.weight", 256, 256, GGML_TYPE_F16},
        {"blk.1.attn_k.weight", 256, 256, GGML_TYPE_F16},
        {"blk.2.attn_v.weight", 256, 256, GGML_TYPE_F16},
        {"blk.3.attn_output.weight", 256, 256, GGML_TYPE_F16},
        {"blk.3.ffn_norm.weight", 256, 1, GGML_TYPE_F32},
        {"blk.3.ffn_gate.weight", 256, 768, GGML_TYPE_F16},
        {"blk.3.ffn_up.weight", 256, 768, GGML_TYPE_F16},
        {"blk.3.ffn_down.weight", 768, 256, GGML_TYPE_F16},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const int64_t id = gguf_find_tensor(ctx.get(), c.name);
        ASSERT_GE(id, 0);
        const int64_t* ne = gguf_get_tensor_ne(ctx.get(), id);
        EXPECT_EQ(ne[0], c.ne0);
        EXPECT_EQ(ne[1], c.ne1);
        EXPECT_EQ(ne[2], 1);
        EXPECT_EQ(gguf_get_tensor_type(ctx.get(), id), c.type);
    }
    EXPECT_LT(gguf_find_tensor(ctx.get(), "blk.4.attn_q.weight"), 0);
}

TEST_F(TinyModel, TokenizerEqualsTheVocabFile) {
    GgufPtr model = OpenGguf(path());
    GgufPtr vocab = OpenGguf(DefaultVocabPath());
    ASSERT_TRUE(model);
    ASSERT_TRUE(vocab) << DefaultVocabPath();

    for (int64_t v = 0; v < gguf_get_n_kv(vocab.get()); ++v) {
        const char* key = gguf_get_key(vocab.get(), v);
        if (std::strncmp(key, "tokenizer.", 10) != 0) continue;
        SCOPED_TRACE(key);
        const int64_t m = gguf_find_key(model.get(), key);
        ASSERT_GE(m, 0);
        ASSERT_EQ(gguf_get_kv_type(model.get(), m), gguf_get_kv_type(vocab.get(), v));
        if (gguf_get_kv_type(vocab.get(), v) != GGUF_TYPE_ARRAY) continue;

        const size_t n = gguf_get_arr_n(vocab.get(), v);
        ASSERT_EQ(gguf_get_arr_type(model.get(), m), gguf_get_arr_type(vocab.get(), v));
        ASSERT_EQ(gguf_get_arr_n(model.get(), m), n);
        if (gguf_get_arr_type(vocab.get(), v) == GGUF_TYPE_STRING) {
            for (size_t i = 0; i < n; ++i) {
                ASSERT_STREQ(gguf_get_arr_str(model.get(), m, i),
                             gguf_get_arr_str(vocab.get(), v, i))
                    << "element " << i;
            }
        } else {
            const size_t bytes = n * ElementSize(gguf_get_arr_type(vocab.get(), v));
            EXPECT_EQ(std::memcmp(gguf_get_arr_data(model.get(), m),
                                  gguf_get_arr_data(vocab.get(), v), bytes),
                      0);
        }
    }
    EXPECT_EQ(gguf_get_arr_n(model.get(), gguf_find_key(model.get(), "tokenizer.ggml.tokens")),
              32000u);
}

TEST_F(TinyModel, ChatTemplateIsChatMl) {
    GgufPtr ctx = OpenGguf(path());
    ASSERT_TRUE(ctx);
    const std::string tmpl = Str(ctx.get(), "tokenizer.chat_template");
    EXPECT_TRUE(Contains(tmpl, "'<|im_start|>' + message['role'] + '\\n'")) << tmpl;
    EXPECT_TRUE(Contains(tmpl, "<|im_end|>"));
    EXPECT_TRUE(Contains(tmpl, "{% if add_generation_prompt %}"));
}

TEST_F(TinyModel, NormsAreOnesAndWeightsAreSmallAndCentred) {
    ggml_context* raw = nullptr;
    gguf_init_params params{/*no_alloc=*/false, &raw};
    GgufPtr ctx(gguf_init_from_file(path().c_str(), params));
    GgmlPtr data(raw);
    ASSERT_TRUE(ctx && data);

    const ggml_tensor* norm = ggml_get_tensor(data.get(), "blk.1.ffn_norm.weight");
    ASSERT_NE(norm, nullptr);
    const float* ones = static_cast<const float*>(norm->data);
    for (int64_t i = 0; i < ggml_nelements(norm); ++i) ASSERT_EQ(ones[i], 1.0f) << i;

    const ggml_tensor* w = ggml_get_tensor(data.get(), "blk.1.attn_q.weight");
    ASSERT_NE(w, nullptr);
    const auto* halves = static_cast<const ggml_fp16_t*>(w->data);
    const int64_t n = ggml_nelements(w);
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double x = ggml_fp16_to_fp32(halves[i]);
        sum += x;
        squares += x * x;
    }
    const double mean = sum / n;
    const double stddev = std::sqrt(squares / n - mean * mean);
    EXPECT_NEAR(mean, 0.0, 0.001);
    EXPECT_NEAR(stddev, 0.02, 0.001);
}

class WriteTestModelTest : public ::testing::Test {
protected:
    Result<TestModelInfo> Write(const std::string& name, uint64_t seed = 1) {
        TestModelOptions options;
        options.out = dir_.Sub(name);
        options.seed = seed;
        return WriteTestModel(options);
    }

    Status WriteWith(const std::string& out, const std::string& vocab) {
        TestModelOptions options;
        options.out = out;
        options.vocab = vocab;
        return WriteTestModel(options).status();
    }

    TempDir dir_;
};

TEST_F(WriteTestModelTest, SameSeedWritesSameBytes) {
    ASSERT_TRUE(Write("a.gguf", 7).ok());
    ASSERT_TRUE(Write("b.gguf", 7).ok());
    EXPECT_TRUE(ReadAll(dir_.Sub("a.gguf")) == ReadAll(dir_.Sub("b.gguf")));
}

TEST_F(WriteTestModelTest, DifferentSeedWritesDifferentWeights) {
    ASSERT_TRUE(Write("a.gguf", 1).ok());
    ASSERT_TRUE(Write("b.gguf", 2).ok());
    const std::string a = ReadAll(dir_.Sub("a.gguf"));
    const std::string b = ReadAll(dir_.Sub("b.gguf"));
    ASSERT_EQ(a.size(), b.size());
    EXPECT_TRUE(a != b);
}

TEST_F(WriteTestModelTest, ExistingFileIsReplaced) {
    ASSERT_TRUE(Write("model.gguf", 1).ok());
    ASSERT_TRUE(Write("model.gguf", 2).ok());
    ASSERT_TRUE(Write("fresh.gguf", 2).ok());
    EXPECT_TRUE(ReadAll(dir_.Sub("model.gguf")) == ReadAll(dir_.Sub("fresh.gguf")));
}

TEST_F(WriteTestModelTest, SmallIsQ8_0With134MParameters) {
    TestModelOptions options;
    options.size = TestModelSize::kSmall;
    options.out = dir_.Sub("small.gguf");
    auto info = WriteTestModel(options);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    // 2 x 32000 x 768 + 12 x (4 x 768^2 + 3 x 768 x 2048) + 25 norms of 768.
    EXPECT_EQ(info->parameters, 134'105'856);

    GgufPtr ctx = OpenGguf(options.out);
    ASSERT_TRUE(ctx);
    EXPECT_EQ(Str(ctx.get(), "general.name"), "eventloom-test-small");
    EXPECT_EQ(U32(ctx.get(), "general.file_type"), 7u);  // mostly q8_0
    EXPECT_EQ(U32(ctx.get(), "llama.block_count"), 12u);
    EXPECT_EQ(U32(ctx.get(), "llama.attention.head_count"), 12u);
    EXPECT_EQ(gguf_get_n_tensors(ctx.get()), 3 + 12 * 9);
    const int64_t down = gguf_find_tensor(ctx.get(), "blk.11.ffn_down.weight");
    ASSERT_GE(down, 0);
    EXPECT_EQ(gguf_get_tensor_type(ctx.get(), down), GGML_TYPE_Q8_0);
    EXPECT_EQ(gguf_get_tensor_ne(ctx.get(), down)[0], 2048);
    EXPECT_EQ(gguf_get_tensor_ne(ctx.get(), down)[1], 768);
}

TEST_F(WriteTestModelTest, MissingVocabIsNotFoundWithTheRemedy) {
    const std::string vocab = dir_.Sub("no-such-vocab.gguf");
    Status status = WriteWith(dir_.Sub("m.gguf"), vocab);
    EXPECT_EQ(status.code(), StatusCode::kNotFound);
    EXPECT_TRUE(Contains(status.message(), vocab)) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "--vocab"));
    EXPECT_TRUE(Contains(status.message(), "EVENTLOOM_VOCAB"));
    EXPECT_TRUE(Contains(status.message(), "scripts/setup.sh"));
    EXPECT_FALSE(std::filesystem::exists(dir_.Sub("m.gguf")));
}

TEST_F(WriteTestModelTest, NonGgufVocabIsInvalidArgument) {
    const std::string vocab = dir_.Sub("vocab.txt");
    std::ofstream(vocab) << "hello world\n";
    Status status = WriteWith(dir_.Sub("m.gguf"), vocab);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(status.message(), vocab)) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "not a GGUF file"));
    EXPECT_FALSE(std::filesystem::exists(dir_.Sub("m.gguf")));
}

TEST_F(WriteTestModelTest, VocabWithoutTokenizerIsInvalidArgument) {
    const std::string vocab = dir_.Sub("no-tokenizer.gguf");
    GgufPtr ctx(gguf_init_empty());
    gguf_set_val_str(ctx.get(), "general.architecture", "llama");
    ASSERT_TRUE(gguf_write_to_file(ctx.get(), vocab.c_str(), /*only_meta=*/false));

    Status status = WriteWith(dir_.Sub("m.gguf"), vocab);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(status.message(), vocab)) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "tokenizer.ggml.tokens"));
}

TEST_F(WriteTestModelTest, MissingOutputDirIsNotFound) {
    const std::string out = dir_.Sub("missing/m.gguf");
    Status status = WriteWith(out, "");
    EXPECT_EQ(status.code(), StatusCode::kNotFound);
    EXPECT_TRUE(Contains(status.message(), out)) << status.ToString();
}

TEST_F(WriteTestModelTest, OutputDirThatIsAFileIsFailedPrecondition) {
    std::ofstream(dir_.Sub("file")) << "x";
    const std::string out = dir_.Sub("file/m.gguf");
    Status status = WriteWith(out, "");
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
    EXPECT_TRUE(Contains(status.message(), out)) << status.ToString();
}

TEST_F(WriteTestModelTest, ReadOnlyOutputDirIsFailedPrecondition) {
    const std::string ro = dir_.Sub("ro");
    std::filesystem::create_directory(ro);
    ::chmod(ro.c_str(), 0555);
    if (::access(ro.c_str(), W_OK) == 0) {
        // Root writes into read-only directories; a folder no one can create files in
        // still fails, with the path named.
        ::chmod(ro.c_str(), 0755);
        const std::string proc = "/proc/eventloom-test-model.gguf";
        Status status = WriteWith(proc, "");
        EXPECT_FALSE(status.ok());
        EXPECT_TRUE(Contains(status.message(), proc)) << status.ToString();
        return;
    }
    const std::string out = ro + "/m.gguf";
    Status status = WriteWith(out, "");
    ::chmod(ro.c_str(), 0755);
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
    EXPECT_TRUE(Contains(status.message(), out)) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "not writable"));
}

TEST_F(WriteTestModelTest, EmptyOutputPathIsInvalidArgument) {
    EXPECT_EQ(WriteWith("", "").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace eventloom::llm
