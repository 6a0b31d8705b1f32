#include "llm/openai/openai_protocol.h"

#include <curl/curl.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>

namespace eventloom::openai {
namespace {

using json = nlohmann::json;

// Retry-After values above this are read as this; a day is already "not soon".
constexpr int64_t kMaxRetryAfterSeconds = 86'400;

std::string_view Trim(std::string_view text) {
    const size_t begin = text.find_first_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return {};
    const size_t end = text.find_last_not_of(" \t\r\n");
    return text.substr(begin, end - begin + 1);
}

// Dumps without throwing on invalid UTF-8 in a prompt: bad bytes become U+FFFD.
std::string Dump(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A member of `object` when it is present and not null; nullptr otherwise.
const json* Member(const json& object, const char* name) {
    if (!object.is_object()) return nullptr;
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
}

std::optional<int> IntMember(const json& object, const char* name) {
    const json* value = Member(object, name);
    if (value == nullptr || !value->is_number()) return std::nullopt;
    const double number = value->get<double>();
    if (!(number >= 0 && number <= std::numeric_limits<int>::max())) return std::nullopt;
    return static_cast<int>(number);
}

Status Malformed(std::string what, std::string_view data) {
    return UnavailableError("malformed response: " + what + ": " + Abbreviate(data));
}

// The status for an error object the server put in the stream or body.
Status ErrorObjectStatus(const json& error) {
    std::string message = ErrorMessageFromBody(Dump(json{{"error", error}}));
    const std::optional<int> code = IntMember(error, "code");
    message = "server error: " + message;
    if (code == 429) return ResourceExhaustedError(std::move(message));
    if (code && *code >= 400 && *code < 500) return InvalidArgumentError(std::move(message));
    return UnavailableError(std::move(message));
}

void ReadUsage(const json& chunk, ServerUsage& usage) {
    if (const json* u = Member(chunk, "usage")) {
        if (auto n = IntMember(*u, "prompt_tokens")) usage.prompt_tokens = n;
        if (auto n = IntMember(*u, "completion_tokens")) usage.completion_tokens = n;
        if (const json* details = Member(*u, "prompt_tokens_details")) {
            if (auto n = IntMember(*details, "cached_tokens")) usage.cached_tokens = n;
        }
    }
    if (const json* timings = Member(chunk, "timings")) {
        if (auto n = IntMember(*timings, "cache_n")) usage.cache_n = n;
    }
}

}  // namespace

Endpoint EndpointFor(const LlmRequest& request, bool chat) {
    return !request.messages.empty() || chat ? Endpoint::kChat : Endpoint::kCompletions;
}

std::string_view EndpointPath(Endpoint endpoint) {
    return endpoint == Endpoint::kChat ? "/chat/completions" : "/completions";
}

Result<std::string> BuildRequestBody(const LlmRequest& request, const OpenAiOptions& options,
                                     Endpoint endpoint) {
    // Refuse what no server could accept, before anything is sent.
    if (request.messages.empty() && request.prompt.empty()) {
        return InvalidArgumentError("request has neither messages nor a prompt");
    }
    if (request.max_tokens < 1) {
        return InvalidArgumentError("max_tokens must be at least 1, not " +
                                    std::to_string(request.max_tokens));
    }
    const SamplingParams& sampling = request.sampling;
    if (!std::isfinite(sampling.temperature) || !std::isfinite(sampling.top_p)) {
        return InvalidArgumentError("temperature and top_p must be finite numbers");
    }

    json body = json::object();
    if (!options.model.empty()) body["model"] = options.model;

    // The input: the chat, a prompt as a one-message chat, or a raw prompt.
    if (endpoint == Endpoint::kChat) {
        json messages = json::array();
        for (const ChatMessage& message : request.messages) {
            messages.push_back({{"role", message.role}, {"content", message.content}});
        }
        if (messages.empty()) messages.push_back({{"role", "user"}, {"content", request.prompt}});
        body["messages"] = std::move(messages);
    } else {
        body["prompt"] = request.prompt;
    }

    // Streaming, with the usage chunk at the end.
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};

    // Sampling and limits. top_k is not in the OpenAI API; llama-server and vLLM read it, and
    // some hosted APIs reject it (options.send_top_k).
    body["temperature"] = sampling.temperature;
    body["top_p"] = sampling.top_p;
    if (sampling.top_k > 0 && options.send_top_k) body["top_k"] = sampling.top_k;
    body["seed"] = sampling.seed;
    body["max_tokens"] = request.max_tokens;
    if (!request.stop.empty()) body["stop"] = request.stop;
    if (request.ignore_eos) body["ignore_eos"] = true;

