// Redactor (redact.h). The digit patterns (phone, credit_card) use one scanner over runs of
// digit groups, since telling them apart needs the whole run: its digit count, its
// separators, the Luhn check.
#include "pipeline/expr/redact.h"

#include <fmt/format.h>

#include <cctype>
#include <functional>

namespace eventloom::pipeline {

namespace {

bool IsAsciiAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

const std::regex& EmailRegex() {
    static const std::regex re(
        R"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})");
    return re;
}

const std::regex& IbanRegex() {
    static const std::regex re(R"(\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)");
    return re;
}

const std::regex& Ipv4Regex() {
    static const std::regex re(R"(\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b)");
    return re;
}

// Replaces each match of `re` in `text` that `keep_match` accepts by `replacement`.
std::string ReplaceMatches(const std::string& text, const std::regex& re,
                           const std::string& replacement,
                           const std::function<bool(const std::smatch&)>& accept) {
    std::string out;
    auto begin = text.cbegin();
    for (auto it = std::sregex_iterator(text.cbegin(), text.cend(), re);
         it != std::sregex_iterator(); ++it) {
        const std::smatch& m = *it;
        if (!accept(m)) continue;
        out.append(begin, m[0].first);
        out += replacement;
        begin = m[0].second;
    }
    out.append(begin, text.cend());
    return out;
}

bool IbanValid(std::string_view text) {
    std::string compact;
    for (char c : text) {
        if (c != ' ') compact += c;
    }
    if (compact.size() < 15 || compact.size() > 34) return false;
    const std::string rearranged = compact.substr(4) + compact.substr(0, 4);
    int remainder = 0;
    for (char c : rearranged) {
        const int value = IsDigit(c) ? c - '0' : c - 'A' + 10;
        remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
    }
    return remainder == 1;
}

bool Ipv4Valid(const std::smatch& m, const std::string& text) {
    for (int i = 1; i <= 4; ++i) {
        if (std::stoi(m[i].str()) > 255) return false;
    }
    // Not part of a longer dotted number (a version like 1.2.3.4.5).
    const size_t begin = static_cast<size_t>(m.position(0));
    const size_t end = begin + static_cast<size_t>(m.length(0));
    if (begin > 0 && text[begin - 1] == '.') return false;
    if (end + 1 < text.size() && text[end] == '.' && IsDigit(text[end + 1])) return false;
    return true;
}

// A run of digit groups: "+1 (415) 555-0134", "4111 1111 1111 1111", "2024-01-15".
struct DigitRun {
    size_t begin = 0;
    size_t end = 0;
    std::string digits;
    std::vector<size_t> groups;  // digits per group
    bool plus = false;
    bool paren = false;
    bool space = false;
    bool dash = false;
    bool dot = false;
};

bool IsSeparator(char c) { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')'; }

// Reads the run starting at `i` (a digit, or '+' / '(' before one).
DigitRun ReadRun(const std::string& text, size_t i) {
    DigitRun run;
    run.begin = i;
    size_t j = i;
    if (text[j] == '+') {
        run.plus = true;
        ++j;
    }
    if (text[j] == '(') {
        run.paren = true;
        ++j;
    }
    while (j < text.size() && IsDigit(text[j])) {
        const size_t start = j;
        while (j < text.size() && IsDigit(text[j])) run.digits += text[j++];
        run.groups.push_back(j - start);
        run.end = j;
        // Up to two separator characters, at most one of space, dash and dot.
        size_t k = j;
        int plain = 0;
        bool paren = false;
        while (k < text.size() && k - j < 2 && IsSeparator(text[k])) {
            if (text[k] == '(' || text[k] == ')') {
                paren = true;
            } else {
                ++plain;
            }
            ++k;
        }
        if (k == j || plain > 1 || k >= text.size() || !IsDigit(text[k])) break;
        for (size_t s = j; s < k; ++s) {
            run.space |= text[s] == ' ';
            run.dash |= text[s] == '-';
            run.dot |= text[s] == '.';
        }
        run.paren |= paren;
        j = k;
    }
    if (run.paren && run.end < text.size() && text[run.end] == ')') ++run.end;
    return run;
}

bool LooksLikeDate(const DigitRun& run) {
    if (run.groups.size() != 3 || run.space) return false;
    const auto& g = run.groups;
    return (g[0] == 4 && g[1] <= 2 && g[2] <= 2) || (g[0] <= 2 && g[1] <= 2 && g[2] == 4);
}

bool IsCard(const DigitRun& run) {
    return !run.plus && !run.paren && !run.dot && run.digits.size() >= 13 &&
           run.digits.size() <= 19 && LuhnValid(run.digits);
}

bool IsPhone(const DigitRun& run) {
    const size_t n = run.digits.size();
    if (n < 7 || n > 15 || LooksLikeDate(run)) return false;
    if (run.plus || run.paren) return true;
    if (run.groups.size() < 2) return false;  // a bare number: an amount, an id
    const bool only_dots = run.dot && !run.space && !run.dash;
    if (only_dots) return run.groups.size() == 3;  // 415.555.0134, not 3.14159 or 10.0.0.1
    return true;
}

std::string RedactDigitRuns(const std::string& text, bool phone, bool card,
                            const std::string& replacement) {
    std::string out;
    size_t copied = 0;
    size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        const bool starts =
            IsDigit(c) || ((c == '+' || c == '(') && i + 1 < text.size() && IsDigit(text[i + 1]));
        if (!starts || (i > 0 && (IsAsciiAlnum(text[i - 1]) || text[i - 1] == '+'))) {
            ++i;
            continue;
        }
        DigitRun run = ReadRun(text, i);
        const bool bounded = run.end >= text.size() || !IsAsciiAlnum(text[run.end]);
        if (bounded && ((card && IsCard(run)) || (phone && IsPhone(run)))) {
            out.append(text, copied, run.begin - copied);
            out += replacement;
            copied = run.end;
        }
        i = std::max(run.end, i + 1);
    }
    out.append(text, copied, std::string::npos);
    return out;
}

}  // namespace

