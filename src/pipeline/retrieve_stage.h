// The retrieve stage (`uses: retrieve`, docs/rag.md): searches a live index with a query built
// from the event and adds what it found to the event's data, for the prompt template of an llm
// stage further on.
//
//   with:
//     index: kb                                   # required: an index under `indexes:`
//     query: "{{ data.subject }} {{ data.body }}"  # required: a template over the event
//     k: 4                                        # chunks to return (1..100)
//     mode: hybrid                                # hybrid | vector | keyword
//     candidates: 50                              # taken from each ranking before fusion
//     filters: { product: "{{ data.product }}" }  # field: template; an empty value is no filter
//     into: context                               # where in the data the result goes
//
// The derived event (same type as the input) carries the input's data (a JSON object) with
// `into` set to
//   {"index": "kb", "query": "...", "offsets": {"0": 1234},
//    "hits": [{"doc": "faq/login", "chunk": 0, "text": "...", "score": 0.032,
//              "metadata": {...}}],
//    "text": "the hits' texts, best first, separated by blank lines"}
// where `offsets` is the index's applied position (next offset per partition of its source
// topic) when the search read it. An empty query gives no hits.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "eventloom/stage.h"
#include "pipeline/config/pipeline_spec.h"
#include "rag/embedder.h"
#include "rag/live_index.h"

namespace eventloom::pipeline {

// What a retrieve stage searches; owned by the pipeline.
struct RetrieveTarget {
    rag::LiveIndex* index = nullptr;
    rag::Embedder* embedder = nullptr;
};

// Compiles the stage's options (diagnostics at their locations). `target` is called at run
// time for each event; it may be empty when the handler is only compiled (validate).
Result<StageHandler> MakeRetrieveHandler(const StageSpec& stage, const IndexSpec& index,
                                         std::function<RetrieveTarget()> target,
                                         std::vector<Diagnostic>* diagnostics = nullptr);

}  // namespace eventloom::pipeline
