#include "llm/openai/sse.h"

namespace eventloom::openai {

Status SseParser::Feed(std::string_view bytes, const EventHandler& on_event) {
    for (const char c : bytes) {
        // CRLF counts as one line end: the LF after a CR was already handled.
        if (after_cr_) {
            after_cr_ = false;
            if (c == '\n') continue;
        }
        if (c != '\r' && c != '\n') {
            line_.push_back(c);
            continue;
        }

        after_cr_ = c == '\r';
        const std::string line = std::move(line_);
        line_.clear();
        EVENTLOOM_RETURN_IF_ERROR(ProcessLine(line, on_event));
    }
    return Status::Ok();
}

Status SseParser::Finish(const EventHandler& on_event) {
    Status status = Status::Ok();
    if (!line_.empty()) status = ProcessLine(line_, on_event);
    if (status.ok()) status = Dispatch(on_event);

    line_.clear();
    data_.clear();
    has_data_ = false;
    after_cr_ = false;
    return status;
}

Status SseParser::ProcessLine(std::string_view line, const EventHandler& on_event) {
    if (line.empty()) return Dispatch(on_event);
    if (line.front() == ':') return Status::Ok();  // a comment (keep-alive pings)

    // "field: value", "field:value" or a bare "field" with an empty value.
    const size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field != "data") return Status::Ok();

    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
    return Status::Ok();
}

Status SseParser::Dispatch(const EventHandler& on_event) {
    if (!has_data_) return Status::Ok();
    const std::string data = std::move(data_);
    data_.clear();
    has_data_ = false;
    return on_event(data);
}

}  // namespace eventloom::openai
