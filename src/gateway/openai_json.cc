// The OpenAI wire format: see openai_json.h.
#include "gateway/openai_json.h"

#include "llm/request_json.h"

namespace eventloom::gateway {

using nlohmann::json;

namespace {

Status Bad(std::string* param, std::string_view member, std::string message) {
    if (param != nullptr) *param = std::string(member);
    return InvalidArgumentError(std::move(message));
}

// The member of an llm::ParseLlmRequest message: it starts with a quoted name, or names one.
std::string MemberOf(const std::string& message) {
    size_t open = message.find('\'');
    if (open == std::string::npos) return {};
    size_t close = message.find('\'', open + 1);
    if (close == std::string::npos) return {};
    return message.substr(open + 1, close - open - 1);
}

int64_t IntOr(const json& object, const char* key, int64_t fallback) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_number()) return fallback;
    return it->get<int64_t>();
}

}  // namespace

std::string DumpJson(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<CompletionRequest> ParseCompletionRequest(std::string_view text, ApiKind kind,
                                                 std::string* param) {
    if (param != nullptr) param->clear();
    json body;
    try {
        body = json::parse(text);
    } catch (const json::exception& e) {
        return Bad(param, "", std::string("the body is not valid JSON: ") + e.what());
    }
    if (!body.is_object()) return Bad(param, "", "the body must be a JSON object");

    CompletionRequest r;
    auto model = body.find("model");
    if (model == body.end() || model->is_null()) return Bad(param, "model", "'model' is required");
    if (!model->is_string()) return Bad(param, "model", "'model' must be a string");
    r.model = model->get<std::string>();

    if (kind == ApiKind::kChat) {
        auto messages = body.find("messages");
        if (messages == body.end()) return Bad(param, "messages", "'messages' is required");
        if (!messages->is_array()) return Bad(param, "messages", "'messages' must be an array");
        if (messages->empty()) {
            return Bad(param, "messages", "'messages' must have at least one message");
        }
        body.erase("prompt");
    } else {
        auto prompt = body.find("prompt");
        if (prompt == body.end()) return Bad(param, "prompt", "'prompt' is required");
        if (!prompt->is_string()) return Bad(param, "prompt", "'prompt' must be a string");
        if (prompt->get_ref<const std::string&>().empty()) {
            return Bad(param, "prompt", "'prompt' must not be empty");
        }
        body.erase("messages");
    }

    if (auto stream = body.find("stream"); stream != body.end() && !stream->is_null()) {
        if (!stream->is_boolean()) return Bad(param, "stream", "'stream' must be a boolean");
        r.stream = stream->get<bool>();
    }
    if (auto options = body.find("stream_options"); options != body.end() && !options->is_null()) {
        if (!options->is_object()) {
            return Bad(param, "stream_options", "'stream_options' must be an object");
        }
        auto usage = options->find("include_usage");
        if (usage != options->end() && !usage->is_null()) {
            if (!usage->is_boolean()) {
                return Bad(param, "stream_options.include_usage",
                           "'stream_options.include_usage' must be a boolean");
            }
            r.include_usage = usage->get<bool>();
        }
    }
    if (auto user = body.find("user"); user != body.end() && user->is_string()) {
        r.user = user->get<std::string>();
    }
    body.erase("stream");
    body.erase("stream_options");

    // What the LLM stage would reject is rejected here, while the client still listens.
    try {
        auto parsed = llm::ParseLlmRequest(body);
        if (!parsed.ok()) {
            return Bad(param, MemberOf(parsed.status().message()), parsed.status().message());
        }
    } catch (const std::exception& e) {
        return Bad(param, "", std::string("invalid request: ") + e.what());
    }
    r.body = std::move(body);
    return r;
}

Completion ParseCompletion(std::string_view data) {
    Completion c;
    json value = json::parse(data, nullptr, false);
    if (value.is_discarded() || !value.is_object() || !value.contains("text")) {
        c.text = std::string(data);
        return c;
    }
    if (value["text"].is_string()) {
        c.text = value["text"].get<std::string>();
    } else {
        c.text = DumpJson(value["text"]);
    }
    if (auto fr = value.find("finish_reason"); fr != value.end() && fr->is_string()) {
        c.finish_reason = fr->get<std::string>();
    }
    if (auto usage = value.find("usage"); usage != value.end() && usage->is_object()) {
        c.prompt_tokens = IntOr(*usage, "prompt_tokens", 0);
        c.completion_tokens = IntOr(*usage, "completion_tokens", 0);
        c.total_tokens = IntOr(*usage, "total_tokens", c.prompt_tokens + c.completion_tokens);
    }
    return c;
}

std::string ResponseId(ApiKind kind, std::string_view event_id) {
    return (kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + std::string(event_id);
}

namespace {

json Usage(const Completion& c) {
    return json{{"prompt_tokens", c.prompt_tokens},
                {"completion_tokens", c.completion_tokens},
                {"total_tokens", c.total_tokens}};
}

}  // namespace

json CompletionResponse(ApiKind kind, std::string_view event_id, int64_t created,
                        std::string_view model, const Completion& completion) {
    json choice = {
        {"index", 0}, {"finish_reason", completion.finish_reason}, {"logprobs", nullptr}};
    if (kind == ApiKind::kChat) {
        choice["message"] = {{"role", "assistant"}, {"content", completion.text}};
    } else {
        choice["text"] = completion.text;
    }
    return json{{"id", ResponseId(kind, event_id)},
                {"object", kind == ApiKind::kChat ? "chat.completion" : "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", json::array({choice})},
                {"usage", Usage(completion)}};
}

json StreamChunk(ApiKind kind, std::string_view event_id, int64_t created, std::string_view model,
                 std::string_view text, bool with_role,
                 const std::optional<std::string>& finish_reason) {
    json choice = {{"index", 0}, {"logprobs", nullptr}};
    choice["finish_reason"] = finish_reason ? json(*finish_reason) : json(nullptr);
    if (kind == ApiKind::kChat) {
        json delta = json::object();
        if (with_role) delta["role"] = "assistant";
        if (!finish_reason) delta["content"] = text;
        choice["delta"] = std::move(delta);
    } else {
        choice["text"] = text;
    }
    return json{{"id", ResponseId(kind, event_id)},
                {"object", kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", json::array({choice})}};
}

json UsageChunk(ApiKind kind, std::string_view event_id, int64_t created, std::string_view model,
                const Completion& completion) {
    return json{{"id", ResponseId(kind, event_id)},
                {"object", kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", json::array()},
                {"usage", Usage(completion)}};
}

json ErrorJson(std::string_view message, std::string_view type, std::string_view param,
               std::string_view code) {
    return json{{"error",
                 {{"message", message},
                  {"type", type},
                  {"param", param.empty() ? json(nullptr) : json(param)},
                  {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

}  // namespace eventloom::gateway
