#include "llm/echo/echo_backend.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace eventloom::llm {
namespace {

// Splits text into words, each with the whitespace before it, so the pieces concatenate back
// to the text exactly.
std::vector<std::string_view> Words(std::string_view text) {
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < text.size()) {
        size_t start = i;
        while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t')) ++i;
        while (i < text.size() && text[i] != ' ' && text[i] != '\n' && text[i] != '\t') ++i;
        words.push_back(text.substr(start, i - start));
    }
    return words;
}

std::string_view Input(const LlmRequest& request) {
    for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it) {
        if (it->role == "user") return it->content;
    }
    if (!request.messages.empty()) return request.messages.back().content;
    return request.prompt;
}

int CountWords(const LlmRequest& request) {
    size_t words = Words(request.prompt).size();
    for (const auto& m : request.messages) words += Words(m.content).size();
    return static_cast<int>(words);
}

class EchoBackend final : public LlmBackend {
public:
    explicit EchoBackend(EchoOptions options) : options_(std::move(options)) {}

    std::string_view kind() const override { return "echo"; }
    std::string model() const override { return options_.model; }

    Result<LlmResult> Generate(const LlmRequest& request, const TokenCallback& on_token,
                               std::stop_token stop) override {
        busy_.fetch_add(1, std::memory_order_relaxed);
        auto result = Run(request, on_token, stop);
        busy_.fetch_sub(1, std::memory_order_relaxed);
        return result;
    }

    Result<int> CountPromptTokens(const LlmRequest& request) override {
        return CountWords(request);
    }

    LlmLoad Load() const override {
        LlmLoad load;
        load.slots = options_.slots;
        load.busy_slots = std::min(options_.slots, busy_.load(std::memory_order_relaxed));
        return load;
    }

private:
    Result<LlmResult> Run(const LlmRequest& request, const TokenCallback& on_token,
                          std::stop_token stop) {
        const auto start = std::chrono::steady_clock::now();
        std::string_view input =
            options_.reply ? std::string_view(*options_.reply) : Input(request);
        LlmResult result;
        result.finish_reason = "stop";
        result.usage.prompt_tokens = CountWords(request);
        for (std::string_view word : Words(input)) {
            if (stop.stop_requested()) return CancelledError("request " + request.id + " stopped");
            if (std::chrono::steady_clock::now() > request.deadline) {
                return DeadlineExceededError("request " + request.id + " passed its deadline");
            }
            if (result.usage.completion_tokens >= request.max_tokens) {
                result.finish_reason = "length";
                break;
            }
            if (options_.token_delay.count() > 0) std::this_thread::sleep_for(options_.token_delay);
            std::string text = result.text + std::string(word);
            bool stopped = false;
            for (const auto& s : request.stop) {
                if (s.empty()) continue;
                if (size_t at = text.find(s); at != std::string::npos) {
                    text.resize(at);
                    stopped = true;
                }
            }
            // A stop sequence that began in text already streamed cuts no further.
            if (text.size() < result.text.size()) text = result.text;
            std::string_view piece = std::string_view(text).substr(result.text.size());
            if (on_token) on_token(piece);
            if (result.usage.completion_tokens == 0) {
                result.usage.ttft_ms = std::chrono::duration<double, std::milli>(
                                           std::chrono::steady_clock::now() - start)
                                           .count();
            }
            ++result.usage.completion_tokens;
            result.text = std::move(text);
            if (stopped) break;
        }
        result.usage.decode_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count() -
            result.usage.ttft_ms;
        return result;
    }

    const EchoOptions options_;
    std::atomic<int> busy_{0};
};

}  // namespace

std::shared_ptr<LlmBackend> MakeEchoBackend(EchoOptions options) {
    return std::make_shared<EchoBackend>(std::move(options));
}

}  // namespace eventloom::llm