bool LuhnValid(std::string_view number) {
    int sum = 0;
    int count = 0;
    for (auto it = number.rbegin(); it != number.rend(); ++it) {
        if (!IsDigit(*it)) continue;
        int d = *it - '0';
        if (count % 2 == 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
        ++count;
    }
    return count > 0 && sum % 10 == 0;
}

std::string Redactor::KnownPatterns() { return "email, phone, credit_card, ipv4, iban, re:REGEX"; }

std::vector<std::string> Redactor::BuiltinPatterns() {
    return {"email", "phone", "credit_card", "ipv4", "iban"};
}

Result<Redactor> Redactor::Compile(const std::vector<std::string>& patterns,
                                   std::string replacement) {
    Redactor r;
    r.replacement_ = std::move(replacement);
    for (const std::string& p : patterns) {
        if (p == "email") {
            r.email_ = true;
        } else if (p == "phone") {
            r.phone_ = true;
        } else if (p == "credit_card") {
            r.credit_card_ = true;
        } else if (p == "ipv4") {
            r.ipv4_ = true;
        } else if (p == "iban") {
            r.iban_ = true;
        } else if (p.rfind("re:", 0) == 0) {
            if (p.size() == 3) return InvalidArgumentError("pattern 're:' has no expression");
            try {
                r.custom_.push_back(std::make_shared<const std::regex>(p.substr(3)));
            } catch (const std::regex_error& e) {
                return InvalidArgumentError(
                    fmt::format("pattern '{}': invalid regular expression: {}", p, e.what()));
            }
        } else {
            return InvalidArgumentError(
                fmt::format("unknown pattern '{}'; expected one of {}", p, KnownPatterns()));
        }
    }
    return r;
}

std::string Redactor::Redact(std::string_view input) const {
    std::string text(input);
    auto all = [](const std::smatch&) { return true; };
    try {
        if (email_) text = ReplaceMatches(text, EmailRegex(), replacement_, all);
        if (iban_) {
            text = ReplaceMatches(text, IbanRegex(), replacement_,
                                  [](const std::smatch& m) { return IbanValid(m.str(0)); });
        }
        if (phone_ || credit_card_) {
            text = RedactDigitRuns(text, phone_, credit_card_, replacement_);
        }
        if (ipv4_) {
            const std::string& t = text;
            text = ReplaceMatches(t, Ipv4Regex(), replacement_,
                                  [&t](const std::smatch& m) { return Ipv4Valid(m, t); });
        }
        for (const auto& re : custom_) text = ReplaceMatches(text, *re, replacement_, all);
    } catch (const std::exception&) {
        // A regex search too complex to finish: redact the whole text rather than leak it.
        return replacement_;
    }
    return text;
}

}  // namespace eventloom::pipeline
