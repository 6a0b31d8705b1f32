#include "llm/llama/llama_support.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "common/logging.h"

namespace eventloom::llm {
namespace {

// llama.cpp's and ggml's log, into ours. Their info level is chatty (every tensor at load):
// it becomes debug. While a thread loads a model or creates a context, warnings and errors are
// also collected so the Status can say why it failed.
thread_local std::string* t_load_errors = nullptr;

void LogToSpdlog(ggml_log_level level, const char* text, void*) {
    static const auto log = logging::Get("llama");
    std::string_view t(text ? text : "");
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
    if (t.empty()) return;
    switch (level) {
        case GGML_LOG_LEVEL_ERROR:
            if (t_load_errors) t_load_errors->append(t).append("; ");
            log->error("{}", t);
            break;
        case GGML_LOG_LEVEL_WARN:
            if (t_load_errors) t_load_errors->append(t).append("; ");
            log->warn("{}", t);
            break;
        case GGML_LOG_LEVEL_INFO:
            log->debug("{}", t);
            break;
        default:
            log->trace("{}", t);
            break;
    }
}

// Collects llama.cpp's warnings and errors on this thread while it lives.
class LoadErrors {
public:
    LoadErrors() { t_load_errors = &text_; }
    ~LoadErrors() { t_load_errors = nullptr; }
    LoadErrors(const LoadErrors&) = delete;
    LoadErrors& operator=(const LoadErrors&) = delete;

    // What was collected, without the last separator.
    std::string Take() {
        t_load_errors = nullptr;
        if (text_.size() >= 2) text_.resize(text_.size() - 2);
        return std::move(text_);
    }

private:
    std::string text_;
};

}  // namespace

void InitLlamaOnce() {
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(LogToSpdlog, nullptr);
        llama_backend_init();
    });
}

Result<LlamaModelPtr> LoadLlamaModel(const std::string& path, int gpu_layers) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        return NotFoundError("llama: model file '" + path + "' does not exist");
    }
    InitLlamaOnce();

    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = gpu_layers;
    LoadErrors errors;
    LlamaModelPtr model(llama_model_load_from_file(path.c_str(), params));
    if (!model) {
        std::string why = errors.Take();
        return InvalidArgumentError("llama: cannot load model '" + path +
                                    "': " + (why.empty() ? "not a usable GGUF model" : why));
    }
    return model;
}

Result<LlamaContextPtr> NewLlamaContext(llama_model* model, const llama_context_params& params,
                                        const std::string& path) {
    LoadErrors errors;
    LlamaContextPtr ctx(llama_init_from_model(model, params));
    if (!ctx) {
        return ResourceExhaustedError("llama: cannot create a context of " +
                                      std::to_string(params.n_ctx) + " tokens for '" + path +
                                      "': " + errors.Take());
    }
    return ctx;
}

std::vector<llama_token> TokenizeText(const llama_vocab* vocab, std::string_view text,
                                      bool add_special, bool parse_special) {
    std::vector<llama_token> tokens(text.size() + 8);
    auto tokenize = [&] {
        return llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                              static_cast<int32_t>(tokens.size()), add_special, parse_special);
    };
    int n = tokenize();
    if (n < 0) {
        tokens.resize(static_cast<size_t>(-n));
        n = tokenize();
    }
    tokens.resize(static_cast<size_t>(std::max(n, 0)));
    return tokens;
}

}  // namespace eventloom::llm
