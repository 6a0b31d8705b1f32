// Document events: what feeds a live index (docs/rag.md).
//
// A document event is any event whose data is a JSON object:
//   {"id": "faq/login", "text": "...", "metadata": {"product": "web", "lang": "en"}}
//   {"id": "faq/login", "op": "delete"}
// `op` is "upsert" (the default) or "delete"; without `op`, an event whose type ends in
// ".deleted" or ".delete" deletes. `id` is a non-empty string of at most 1024 bytes; `text` a
// string (an upsert without text, or with only whitespace, removes the document's chunks);
// `metadata` an object whose values are strings, numbers or booleans (kept as text: 3 -> "3",
// true -> "true"). Members other than these are ignored.
#pragma once

#include <string>

#include "eventloom/event.h"
#include "eventloom/status.h"
#include "rag/live_index.h"

namespace eventloom::rag {

struct DocumentChange {
    enum class Op { kUpsert, kDelete };
    Op op = Op::kUpsert;
    std::string id;
    std::string text;
    Metadata metadata;
};

// InvalidArgument naming what is wrong ("document event 'ID': metadata.tags: expected a
// string, number or boolean, got an array"); these go to the dead-letter topic.
Result<DocumentChange> ParseDocumentEvent(const Event& event);

}  // namespace eventloom::rag
