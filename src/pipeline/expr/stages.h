// The transform, route and emit stages of a pipeline file: their `with:` options compiled
// into a StageHandler (eventloom/stage.h).
//
//   transform  applies the steps (transform.h) to the event's data, which must be JSON, and
//              emits a derived event of `with.type` (default: the input's type) with the new
//              data to every topic in `emits`
//   route      evaluates `with.routes` (`when` conditions, conditions.h) in order and emits a
//              derived event with the same data, type, subject and content type to the first
//              matching route's `to` (mode: first, the default) or to every matching one
//              (mode: all); no match goes to `default`, or fails with InvalidArgument
//              "stage 'NAME': no route matched event 'ID'..." (dead-letter); `to` and
//              `default` must be valid topic names
//   emit       emits a derived event of `with.type` (required) whose data is `with.data` (a JSON
//              value whose strings are templates; default: the input's data, which must then
//              be JSON) and whose subject is the `with.subject` template, to every topic in
//              `emits`
// Derived events come from StageContext::Derive (correlation and causation), with content
// type application/json and compact JSON data (route keeps the input's data as it is).
//
// Compiling reports every problem in `with:` as a Diagnostic at its option's location, and
// then returns InvalidArgument listing them (DiagnosticsStatus); `diagnostics` receives them
// too when given. At run time, an event whose data is not JSON where JSON is needed fails
// with InvalidArgument naming the stage (dead-letter).
//
// The handlers keep their own copy of what they need (not the StageSpec) and are safe to call
// from many worker threads at once.
#pragma once

#include <string>
#include <vector>

#include "eventloom/stage.h"
#include "pipeline/config/pipeline_spec.h"

namespace eventloom::pipeline {

Result<StageHandler> MakeTransformHandler(const StageSpec& stage,
                                          std::vector<Diagnostic>* diagnostics = nullptr);
Result<StageHandler> MakeRouteHandler(const StageSpec& stage,
                                      std::vector<Diagnostic>* diagnostics = nullptr);
Result<StageHandler> MakeEmitHandler(const StageSpec& stage,
                                     std::vector<Diagnostic>* diagnostics = nullptr);

// Every topic a route stage may emit to (each `to`, then `default`), without repeats: for
// creating topics up front. Empty for a stage whose `with:` has no routes.
std::vector<std::string> RouteTargets(const StageSpec& stage);

}  // namespace eventloom::pipeline
