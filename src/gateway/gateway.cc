// Gateway: see gateway.h. The work is done by internal::Server (server.h).
#include "gateway/gateway.h"

#include "gateway/server.h"

namespace eventloom::gateway {

Result<std::unique_ptr<Gateway>> Gateway::Start(Broker* broker, pipeline::JobStore* jobs,
                                                GatewayOptions options) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto server,
                               internal::Server::Start(broker, jobs, std::move(options)));
    return std::unique_ptr<Gateway>(new Gateway(std::move(server)));
}

Gateway::Gateway(std::unique_ptr<internal::Server> server) : server_(std::move(server)) {}

Gateway::~Gateway() { Stop(std::chrono::milliseconds(0)); }

uint16_t Gateway::port() const { return server_->port(); }

void Gateway::BeginDrain() { server_->BeginDrain(); }

void Gateway::Stop(std::chrono::milliseconds grace) { server_->Stop(grace); }

GatewayStats Gateway::stats() const { return server_->stats(); }

}  // namespace eventloom::gateway
