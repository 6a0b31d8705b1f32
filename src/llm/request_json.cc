#include "llm/request_json.h"

#include <limits>
#include <type_traits>

namespace eventloom::llm {

namespace {

using nlohmann::json;

Status Bad(std::string_view member, std::string_view what) {
    return InvalidArgumentError("llm request: '" + std::string(member) + "' " + std::string(what));
}

template <typename T>
Status Number(const json& body, const char* key, T* out) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return Status::Ok();
    if (!it->is_number()) return Bad(key, "must be a number");
    if constexpr (std::is_integral_v<T>) {
        if (!it->is_number_integer() && !it->is_number_unsigned()) {
            return Bad(key, "must be an integer");
        }
        auto v = it->get<int64_t>();
        if (v < 0 || v > std::numeric_limits<T>::max()) return Bad(key, "is out of range");
        *out = static_cast<T>(v);
    } else {
        *out = it->get<T>();
    }
    return Status::Ok();
}

}  // namespace

Result<LlmRequest> ParseLlmRequest(std::string_view text) {
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded()) return InvalidArgumentError("llm request: data is not valid JSON");
    return ParseLlmRequest(body);
}

Result<LlmRequest> ParseLlmRequest(const json& body) {
    if (!body.is_object()) return InvalidArgumentError("llm request: data must be a JSON object");
    LlmRequest r;
    if (auto it = body.find("messages"); it != body.end() && !it->is_null()) {
        if (!it->is_array() || it->empty()) return Bad("messages", "must be a non-empty array");
        for (size_t i = 0; i < it->size(); ++i) {
            const json& m = (*it)[i];
            std::string where = "messages[" + std::to_string(i) + "]";
            if (!m.is_object()) return Bad(where, "must be an object");
            auto role = m.find("role");
            auto content = m.find("content");
            if (role == m.end() || !role->is_string())
                return Bad(where + ".role", "must be a string");
            if (content == m.end() || !content->is_string()) {
                return Bad(where + ".content", "must be a string");
            }
            r.messages.push_back({role->get<std::string>(), content->get<std::string>()});
        }
    }
    if (auto it = body.find("prompt"); it != body.end() && !it->is_null()) {
        if (!it->is_string()) return Bad("prompt", "must be a string");
        r.prompt = it->get<std::string>();
    }
    if (r.messages.empty() && r.prompt.empty()) {
        return InvalidArgumentError("llm request: needs 'messages' or a non-empty 'prompt'");
    }
    EVENTLOOM_RETURN_IF_ERROR(Number(body, "max_tokens", &r.max_tokens));
    if (body.contains("max_completion_tokens")) {
        EVENTLOOM_RETURN_IF_ERROR(Number(body, "max_completion_tokens", &r.max_tokens));
    }
    if (r.max_tokens < 1) return Bad("max_tokens", "must be at least 1");
    EVENTLOOM_RETURN_IF_ERROR(Number(body, "temperature", &r.sampling.temperature));
    if (r.sampling.temperature < 0) return Bad("temperature", "must be >= 0");
    EVENTLOOM_RETURN_IF_ERROR(Number(body, "top_p", &r.sampling.top_p));
    if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) return Bad("top_p", "must be in (0, 1]");
    EVENTLOOM_RETURN_IF_ERROR(Number(body, "top_k", &r.sampling.top_k));
    EVENTLOOM_RETURN_IF_ERROR(Number(body, "seed", &r.sampling.seed));
    if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
        if (it->is_string()) {
            r.stop.push_back(it->get<std::string>());
        } else if (it->is_array()) {
            for (const auto& s : *it) {
                if (!s.is_string()) return Bad("stop", "must be a string or an array of strings");
                r.stop.push_back(s.get<std::string>());
            }
        } else {
            return Bad("stop", "must be a string or an array of strings");
        }
    }
    if (auto it = body.find("ignore_eos"); it != body.end() && !it->is_null()) {
        if (!it->is_boolean()) return Bad("ignore_eos", "must be true or false");
        r.ignore_eos = it->get<bool>();
    }
    if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
        if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
            return Bad("response_format", "must be an object with a 'type'");
        }
        auto type = (*it)["type"].get<std::string>();
        if (type == "json_schema") {
            auto js = it->find("json_schema");
            if (js == it->end() || !js->is_object() || !js->contains("schema")) {
                return Bad("response_format.json_schema", "must be an object with a 'schema'");
            }
            r.json_schema = (*js)["schema"].dump();
        } else if (type == "json_object") {
            r.json_schema = R"({"type": "object"})";
        } else if (type != "text") {
            return Bad("response_format.type", "must be 'text', 'json_object' or 'json_schema'");
        }
    }
    if (auto it = body.find("json_schema"); it != body.end() && !it->is_null()) {
        if (!it->is_object() && !it->is_boolean()) return Bad("json_schema", "must be a schema");
        r.json_schema = it->dump();
    }
    return r;
}

nlohmann::json LlmResultToJson(const LlmResult& result, std::string_view model) {
    const auto& u = result.usage;
    return json{{"text", result.text},
                {"finish_reason", result.finish_reason},
                {"model", model},
                {"usage",
                 {{"prompt_tokens", u.prompt_tokens},
                  {"completion_tokens", u.completion_tokens},
                  {"total_tokens", u.prompt_tokens + u.completion_tokens},
                  {"cached_prompt_tokens", u.cached_prompt_tokens},
                  {"queued_ms", u.queued_ms},
                  {"ttft_ms", u.ttft_ms},
                  {"decode_ms", u.decode_ms}}}};
}

}  // namespace eventloom::llm
