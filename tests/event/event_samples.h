// Sample events shared by the event tests.
#pragma once

#include <string>

#include "eventloom/event.h"

namespace eventloom::testing {

// The smallest valid event: the required attributes only.
inline Event MinimalEvent() {
    Event event;
    event.id = "0192f0c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f";
    event.source = "/tickets/api";
    event.type = "ticket.created";
    return event;
}

// A valid event with every known attribute, two unknown extensions and JSON data.
inline Event FullEvent() {
    Event event = MinimalEvent();
    event.time = "2026-12-03T15:42:42.123456Z";
    event.subject = "ticket/42";
    event.datacontenttype = "application/json";
    event.dataschema = "ticket.created/2";
    event.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    event.tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    event.correlationid = "req-7";
    event.causationid = "0192f0c1-0000-7000-8000-000000000001";
    event.partitionkey = "customer-9";
    event.priority = 7;
    event.deadline = "2026-12-03T16:42:42+01:00";
    event.extensions = {{"tenant", "acme"}, {"region", "eu1"}};
    event.data = R"({"title":"printer on fire","tags":["hw","urgent"]})";
    event.has_data = true;
    return event;
}

}  // namespace eventloom::testing
