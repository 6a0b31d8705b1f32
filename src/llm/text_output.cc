#include "llm/text_output.h"

#include <algorithm>

namespace eventloom::llm {

namespace {

// Bytes in the UTF-8 sequence led by `lead`; 0 for a byte that cannot lead one.
size_t SequenceLength(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 0;
}

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Bytes of the well-formed UTF-8 character at the start of `s` (Unicode table 3-7: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one.
size_t WellFormedLength(std::string_view s) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    size_t need = SequenceLength(c);
    if (need < 2 || c < 0xC2 || c > 0xF4 || s.size() < need) return 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (b(1) < lo || b(1) > hi) return 0;
    for (size_t i = 2; i < need; ++i) {
        if (!IsContinuation(b(i))) return 0;
    }
    return need;
}

}  // namespace

std::string ToValidUtf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t n = WellFormedLength(s.substr(i));
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

size_t CompleteUtf8Prefix(std::string_view s) {
    size_t n = s.size();
    // The last lead byte is at most 3 bytes from the end of an incomplete tail.
    for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
        auto c = static_cast<unsigned char>(s[n - back]);
        if (IsContinuation(c)) continue;
        size_t need = SequenceLength(c);
        if (need == 0 || back >= need) return n;  // invalid lead, or a complete character
        return n - back;                          // the character's remaining bytes are to come
    }
    return n;  // only continuation bytes: invalid, passed through
}

TextOutput::TextOutput(std::vector<std::string> stop) {
    for (auto& s : stop) {
        if (s.empty()) continue;
        max_stop_ = std::max(max_stop_, s.size());
        stop_.push_back(std::move(s));
    }
}

std::string TextOutput::Add(std::string_view bytes) {
    if (stopped_) return {};
    pending_.append(bytes);
    size_t complete = CompleteUtf8Prefix(pending_);
    // Bytes that form no character (a model may emit any byte) become U+FFFD: what is
    // released is always valid UTF-8.
    std::string clean = ToValidUtf8(std::string_view(pending_).substr(0, complete));
    pending_.replace(0, complete, clean);
    complete = clean.size();
    std::string_view ready(pending_.data(), complete);

    size_t stop_at = std::string_view::npos;
    for (const auto& s : stop_) stop_at = std::min(stop_at, ready.find(s));
    if (stop_at != std::string_view::npos) {
        std::string out(ready.substr(0, stop_at));
        text_ += out;
        pending_.clear();
        stopped_ = true;
        return out;
    }

    // Hold back the longest tail that a stop sequence could still begin with.
    size_t hold = 0;
    for (const auto& s : stop_) {
        for (size_t k = std::min(s.size() - 1, ready.size()); k > hold; --k) {
            if (ready.substr(ready.size() - k) == std::string_view(s).substr(0, k)) {
                hold = k;
                break;
            }
        }
    }
    std::string out(ready.substr(0, complete - hold));
    pending_.erase(0, out.size());
    text_ += out;
    return out;
}

std::string TextOutput::Finish() {
    if (stopped_) return {};
    std::string out =
        ToValidUtf8(std::string_view(pending_).substr(0, CompleteUtf8Prefix(pending_)));
    pending_.clear();
    text_ += out;
    return out;
}

}  // namespace eventloom::llm
