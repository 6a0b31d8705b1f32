// The llm stage's `with:` options turned into the LLM stage's hooks (llm/llm_stage.h):
// building the request from an event, and shaping the completion event's data.
//
//   model                the model (checked by the pipeline, not here)
//   system | system_file an inline template, or a template file, for the system message
//   prompt | prompt_text a template file, or an inline template, for the user message
//   schema               a JSON Schema file: the completion is constrained to it
//   max_tokens, temperature, top_p, top_k, seed, stop   sampling
//   output               the data field the completion goes into (below)
//   chunks               the chunk events' topic (read by the pipeline)
//   type                 the completion event's type (default: llm.completion)
// Files are relative to the pipeline file's folder. Templates are templates.h, rendered
// against the event's scope (scope.h).
//
// make_request: with a prompt, the messages are [system (when given), user (the rendered
// prompt)] and the sampling options are the stage's (LlmRequest defaults where not given).
// Without one, the event's data is the request (llm/request_json.h) and the stage's options
// override it only where given; a `system` is then put first unless the request has its own.
// The request's id is the event's id.
//
// make_output: with `output: FIELD`, the input data (a JSON object, or none) plus FIELD = the
// completion, parsed as JSON when a schema is set (a completion that does not parse fails with
// InvalidArgument naming the stage: dead-letter), else its text. Without `output`: empty (the
// LLM stage's default completion JSON).
//
// Every problem is reported as a Diagnostic: options at their location in the pipeline file,
// errors inside a template or schema file at "file:line:col" of that file. The result is then
// InvalidArgument listing them (DiagnosticsStatus). The hooks own what they need and are safe
// to call from many threads.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/event.h"
#include "eventloom/llm.h"
#include "pipeline/config/pipeline_spec.h"

namespace eventloom::pipeline {

struct LlmHooks {
    std::function<Result<LlmRequest>(const Event&)> make_request;
    std::function<Result<std::string>(const Event&, const LlmResult&, std::string_view model)>
        make_output;          // empty without `output`
    std::string output_type;  // empty: the LLM stage's default
};

Result<LlmHooks> MakeLlmHooks(const StageSpec& stage, const std::string& pipeline_dir,
                              std::vector<Diagnostic>* diagnostics = nullptr);

}  // namespace eventloom::pipeline