    // Constrained output.
    if (!request.json_schema.empty()) {
        json schema = json::parse(request.json_schema, nullptr, false);
        if (schema.is_discarded()) return InvalidArgumentError("json_schema is not valid JSON");
        if (!schema.is_object()) return InvalidArgumentError("json_schema must be a JSON object");
        // llama-server reads response_format only on chat; on /completions it takes its own
        // top-level "json_schema", which other servers ignore.
        if (endpoint == Endpoint::kCompletions) body["json_schema"] = schema;
        body["response_format"] = {
            {"type", "json_schema"},
            {"json_schema", {{"name", "output"}, {"schema", std::move(schema)}, {"strict", true}}},
        };
    }
    return Dump(body);
}

int EstimatePromptTokens(const LlmRequest& request, Endpoint endpoint) {
    size_t bytes = 0;
    int messages = 0;
    for (const ChatMessage& message : request.messages) bytes += message.content.size();
    messages = static_cast<int>(request.messages.size());
    if (request.messages.empty()) {
        bytes = request.prompt.size();
        if (endpoint == Endpoint::kChat) messages = 1;
    }
    const size_t tokens = (bytes + 3) / 4 + 4 * static_cast<size_t>(messages);
    return static_cast<int>(std::min<size_t>(tokens, std::numeric_limits<int>::max()));
}

Status ResponseDecoder::OnEvent(std::string_view data, const ContentHandler& on_content) {
    if (Trim(data) == "[DONE]") {
        done_ = true;
        return Status::Ok();
    }
    return OnChunk(data, false, on_content);
}

Status ResponseDecoder::OnBody(std::string_view body, const ContentHandler& on_content) {
    EVENTLOOM_RETURN_IF_ERROR(OnChunk(body, true, on_content));
    done_ = true;
    return Status::Ok();
}

Status ResponseDecoder::OnChunk(std::string_view data, bool whole_body,
                                const ContentHandler& on_content) {
    const json chunk = json::parse(data, nullptr, false);
    if (chunk.is_discarded()) return Malformed("data is not JSON", data);
    if (!chunk.is_object()) return Malformed("data is not a JSON object", data);
    if (const json* error = Member(chunk, "error")) return ErrorObjectStatus(*error);

    // The usage chunk has empty choices; some servers leave "choices" out of it.
    ReadUsage(chunk, usage_);
    const json* choices = Member(chunk, "choices");
    if (choices == nullptr) {
        if (Member(chunk, "usage") || Member(chunk, "timings")) return Status::Ok();
        return Malformed("no 'choices' in the chunk", data);
    }
    if (!choices->is_array()) return Malformed("'choices' is not an array", data);
    if (choices->empty()) return Status::Ok();
    const json& choice = choices->front();
    if (!choice.is_object()) return Malformed("a choice is not an object", data);

    // The finish reason comes with the last content chunk or after it.
    const json* finish = Member(choice, "finish_reason");
    if (finish != nullptr) {
        if (!finish->is_string()) return Malformed("'finish_reason' is not a string", data);
        finish_reason_ = finish->get<std::string>();
    }

    // The content: delta.content (chat stream), message.content (chat body) or text.
    const json* content = nullptr;
    if (endpoint_ == Endpoint::kChat) {
        const json* holder = Member(choice, whole_body ? "message" : "delta");
        if (holder != nullptr) content = Member(*holder, "content");
    } else {
        content = Member(choice, "text");
    }
    if (content == nullptr) return Status::Ok();
    if (!content->is_string()) return Malformed("the content is not a string", data);

    const std::string& piece = content->get_ref<const std::string&>();
    if (piece.empty() && finish != nullptr) return Status::Ok();
    ++content_deltas_;
    text_ += piece;
    if (on_content) on_content(piece);
    return Status::Ok();
}

std::string ErrorMessageFromBody(std::string_view body) {
    const json parsed = json::parse(body, nullptr, false);
    if (!parsed.is_discarded()) {
        const json* error = Member(parsed, "error");
        if (error != nullptr) {
            const json* message = Member(*error, "message");
            if (message != nullptr && message->is_string()) return message->get<std::string>();
            if (error->is_string()) return error->get<std::string>();
        }
        for (const char* name : {"message", "detail"}) {
            const json* message = Member(parsed, name);
            if (message != nullptr && message->is_string()) return message->get<std::string>();
        }
        if (error != nullptr) return Abbreviate(Dump(*error), 300);
    }
    const std::string_view trimmed = Trim(body);
    if (trimmed.empty()) return "(empty body)";
    return Abbreviate(trimmed, 300);
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
    value = Trim(value);
    if (value.empty()) return std::nullopt;

    // delay-seconds: digits only.
    if (value.find_first_not_of("0123456789") == std::string_view::npos) {
        int64_t seconds = kMaxRetryAfterSeconds;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
        if (ec != std::errc() || seconds > kMaxRetryAfterSeconds) seconds = kMaxRetryAfterSeconds;
        return std::chrono::milliseconds(seconds * 1000);
    }

    // An HTTP-date; libcurl reads all three formats HTTP allows.
    const std::string text(value);
    const time_t at = curl_getdate(text.c_str(), nullptr);
    if (at == -1) return std::nullopt;
    const auto wait = std::chrono::system_clock::from_time_t(at) - now;
    if (wait <= std::chrono::system_clock::duration::zero()) return std::chrono::milliseconds(0);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait);
    return std::min(ms, std::chrono::milliseconds(kMaxRetryAfterSeconds * 1000));
}

std::optional<std::chrono::milliseconds> ParseRetryAfterMs(std::string_view value) {
    value = Trim(value);
    double ms = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
        return std::nullopt;
    }
    if (!(ms >= 0)) return std::nullopt;
    ms = std::min(ms, static_cast<double>(kMaxRetryAfterSeconds) * 1000);
    return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(ms)));
}

std::string Abbreviate(std::string_view text, size_t max_bytes) {
    if (text.size() <= max_bytes) return std::string(text);
    return std::string(text.substr(0, max_bytes)) + "...";
}

}  // namespace eventloom::openai
