// The gateway of a running pipeline: GatewayOptions built from the pipeline file's `gateway:`
// section and from the topics its stages answer on (what `eventloom serve` starts).
//
// Each OpenAI route (`gateway.openai: [{model, topic}]`) must name a topic consumed by an llm
// stage: its completions (the stage's `emits`) and token chunks (`with.chunks`) are what the
// gateway waits for. Job progress is every llm stage's chunk topic; job results arrive on
// "<pipeline>.results". The backlog bound and /readyz ask the pipeline.
//
// The returned options refer to `pipeline`, which must outlive the gateway started with them.
#pragma once

#include <string>

#include "eventloom/status.h"
#include "gateway/gateway.h"
#include "pipeline/pipeline.h"

namespace eventloom::gateway {

// `listen` overrides gateway.listen when not empty. InvalidArgument, at the route's place in
// the file, for a route whose topic no llm stage consumes.
Result<GatewayOptions> GatewayOptionsFor(const pipeline::Pipeline& pipeline,
                                         const std::string& listen = {});

}  // namespace eventloom::gateway
