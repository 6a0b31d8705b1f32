// SseParser: splits a text/event-stream body into events as its bytes arrive, in pieces of any
// size (a line or an event may span many pieces).
//
// Follows the event-stream format: lines end with LF, CRLF or CR; a line starting with ':' is a
// comment; "data:" lines (one optional space after the colon is dropped) accumulate, joined by
// '\n'; a blank line ends the event. Other fields (event, id, retry) are read and ignored: the
// OpenAI protocol only uses data. An event without data lines is not delivered.
//
// Not thread-safe; one parser per response body.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom::openai {

class SseParser {
public:
    // Receives the data of each complete event. A non-OK status stops the parse and is returned
    // by Feed or Finish.
    using EventHandler = std::function<Status(std::string_view data)>;

    // Parses `bytes`, calling `on_event` for every event they complete.
    Status Feed(std::string_view bytes, const EventHandler& on_event);

    // The body has ended: delivers an event left without its closing blank line (servers that
    // end with "data: [DONE]\n" and close), then resets the parser.
    Status Finish(const EventHandler& on_event);

private:
    Status ProcessLine(std::string_view line, const EventHandler& on_event);
    Status Dispatch(const EventHandler& on_event);

    std::string line_;       // the current line, not yet terminated
    std::string data_;       // the data of the event being built
    bool has_data_ = false;  // a data line was seen (data may be empty)
    bool after_cr_ = false;  // the last byte was CR: a following LF belongs to it
};

}  // namespace eventloom::openai
