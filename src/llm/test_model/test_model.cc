#include "llm/test_model/test_model.h"

#include <ggml.h>
#include <gguf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "common/file.h"
#include "common/logging.h"

#ifndef EVENTLOOM_DEFAULT_VOCAB
#define EVENTLOOM_DEFAULT_VOCAB "ggml-vocab-llama-spm.gguf"
#endif

namespace eventloom::llm {
namespace {

// The shape of a test model. `file_type` is llama.cpp's general.file_type for the weight
// type: 1 means "mostly f16", 7 "mostly q8_0" (norms stay f32 in both).
struct Shape {
    const char* name;
    int64_t embd;
    int64_t layers;
    int64_t heads;
    int64_t heads_kv;
    int64_t ffn;
    ggml_type weight_type;
    uint32_t file_type;
};

constexpr Shape kTinyShape{"eventloom-test-tiny", 256, 4, 4, 4, 768, GGML_TYPE_F16, 1};
constexpr Shape kSmallShape{"eventloom-test-small", 768, 12, 12, 12, 2048, GGML_TYPE_Q8_0, 7};

constexpr uint32_t kContextLength = 32768;
constexpr float kRmsNormEpsilon = 1e-5f;
constexpr float kWeightStddev = 0.02f;
// Weights are generated, encoded and written this many values at a time.
constexpr int64_t kChunkValues = int64_t{1} << 20;

// ChatML, which llama.cpp recognises by its markers and its Jinja engine renders as is.
constexpr char kChatTemplate[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct GgufFree {
    void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufFree>;

struct GgmlFree {
    void operator()(ggml_context* ctx) const { ggml_free(ctx); }
};
using GgmlPtr = std::unique_ptr<ggml_context, GgmlFree>;

const Shape& ShapeOf(TestModelSize size) {
    return size == TestModelSize::kSmall ? kSmallShape : kTinyShape;
}

// ---- weights ------------------------------------------------------------------------------

uint64_t SplitMix64(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// xoshiro256** seeded through splitmix64, one independent stream per tensor, so a tensor's
// values depend only on the seed and the tensor's position, not on how it is chunked.
class NormalRng {
public:
    NormalRng(uint64_t seed, uint64_t stream) {
        uint64_t state = seed ^ (0xD1B54A32D192ED03ull * (stream + 1));
        for (uint64_t& word : s_) word = SplitMix64(state);
    }

    // Fills out[0, n) with N(0, stddev) by Box-Muller, one 64-bit draw per pair of values.
    void Fill(float* out, int64_t n, float stddev) {
        constexpr float kTwoPi = 6.28318530717958647692f;
        for (int64_t i = 0; i < n; i += 2) {
            const uint64_t bits = Next();
            const float u1 = static_cast<float>((bits >> 40) + 1) * 0x1p-24f;  // (0, 1]
            const float u2 = static_cast<float>((bits >> 8) & 0xFFFFFF) * 0x1p-24f;
            const float radius = stddev * std::sqrt(-2.0f * std::log(u1));
            out[i] = radius * std::cos(kTwoPi * u2);
            if (i + 1 < n) out[i + 1] = radius * std::sin(kTwoPi * u2);
        }
    }

private:
    static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    uint64_t Next() {
        const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = Rotl(s_[3], 45);
        return result;
    }

    uint64_t s_[4];
};

// One tensor of the model, in ggml's order: `cols` (ne[0]) is the length of a row, that is
// the input width of a [out, in] matrix; `rows` (ne[1]) is 1 for the norm vectors.
struct TensorPlan {
    std::string name;
    int64_t cols;
    int64_t rows;
    ggml_type type;
};

std::vector<TensorPlan> PlanTensors(const Shape& s, int64_t n_vocab) {
    const int64_t kv_width = s.embd / s.heads * s.heads_kv;
    const ggml_type w = s.weight_type;
    std::vector<TensorPlan> plan;
    plan.push_back({"token_embd.weight", s.embd, n_vocab, w});
    for (int64_t layer = 0; layer < s.layers; ++layer) {
        const std::string blk = "blk." + std::to_string(layer) + ".";
        plan.push_back({blk + "attn_norm.weight", s.embd, 1, GGML_TYPE_F32});
        plan.push_back({blk + "attn_q.weight", s.embd, s.embd, w});
        plan.push_back({blk + "attn_k.weight", s.embd, kv_width, w});
        plan.push_back({blk + "attn_v.weight", s.embd, kv_width, w});
        plan.push_back({blk + "attn_output.weight", s.embd, s.embd, w});
        plan.push_back({blk + "ffn_norm.weight", s.embd, 1, GGML_TYPE_F32});
        plan.push_back({blk + "ffn_gate.weight", s.embd, s.ffn, w});
        plan.push_back({blk + "ffn_down.weight", s.ffn, s.embd, w});
        plan.push_back({blk + "ffn_up.weight", s.embd, s.ffn, w});
    }
    plan.push_back({"output_norm.weight", s.embd, 1, GGML_TYPE_F32});
    plan.push_back({"output.weight", s.embd, n_vocab, w});
    return plan;
}

// Encodes `rows` rows of `cols` floats as `type` into `out`.
void Encode(ggml_type type, const float* values, int64_t rows, int64_t cols,
            std::vector<char>& out) {
    out.resize(ggml_row_size(type, cols) * rows);
    if (type == GGML_TYPE_F32) {
        std::memcpy(out.data(), values, out.size());
    } else if (type == GGML_TYPE_F16) {
        ggml_fp32_to_fp16_row(values, reinterpret_cast<ggml_fp16_t*>(out.data()), rows * cols);
    } else {
        ggml_quantize_chunk(type, values, out.data(), 0, rows, cols, nullptr);
    }
}

// Writes the data of tensor `index` at `offset` and advances `offset` past it and its padding.
Status WriteTensorData(File& file, const TensorPlan& t, uint64_t seed, uint64_t index,
                       size_t alignment, uint64_t& offset) {
    const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkValues / t.cols);
    std::vector<float> values(rows_per_chunk * t.cols);
    std::vector<char> bytes;
    NormalRng rng(seed, index);

    for (int64_t row = 0; row < t.rows; row += rows_per_chunk) {
        const int64_t rows = std::min(rows_per_chunk, t.rows - row);
        if (t.rows == 1) {
            std::fill(values.begin(), values.end(), 1.0f);  // a norm: start as the identity
        } else {
            rng.Fill(values.data(), rows * t.cols, kWeightStddev);
        }
        Encode(t.type, values.data(), rows, t.cols, bytes);
        EVENTLOOM_RETURN_IF_ERROR(
            file.WriteAt(offset, std::string_view(bytes.data(), bytes.size())));
        offset += bytes.size();
    }

    // GGUF aligns every tensor's data, the last one included.
    const uint64_t padded = (offset + alignment - 1) / alignment * alignment;
    if (padded > offset) {
        EVENTLOOM_RETURN_IF_ERROR(file.WriteAt(offset, std::string(padded - offset, '\0')));
        offset = padded;
    }
    return Status::Ok();
}

// ---- metadata -----------------------------------------------------------------------------

Status VocabNotFound(const std::string& path) {
    return NotFoundError("vocab file '" + path +
                         "' not found; pass --vocab FILE or set EVENTLOOM_VOCAB "
                         "(scripts/setup.sh installs the llama.cpp vocab files)");
}

// Opens `path` for its metadata only, after checking that it is a GGUF file with a tokenizer.
Result<GgufPtr> OpenVocab(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return VocabNotFound(path);
        return FailedPreconditionError("vocab file '" + path + "': " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return InvalidArgumentError("vocab file '" + path + "' is not a regular file");
    }

    // Check the magic ourselves: gguf_init_from_file would only log why it failed.
    char magic[4] = {};
    std::ifstream in(path, std::ios::binary);
    if (!in.read(magic, sizeof(magic)) || std::memcmp(magic, "GGUF", 4) != 0) {
        return InvalidArgumentError("vocab file '" + path + "' is not a GGUF file");
    }

    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
    GgufPtr vocab(gguf_init_from_file(path.c_str(), params));
    if (!vocab) {
        return DataLossError("vocab file '" + path + "' is a truncated or corrupt GGUF file");
    }
    const int64_t tokens = gguf_find_key(vocab.get(), "tokenizer.ggml.tokens");
    if (gguf_find_key(vocab.get(), "tokenizer.ggml.model") < 0 || tokens < 0 ||
        gguf_get_kv_type(vocab.get(), tokens) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(vocab.get(), tokens) != GGUF_TYPE_STRING ||
        gguf_get_arr_n(vocab.get(), tokens) == 0) {
        return InvalidArgumentError("vocab file '" + path +
                                    "' has no tokenizer (tokenizer.ggml.model and "
                                    "tokenizer.ggml.tokens are required)");
    }
    return vocab;
}

int64_t VocabSize(const gguf_context* vocab) {
    return static_cast<int64_t>(
        gguf_get_arr_n(vocab, gguf_find_key(vocab, "tokenizer.ggml.tokens")));
}

// Copies the array under key `id` of `from` into `to`.
Status CopyArray(const gguf_context* from, int64_t id, gguf_context* to) {
    const char* key = gguf_get_key(from, id);
    const gguf_type type = gguf_get_arr_type(from, id);
    const size_t n = gguf_get_arr_n(from, id);
    if (type == GGUF_TYPE_ARRAY) {
        return UnimplementedError(std::string("nested array under key ") + key);
    }
    if (type != GGUF_TYPE_STRING) {
        gguf_set_arr_data(to, key, type, gguf_get_arr_data(from, id), n);
        return Status::Ok();
    }
    std::vector<const char*> strings(n);
    for (size_t i = 0; i < n; ++i) strings[i] = gguf_get_arr_str(from, id, i);
    gguf_set_arr_str(to, key, strings.data(), n);
    return Status::Ok();
}

// Copies the value under key `id` of `from` into `to`, whatever its type.
Status CopyKey(const gguf_context* from, int64_t id, gguf_context* to) {
    const char* key = gguf_get_key(from, id);
    switch (gguf_get_kv_type(from, id)) {
        case GGUF_TYPE_UINT8:
            gguf_set_val_u8(to, key, gguf_get_val_u8(from, id));
            break;
        case GGUF_TYPE_INT8:
            gguf_set_val_i8(to, key, gguf_get_val_i8(from, id));
            break;
        case GGUF_TYPE_UINT16:
            gguf_set_val_u16(to, key, gguf_get_val_u16(from, id));
            break;
        case GGUF_TYPE_INT16:
            gguf_set_val_i16(to, key, gguf_get_val_i16(from, id));
            break;
        case GGUF_TYPE_UINT32:
            gguf_set_val_u32(to, key, gguf_get_val_u32(from, id));
            break;
        case GGUF_TYPE_INT32:
            gguf_set_val_i32(to, key, gguf_get_val_i32(from, id));
            break;
        case GGUF_TYPE_FLOAT32:
            gguf_set_val_f32(to, key, gguf_get_val_f32(from, id));
            break;
        case GGUF_TYPE_UINT64:
            gguf_set_val_u64(to, key, gguf_get_val_u64(from, id));
            break;
        case GGUF_TYPE_INT64:
            gguf_set_val_i64(to, key, gguf_get_val_i64(from, id));
            break;
        case GGUF_TYPE_FLOAT64:
            gguf_set_val_f64(to, key, gguf_get_val_f64(from, id));
            break;
        case GGUF_TYPE_BOOL:
            gguf_set_val_bool(to, key, gguf_get_val_bool(from, id));
            break;
        case GGUF_TYPE_STRING:
            gguf_set_val_str(to, key, gguf_get_val_str(from, id));
            break;
        case GGUF_TYPE_ARRAY:
            return CopyArray(from, id, to);
        default:
            return UnimplementedError(std::string("unknown value type under key ") + key);
    }
    return Status::Ok();
}

// The model's keys: the llama hyperparameters, then every tokenizer.* key of the vocab file,
// then our chat template.
Result<GgufPtr> BuildMetadata(const Shape& s, const gguf_context* vocab,
                              const std::string& vocab_path) {
    GgufPtr model(gguf_init_empty());
    gguf_context* m = model.get();
    gguf_set_val_str(m, "general.architecture", "llama");
    gguf_set_val_str(m, "general.name", s.name);
    gguf_set_val_u32(m, "general.file_type", s.file_type);
    gguf_set_val_u32(m, "llama.vocab_size", static_cast<uint32_t>(VocabSize(vocab)));
    gguf_set_val_u32(m, "llama.context_length", kContextLength);
    gguf_set_val_u32(m, "llama.embedding_length", static_cast<uint32_t>(s.embd));
    gguf_set_val_u32(m, "llama.block_count", static_cast<uint32_t>(s.layers));
    gguf_set_val_u32(m, "llama.feed_forward_length", static_cast<uint32_t>(s.ffn));
    gguf_set_val_u32(m, "llama.attention.head_count", static_cast<uint32_t>(s.heads));
    gguf_set_val_u32(m, "llama.attention.head_count_kv", static_cast<uint32_t>(s.heads_kv));
    gguf_set_val_u32(m, "llama.rope.dimension_count", static_cast<uint32_t>(s.embd / s.heads));
    gguf_set_val_f32(m, "llama.attention.layer_norm_rms_epsilon", kRmsNormEpsilon);

    for (int64_t id = 0; id < gguf_get_n_kv(vocab); ++id) {
        if (std::strncmp(gguf_get_key(vocab, id), "tokenizer.", 10) != 0) continue;
        Status copied = CopyKey(vocab, id, m);
        if (!copied.ok()) return copied.WithContext("vocab file '" + vocab_path + "'");
    }
    gguf_set_val_str(m, "tokenizer.chat_template", kChatTemplate);
    return model;
}

// Describes every tensor (name, type, shape) in `model`; gguf computes the data offsets.
void AddTensorInfo(gguf_context* model, const std::vector<TensorPlan>& plan) {
    ggml_init_params params{ggml_tensor_overhead() * (plan.size() + 1), nullptr,
                            /*no_alloc=*/true};
    GgmlPtr ctx(ggml_init(params));
    for (const TensorPlan& t : plan) {
        ggml_tensor* tensor = t.rows == 1 ? ggml_new_tensor_1d(ctx.get(), t.type, t.cols)
                                          : ggml_new_tensor_2d(ctx.get(), t.type, t.cols, t.rows);
        ggml_set_name(tensor, t.name.c_str());
        gguf_add_tensor(model, tensor);  // copies the descriptor
    }
}

// ---- the file -----------------------------------------------------------------------------

std::string DirName(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

Status CheckOutput(const std::string& out) {
    const std::string dir = DirName(out);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        return NotFoundError("output directory '" + dir + "' of '" + out + "' does not exist");
    }
    if (!S_ISDIR(st.st_mode)) {
        return FailedPreconditionError("output directory '" + dir + "' of '" + out +
                                       "' is not a directory");
    }
    if (::access(dir.c_str(), W_OK) != 0) {
        return FailedPreconditionError("output directory '" + dir + "' of '" + out +
                                       "' is not writable");
    }
    if (::stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return InvalidArgumentError("output '" + out + "' is a directory");
    }
    return Status::Ok();
}

// Writes metadata and tensor data to `path` and syncs it. Returns the file's size.
Result<uint64_t> WriteFile(const std::string& path, const gguf_context* model,
                           const std::vector<TensorPlan>& plan, uint64_t seed) {
    std::vector<char> meta(gguf_get_meta_size(model));
    gguf_get_meta_data(model, meta.data());

    EVENTLOOM_ASSIGN_OR_RETURN(auto file, FileSystem::Default()->Open(path, OpenMode::kReadWrite));
    EVENTLOOM_RETURN_IF_ERROR(file->Truncate(0));
    EVENTLOOM_RETURN_IF_ERROR(file->WriteAt(0, std::string_view(meta.data(), meta.size())));

    uint64_t offset = meta.size();
    const size_t alignment = gguf_get_alignment(model);
    for (size_t i = 0; i < plan.size(); ++i) {
        if (offset != meta.size() + gguf_get_tensor_offset(model, static_cast<int64_t>(i))) {
            return InternalError("tensor " + plan[i].name + " would be written at byte " +
                                 std::to_string(offset) + ", not where its header says");
        }
        EVENTLOOM_RETURN_IF_ERROR(WriteTensorData(*file, plan[i], seed, i, alignment, offset));
    }
    EVENTLOOM_RETURN_IF_ERROR(file->Sync());
    return offset;
}

}  // namespace

Result<TestModelSize> ParseTestModelSize(std::string_view text) {
    if (text == "tiny") return TestModelSize::kTiny;
    if (text == "small") return TestModelSize::kSmall;
    return InvalidArgumentError("test model size '" + std::string(text) +
                                "' is not one of: tiny, small");
}

std::string_view TestModelSizeName(TestModelSize size) {
    return size == TestModelSize::kSmall ? "small" : "tiny";
}

std::string DefaultVocabPath() {
    const char* env = std::getenv("EVENTLOOM_VOCAB");
    if (env != nullptr && *env != '\0') return env;
    return EVENTLOOM_DEFAULT_VOCAB;
}

Result<TestModelInfo> WriteTestModel(const TestModelOptions& options) {
    if (options.out.empty()) return InvalidArgumentError("test model output path is empty");
    const Shape& shape = ShapeOf(options.size);
    const std::string vocab_path = options.vocab.empty() ? DefaultVocabPath() : options.vocab;

    // Everything that can be wrong with the inputs is found before a byte is written.
    EVENTLOOM_ASSIGN_OR_RETURN(GgufPtr vocab, OpenVocab(vocab_path));
    EVENTLOOM_ASSIGN_OR_RETURN(GgufPtr model, BuildMetadata(shape, vocab.get(), vocab_path));
    const std::vector<TensorPlan> plan = PlanTensors(shape, VocabSize(vocab.get()));
    AddTensorInfo(model.get(), plan);
    EVENTLOOM_RETURN_IF_ERROR(CheckOutput(options.out));

    // A temporary name unique to this call, renamed over `out` once complete and synced.
    static std::atomic<uint64_t> next_tmp{0};
    const std::string tmp = options.out + ".tmp." + std::to_string(::getpid()) + "." +
                            std::to_string(next_tmp.fetch_add(1));
    FileSystem* fs = FileSystem::Default();
    Result<uint64_t> bytes = WriteFile(tmp, model.get(), plan, options.seed);
    Status done = bytes.ok() ? fs->Rename(tmp, options.out) : bytes.status();
    if (done.ok()) done = fs->SyncDir(DirName(options.out));
    if (!done.ok()) {
        fs->Remove(tmp).IgnoreError();
        return done.WithContext("writing test model '" + options.out + "'");
    }

    TestModelInfo info;
    for (const TensorPlan& t : plan) info.parameters += t.cols * t.rows;
    info.bytes = *bytes;
    info.path = options.out;
    logging::Get("llm")->debug("wrote test model path={} size={} parameters={} bytes={}", info.path,
                               TestModelSizeName(options.size), info.parameters, info.bytes);
    return info;
}

}  // namespace eventloom::llm
