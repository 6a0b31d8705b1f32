// CloudEvents ingest: POST /v1/events[/{topic}] (cloudevents_http.h for the three modes).
//
// The topic is the path's, or the first of spec.event_topics; it must be one of them (404
// otherwise) and within the caller's key (403). The events of one request are published
// together, all or none (a batch with one bad event is refused whole, naming the event), and
// the answer is 202 with where each landed.
#include <fmt/format.h>

#include <algorithm>

#include "gateway/cloudevents_http.h"
#include "gateway/openai_json.h"
#include "gateway/server.h"

namespace eventloom::gateway::internal {

namespace {

std::string JoinTopics(const std::vector<std::string>& topics) {
    std::string out;
    for (const std::string& topic : topics) {
        if (!out.empty()) out += ", ";
        out += topic;
    }
    return out;
}

}  // namespace

void HandleEvents(Server& server, RequestContext ctx) {
    const pipeline::GatewaySpec& spec = server.options().spec;
    std::string topic = ctx.param;
    if (topic.empty()) {
        if (spec.event_topics.empty()) {
            ctx.exchange->Respond(
                ErrorResponse(404, "this gateway takes no events: its event_topics list is empty",
                              "invalid_request_error", "topic_not_found"));
            return;
        }
        topic = spec.event_topics.front();
    } else if (std::find(spec.event_topics.begin(), spec.event_topics.end(), topic) ==
               spec.event_topics.end()) {
        ctx.exchange->Respond(ErrorResponse(
            404,
            fmt::format("topic '{}' does not take events over HTTP (the gateway's event_topics: "
                        "{})",
                        topic, spec.event_topics.empty() ? "none" : JoinTopics(spec.event_topics)),
            "invalid_request_error", "topic_not_found"));
        return;
    }
    if (!server.MayPublish(ctx, topic)) return;

    // The broker's limits (one event at most 1 MiB), whatever the body limit: an event the
    // log would refuse is refused here with the reason.
    const EventLimits limits;
    auto events = ParseCloudEventsRequest(ctx.request().headers, ctx.request().body, limits);
    if (!events.ok()) {
        ctx.exchange->Respond(ErrorResponse(400, events.status().message(), "invalid_request_error",
                                            "invalid_event"));
        return;
    }
    if (!server.Admit(ctx, topic, 0)) return;

    auto published = server.broker()->PublishBatch(topic, *events);
    if (!published.ok()) {
        ctx.exchange->Respond(
            StatusResponse(published.status(), fmt::format("publish to topic '{}'", topic)));
        return;
    }
    nlohmann::json accepted = nlohmann::json::array();
    for (size_t i = 0; i < events->size() && i < published->size(); ++i) {
        const PublishResult& r = (*published)[i];
        nlohmann::json entry = {{"id", (*events)[i].id},
                                {"topic", topic},
                                {"partition", r.partition.value()},
                                {"offset", r.offset.value()}};
        if (r.duplicate) entry["duplicate"] = true;
        accepted.push_back(std::move(entry));
    }
    ctx.exchange->Respond(JsonResponse(202, {{"accepted", std::move(accepted)}}));
}

}  // namespace eventloom::gateway::internal
