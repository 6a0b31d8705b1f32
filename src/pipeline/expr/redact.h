// Redaction of personal data in text, for the transform stage's `redact` step.
//
// Built-in patterns:
//   email        name@domain.tld
//   phone        7 to 15 digits in international (+44 20 7946 0958) or national
//                ((415) 555-0134, 415-555-0134, 030 1234567) formats: a leading '+', an area
//                code in parentheses, or digit groups joined by spaces, dashes or dots (not
//                dates, decimals or IPv4 addresses)
//   credit_card  13 to 19 digits, optionally grouped by spaces or dashes, passing the Luhn
//                check (a long order number that fails it is kept)
//   ipv4         four dotted octets of at most 255
//   iban         two letters, two check digits and up to 30 letters or digits (groups of four
//                may be spaced), passing the ISO 13616 mod-97 check
//   re:REGEX     any ECMAScript regular expression (std::regex)
// Each match is replaced by the replacement text as written ('$' is not special).
//
// A compiled Redactor is immutable: safe to use from many threads.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::pipeline {

class Redactor {
public:
    // `patterns` as above; InvalidArgument names an unknown pattern or a bad regex.
    static Result<Redactor> Compile(const std::vector<std::string>& patterns,
                                    std::string replacement);

    std::string Redact(std::string_view text) const;

    // "email, phone, credit_card, ipv4, iban, re:REGEX", for messages.
    static std::string KnownPatterns();
    // Every built-in pattern (the default when a step names none).
    static std::vector<std::string> BuiltinPatterns();

private:
    bool email_ = false;
    bool phone_ = false;
    bool credit_card_ = false;
    bool ipv4_ = false;
    bool iban_ = false;
    std::vector<std::shared_ptr<const std::regex>> custom_;
    std::string replacement_;
};

// True when the digits of `number` (other characters are skipped) pass the Luhn check.
bool LuhnValid(std::string_view number);

}  // namespace eventloom::pipeline
