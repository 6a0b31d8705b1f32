#include "llm/llama/llama_embedder.h"

#include <llama.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "llm/llama/llama_support.h"

namespace eventloom::llm {
namespace {

// llama_pooling_type names both the enum and a function of llama.h.
using PoolingType = enum llama_pooling_type;

constexpr int kMinContext = 8;
constexpr int kMaxDefaultContext = 8192;
constexpr int kMaxSequences = 256;  // llama.cpp's LLAMA_MAX_SEQ

std::string_view PoolingName(PoolingType pooling) {
    switch (pooling) {
        case LLAMA_POOLING_TYPE_MEAN:
            return "mean";
        case LLAMA_POOLING_TYPE_CLS:
            return "cls";
        case LLAMA_POOLING_TYPE_LAST:
            return "last";
        default:
            return "other";
    }
}

// A GGUF metadata value as a string; nullopt when the key is absent.
std::optional<std::string> MetaValue(const llama_model* model, const std::string& key) {
    char buf[256];
    if (llama_model_meta_val_str(model, key.c_str(), buf, sizeof(buf)) < 0) return std::nullopt;
    return std::string(buf);
}

// The pooling to run with: the option's, or the model's <arch>.pooling_type (mean when it has
// none, or "none", which gives no vector per sequence).
Result<PoolingType> ResolvePooling(const llama_model* model, EmbeddingPooling option,
                                   const std::string& path) {
    switch (option) {
        case EmbeddingPooling::kMean:
            return LLAMA_POOLING_TYPE_MEAN;
        case EmbeddingPooling::kCls:
            return LLAMA_POOLING_TYPE_CLS;
        case EmbeddingPooling::kLast:
            return LLAMA_POOLING_TYPE_LAST;
        case EmbeddingPooling::kModel:
            break;
    }

    const std::optional<std::string> arch = MetaValue(model, "general.architecture");
    const std::optional<std::string> value =
        arch ? MetaValue(model, *arch + ".pooling_type") : std::nullopt;
    if (!value) return LLAMA_POOLING_TYPE_MEAN;
    int type = -1;
    const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), type);
    if (ec != std::errc() || end != value->data() + value->size()) type = -1;
    switch (type) {
        case LLAMA_POOLING_TYPE_NONE:
        case LLAMA_POOLING_TYPE_MEAN:
            return LLAMA_POOLING_TYPE_MEAN;
        case LLAMA_POOLING_TYPE_CLS:
            return LLAMA_POOLING_TYPE_CLS;
        case LLAMA_POOLING_TYPE_LAST:
            return LLAMA_POOLING_TYPE_LAST;
        case LLAMA_POOLING_TYPE_RANK:
            return InvalidArgumentError("llama: model '" + path +
                                        "' is a reranker (rank pooling), not an embedding model");
        default:
            return InvalidArgumentError("llama: model '" + path +
                                        "' has an unknown pooling type '" + *value +
                                        "'; set the pooling option");
    }
}

// One text's tokens and where its vector goes.
struct Sequence {
    size_t index = 0;
    std::vector<llama_token> tokens;
};

class LlamaEmbedder final : public TextEmbedder {
public:
    // Takes ownership of the model and the context (the context is freed first).
    LlamaEmbedder(LlamaModelPtr model, LlamaContextPtr ctx, int context, int max_sequences,
                  std::string fingerprint)
        : model_(std::move(model)),
          ctx_(std::move(ctx)),
          vocab_(llama_model_get_vocab(model_.get())),
          dimension_(llama_model_n_embd_out(model_.get())),
          context_(context),
          max_sequences_(max_sequences),
          fingerprint_(std::move(fingerprint)),
          batch_(llama_batch_init(context, 0, 1)) {}

    ~LlamaEmbedder() override { llama_batch_free(batch_); }

    LlamaEmbedder(const LlamaEmbedder&) = delete;
    LlamaEmbedder& operator=(const LlamaEmbedder&) = delete;

    int dimension() const override { return dimension_; }
    std::string fingerprint() const override { return fingerprint_; }

    Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
        std::vector<std::vector<float>> out(texts.size(),
                                            std::vector<float>(static_cast<size_t>(dimension_)));

        // Tokenize on the caller's thread; empty texts keep their zero vector.
        std::vector<Sequence> sequences;
        for (size_t i = 0; i < texts.size(); ++i) {
            if (texts[i].empty()) continue;
            Sequence sequence{i, TokenizeText(vocab_, texts[i], true, false)};
            if (sequence.tokens.empty()) continue;
            Truncate(sequence.tokens);
            sequences.push_back(std::move(sequence));
        }
        if (sequences.empty()) return out;

        // Pack sequences into batches of at most context_ tokens and max_sequences_ texts.
        std::lock_guard<std::mutex> lock(mu_);
        size_t first = 0;
        while (first < sequences.size()) {
            size_t last = first;
            size_t tokens = 0;
            while (last < sequences.size() && last - first < static_cast<size_t>(max_sequences_) &&
                   tokens + sequences[last].tokens.size() <= static_cast<size_t>(context_)) {
                tokens += sequences[last].tokens.size();
                ++last;
            }
            EVENTLOOM_RETURN_IF_ERROR(DecodeLocked(
                std::span<const Sequence>(sequences.data() + first, last - first), out));
            first = last;
        }
        return out;
    }

