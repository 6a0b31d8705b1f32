// Base64 with the standard alphabet (RFC 4648 section 4), for `data_base64` in the CloudEvents
// JSON format. Internal to the event component.
#pragma once

#include <string>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom {

// Padded base64 of `bytes`.
std::string Base64Encode(std::string_view bytes);

// The bytes `text` encodes. Padding may be left out, but when present it must be complete.
// Rejects, with InvalidArgument naming the offset: characters outside the alphabet (whitespace
// included), '=' anywhere but the end, a length that cannot be base64, and non-zero bits in the
// unused tail of the last character, so that every byte string has exactly one accepted form
// (besides the unpadded one).
Result<std::string> Base64Decode(std::string_view text);

}  // namespace eventloom
