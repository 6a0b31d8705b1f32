// The scalar syntaxes of pipeline files: environment substitution, durations and byte sizes
// (pipeline_spec.h). Pure functions; SubstituteEnv reads the process environment (getenv), so
// it must not race with setenv in another thread.
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "pipeline/config/pipeline_spec.h"

namespace eventloom::pipeline {

namespace {

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

// Expands `text` from `pos`. Nested (inside a default) it stops at the '}' that closes the
// enclosing ${...} and leaves `pos` on it; at the top level a '}' is ordinary text. `active`
// false parses without looking variables up (a default that is not used), so an unset
// variable there is no error.
class EnvExpander {
public:
    explicit EnvExpander(std::string_view text) : text_(text) {}

    Result<std::string> Expand(size_t& pos, bool nested, bool active) {
        std::string out;
        while (pos < text_.size()) {
            const char c = text_[pos];
            if (nested && c == '}') return out;
            if (text_.compare(pos, 3, "$${") == 0) {
                out += "${";
                pos += 3;
                continue;
            }
            if (text_.compare(pos, 2, "${") == 0) {
                EVENTLOOM_ASSIGN_OR_RETURN(std::string value, Reference(pos, active));
                out += value;
                continue;
            }
            out += c;
            ++pos;
        }
        if (nested) return Unclosed();
        return out;
    }

private:
    // `pos` is on "${"; leaves it after the closing '}'.
    Result<std::string> Reference(size_t& pos, bool active) {
        const size_t start = pos;
        pos += 2;
        const size_t name_start = pos;
        if (pos >= text_.size()) return Unclosed();
        if (!IsNameStart(text_[pos])) return BadName(start);
        while (pos < text_.size() && IsNameChar(text_[pos])) ++pos;
        const std::string name(text_.substr(name_start, pos - name_start));
        if (pos >= text_.size()) return Unclosed();

        const char* raw = active ? std::getenv(name.c_str()) : nullptr;
        if (text_[pos] == '}') {
            ++pos;
            if (!active) return std::string();
            if (raw == nullptr) {
                return InvalidArgumentError("environment variable '" + name +
                                            "' is not set (write ${" + name +
                                            ":-default} to give a default)");
            }
            return std::string(raw);
        }
        if (text_.compare(pos, 2, ":-") != 0) return BadName(start);
        pos += 2;

        // The default is used when the variable is unset or empty.
        const bool use_default = active && (raw == nullptr || *raw == '\0');
        EVENTLOOM_ASSIGN_OR_RETURN(std::string fallback, Expand(pos, true, use_default));
        ++pos;  // the closing '}'
        return use_default ? fallback : std::string(active ? raw : "");
    }

    Status Unclosed() const {
        return InvalidArgumentError("unclosed '${' in '" + std::string(text_) +
                                    "' (write '$${' for a literal '${')");
    }

    Status BadName(size_t start) const {
        return InvalidArgumentError("bad environment reference at character " +
                                    std::to_string(start + 1) + " of '" + std::string(text_) +
                                    "': expected ${NAME} or ${NAME:-default}, NAME of letters, "
                                    "digits and '_'");
    }

    std::string_view text_;
};

// A non-negative decimal number ("12", "1.5", ".5") at the front of `text`; `rest` gets what
// follows it. False when there is no number.
bool ParseDecimal(std::string_view text, double& value, std::string_view& rest) {
    size_t i = 0;
    bool digits = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        ++i;
        digits = true;
    }
    if (i < text.size() && text[i] == '.') {
        ++i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            ++i;
            digits = true;
        }
    }
    if (!digits) return false;
    value = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
    rest = text.substr(i);
    return true;
}

}  // namespace

Result<std::string> SubstituteEnv(std::string_view text) {
    if (text.find('$') == std::string_view::npos) return std::string(text);
    EnvExpander expander(text);
    size_t pos = 0;
    return expander.Expand(pos, false, true);
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
    auto bad = [&](std::string_view why) -> Status {
        return InvalidArgumentError("bad duration '" + std::string(text) +
                                    "': " + std::string(why) +
                                    " (expected e.g. 500ms, 2s, 1.5s, 1m, 1h, 7d; a bare integer "
                                    "is milliseconds)");
    };
    double number = 0;
    std::string_view unit;
    if (!ParseDecimal(text, number, unit)) return bad("no number");

    double scale = 0;
    if (unit.empty()) {
        if (text.find('.') != std::string_view::npos) return bad("a bare number needs a unit");
        scale = 1;
    } else if (unit == "ms") {
        scale = 1;
    } else if (unit == "s") {
        scale = 1000;
    } else if (unit == "m") {
        scale = 60'000;
    } else if (unit == "h") {
        scale = 3'600'000;
    } else if (unit == "d") {
        scale = 86'400'000;
    } else {
        return bad("unknown unit '" + std::string(unit) + "'");
    }

    const double ms = number * scale;
    // About 285 years: far beyond any useful timeout, well inside int64 and double precision.
    if (ms > 9e12) return bad("too large");
    if (ms != std::floor(ms)) return bad("not a whole number of milliseconds");
    return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Result<uint64_t> ParseByteSize(std::string_view text) {
    auto bad = [&](std::string_view why) -> Status {
        return InvalidArgumentError(
            "bad size '" + std::string(text) + "': " + std::string(why) +
            " (expected bytes, or a number with B, KiB, MiB, GiB, TiB or KB, MB, GB, TB)");
    };
    double number = 0;
    std::string_view unit;
    if (!ParseDecimal(text, number, unit)) return bad("no number");

    struct Unit {
        std::string_view name;
        double scale;
    };
    static constexpr Unit kUnits[] = {
        {"", 1},
        {"B", 1},
        {"KiB", 1024.0},
        {"MiB", 1048576.0},
        {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0},
        {"KB", 1e3},
        {"MB", 1e6},
        {"GB", 1e9},
        {"TB", 1e12},
    };
    double scale = 0;
    for (const Unit& u : kUnits) {
        if (u.name == unit) scale = u.scale;
    }
    if (scale == 0) return bad("unknown unit '" + std::string(unit) + "'");

    const double bytes = number * scale;
    if (bytes >= 9e18) return bad("too large");
    if (bytes != std::floor(bytes)) return bad("not a whole number of bytes");
    return static_cast<uint64_t>(bytes);
}

}  // namespace eventloom::pipeline