private:
    // Cuts `tokens` to the context, keeping a final EOS/SEP the tokenizer added: BERT-style
    // models read their pooled vector from a sequence that ends the way they were trained on.
    void Truncate(std::vector<llama_token>& tokens) const {
        if (tokens.size() <= static_cast<size_t>(context_)) return;
        const llama_token end = tokens.back();
        const bool added_end =
            (llama_vocab_get_add_eos(vocab_) && end == llama_vocab_eos(vocab_)) ||
            (llama_vocab_get_add_sep(vocab_) && end == llama_vocab_sep(vocab_));
        logging::Get("llm")->debug("llama embedder: text of {} tokens truncated to {}",
                                   tokens.size(), context_);
        tokens.resize(static_cast<size_t>(context_));
        if (added_end) tokens.back() = end;
    }

    // Decodes `batch` (one sequence per text, numbered from 0) and writes each text's pooled,
    // normalised vector into `out`. REQUIRES: mu_ held; the sequences fit in one batch.
    Status DecodeLocked(std::span<const Sequence> batch, std::vector<std::vector<float>>& out) {
        batch_.n_tokens = 0;
        for (size_t s = 0; s < batch.size(); ++s) {
            const std::vector<llama_token>& tokens = batch[s].tokens;
            for (size_t pos = 0; pos < tokens.size(); ++pos) {
                const int32_t n = batch_.n_tokens++;
                batch_.token[n] = tokens[pos];
                batch_.pos[n] = static_cast<llama_pos>(pos);
                batch_.n_seq_id[n] = 1;
                batch_.seq_id[n][0] = static_cast<llama_seq_id>(s);
                batch_.logits[n] = true;  // pooling reads every token's output
            }
        }

        // Each batch starts from an empty memory: sequence ids are reused.
        llama_memory_clear(llama_get_memory(ctx_.get()), true);
        const int rc = llama_decode(ctx_.get(), batch_);
        if (rc != 0) {
            return InternalError("llama embedder: decoding " + std::to_string(batch.size()) +
                                 " texts of " + std::to_string(batch_.n_tokens) +
                                 " tokens failed (llama_decode returned " + std::to_string(rc) +
                                 ")");
        }

        for (size_t s = 0; s < batch.size(); ++s) {
            const float* embedding =
                llama_get_embeddings_seq(ctx_.get(), static_cast<llama_seq_id>(s));
            if (embedding == nullptr) {
                return InternalError("llama embedder: no pooled vector for sequence " +
                                     std::to_string(s) + " (" + fingerprint_ + ")");
            }
            std::vector<float>& v = out[batch[s].index];
            v.assign(embedding, embedding + dimension_);
            NormalizeL2(v);
        }
        return Status::Ok();
    }

    const LlamaModelPtr model_;
    const LlamaContextPtr ctx_;
    const llama_vocab* const vocab_;
    const int dimension_;
    const int context_;
    const int max_sequences_;
    const std::string fingerprint_;

    std::mutex mu_;
    llama_batch batch_;  // guarded by mu_, as is the use of ctx_
};

Status ValidateOptions(const LlamaEmbedderOptions& o) {
    if (o.context != 0 && o.context < kMinContext) {
        return InvalidArgumentError("llama embedder: context must be 0 or >= " +
                                    std::to_string(kMinContext));
    }
    if (o.max_sequences < 1 || o.max_sequences > kMaxSequences) {
        return InvalidArgumentError("llama embedder: max_sequences must be in 1.." +
                                    std::to_string(kMaxSequences));
    }
    return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<TextEmbedder>> OpenLlamaEmbedder(const LlamaEmbedderOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateOptions(options));
    const std::string& path = options.model_path;
    EVENTLOOM_ASSIGN_OR_RETURN(LlamaModelPtr model, LoadLlamaModel(path, options.gpu_layers));
    if (llama_model_has_encoder(model.get()) && llama_model_has_decoder(model.get())) {
        return InvalidArgumentError("llama: model '" + path +
                                    "' is an encoder-decoder model; embeddings need an encoder "
                                    "or a decoder alone");
    }
    EVENTLOOM_ASSIGN_OR_RETURN(PoolingType pooling,
                               ResolvePooling(model.get(), options.pooling, path));

    // One sequence fills at most the whole context, in one micro-batch.
    int context = options.context;
    if (context == 0) {
        context = std::clamp(llama_model_n_ctx_train(model.get()), kMinContext, kMaxDefaultContext);
    }
    const int threads = options.threads > 0
                            ? options.threads
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.pooling_type = pooling;
    cp.n_ctx = static_cast<uint32_t>(context);
    cp.n_batch = static_cast<uint32_t>(context);
    cp.n_ubatch = static_cast<uint32_t>(context);
    cp.n_seq_max = static_cast<uint32_t>(options.max_sequences);
    // One KV buffer for all sequences, so that any one of them may use the whole context.
    cp.kv_unified = true;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.no_perf = true;
    EVENTLOOM_ASSIGN_OR_RETURN(LlamaContextPtr ctx, NewLlamaContext(model.get(), cp, path));

    const int dimension = llama_model_n_embd_out(model.get());
    const std::string file = std::filesystem::path(path).filename().string();
    std::string fingerprint =
        "llama/" + file + "/" + std::to_string(dimension) + "/" + std::string(PoolingName(pooling));
    logging::Get("llm")->info(
        "llama embedder: loaded model={} dimension={} pooling={} context={} threads={}", file,
        dimension, PoolingName(pooling), context, threads);
    return std::unique_ptr<TextEmbedder>(new LlamaEmbedder(
        std::move(model), std::move(ctx), context, options.max_sequences, std::move(fingerprint)));
}

}  // namespace eventloom::llm
