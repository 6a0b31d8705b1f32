#include "gateway/pipeline_gateway.h"

#include <fmt/format.h>

namespace eventloom::gateway {

Result<GatewayOptions> GatewayOptionsFor(const pipeline::Pipeline& pipeline,
                                         const std::string& listen) {
    const pipeline::PipelineSpec& spec = pipeline.spec();
    GatewayOptions o;
    o.spec = spec.gateway;
    if (!listen.empty()) o.spec.listen = listen;
    o.pipeline_name = spec.name;
    o.results_topic = spec.ResultsTopic();
    o.progress_topics = pipeline.ChunkTopics();
    for (const pipeline::OpenAiRouteSpec& route : spec.gateway.openai) {
        auto replies = pipeline.RepliesFor(route.topic);
        if (!replies.ok()) {
            return InvalidArgumentError(
                fmt::format("{}: gateway model '{}': no llm stage consumes topic '{}'",
                            route.where.ToString(), route.model, route.topic));
        }
        o.chat_routes.push_back(
            {route.model, route.topic, replies->reply_topic, replies->chunks_topic});
    }
    o.backlog = [&pipeline](const std::string& topic) { return pipeline.Backlog(topic); };
    o.ready = [&pipeline] { return pipeline.Ready(); };
    return o;
}

}  // namespace eventloom::gateway
