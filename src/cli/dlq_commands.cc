// eventloom dlq list|show|redrive: inspect dead-letter topics and send events back.
#include <unistd.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "eventloom/broker.h"
#include "eventloom/event.h"
#include "eventloom/log.h"

namespace eventloom::cli {
namespace {

struct DlqFlags {
    std::string topic;
    int64_t offset = -1;
    int partition = -1;
    std::string from = "earliest";
    int64_t limit = -1;
    std::string reason;  // substring filter
    std::string stage;
    std::string to;  // redrive target; default: the source topic in the event
    bool dry_run = false;
    bool json = false;
};

std::map<std::string, std::string> Ext(const Event& e) {
    return {e.extensions.begin(), e.extensions.end()};
}

bool Matches(const DlqFlags& f, const Event& e) {
    auto ext = Ext(e);
    if (!f.reason.empty() &&
        ext[std::string(kDeadLetterReason)].find(f.reason) == std::string::npos) {
        return false;
    }
    if (!f.stage.empty() && ext[std::string(kDeadLetterStage)] != f.stage) return false;
    return true;
}

struct Entry {
    PartitionId partition;
    Offset offset;
    Event event;
};

// Visits every dead-letter event of `topic` from --from on, in partition then offset order.
Status ForEach(Topic* topic, const DlqFlags& f, const std::function<bool(const Entry&)>& visit) {
    for (int32_t p = 0; p < topic->partitions(); ++p) {
        if (f.partition >= 0 && f.partition != p) continue;
        EVENTLOOM_ASSIGN_OR_RETURN(PartitionInfo info, topic->Describe(PartitionId(p)));
        Offset from = info.start_offset;
        if (f.from != "earliest") {
            try {
                from = std::max(info.start_offset, Offset(std::stoll(f.from)));
            } catch (const std::exception&) {
                return InvalidArgumentError("--from must be earliest or an offset, got '" + f.from +
                                            "'");
            }
            from = std::min(from, info.visible_offset);
        }
        EVENTLOOM_ASSIGN_OR_RETURN(auto reader, topic->OpenReader(PartitionId(p), from));
        for (;;) {
            EVENTLOOM_ASSIGN_OR_RETURN(auto batch, reader->Read(256, 4 << 20));
            if (batch.empty()) break;
            for (const RecordView& r : batch) {
                auto event = DecodeEvent(r.payload);
                if (!event.ok()) {
                    return event.status().WithContext("partition " + std::to_string(p) +
                                                      " offset " +
                                                      std::to_string(r.offset.value()));
                }
                if (!visit(Entry{PartitionId(p), r.offset, std::move(event).value()})) {
                    return Status::Ok();
                }
            }
        }
    }
    return Status::Ok();
}

Result<std::pair<std::unique_ptr<Log>, Topic*>> OpenDlq(const GlobalOptions& g,
                                                        const std::string& name) {
    LogOptions options;
    options.dir = g.data_dir;
    options.read_only = true;
    EVENTLOOM_ASSIGN_OR_RETURN(auto log, Log::Open(options));
    auto topic = log->GetTopic(name);
    if (!topic.ok()) {
        return NotFoundError("dead-letter topic '" + name + "' does not exist (they are named " +
                             "'<stage>.dead-letter')");
    }
    Topic* t = *topic;
    return std::make_pair(std::move(log), t);
}

int RunList(const GlobalOptions& g, const DlqFlags& f) {
    auto dlq = OpenDlq(g, f.topic);
    if (!dlq.ok()) return Fail(dlq.status());
    int64_t shown = 0;
    if (!f.json) std::cout << "partition@offset  id  stage  attempts  reason\n";
    Status status = ForEach(dlq->second, f, [&](const Entry& e) {
        if (!Matches(f, e.event)) return true;
        if (f.limit >= 0 && shown >= f.limit) return false;
        ++shown;
        auto ext = Ext(e.event);
        if (f.json) {
            std::cout << "{\"partition\":" << e.partition.value()
                      << ",\"offset\":" << e.offset.value() << ",\"event\":" << EventToJson(e.event)
                      << "}\n";
        } else {
            std::cout << "p" << e.partition.value() << "@" << e.offset.value() << "  " << e.event.id
                      << "  " << ext[std::string(kDeadLetterStage)] << "  "
                      << ext[std::string(kDeadLetterAttempts)] << "  "
                      << ext[std::string(kDeadLetterReason)] << "\n";
        }
        return true;
    });
    if (!status.ok()) return Fail(status);
    if (!f.json) std::cerr << shown << " dead-letter event(s)\n";
    return 0;
}

int RunShow(const GlobalOptions& g, const DlqFlags& f) {
    auto dlq = OpenDlq(g, f.topic);
    if (!dlq.ok()) return Fail(dlq.status());
    DlqFlags at = f;
    at.from = std::to_string(f.offset);
    bool found = false;
    Status status = ForEach(dlq->second, at, [&](const Entry& e) {
        if (e.offset.value() != f.offset) return false;
        found = true;
        std::cout << nlohmann::json::parse(EventToJson(e.event)).dump(2) << "\n";
        return false;
    });
    if (!status.ok()) return Fail(status);
    if (!found) {
        return Fail(
            NotFoundError("no dead-letter event at offset " + std::to_string(f.offset) +
                          (f.partition >= 0 ? " of partition " + std::to_string(f.partition) : "") +
                          " in " + f.topic));
    }
    return 0;
}

void Progress(int64_t done, int64_t total) {
    if (!::isatty(STDERR_FILENO) || total <= 0) return;
    int width = 40;
    int filled = static_cast<int>(width * done / total);
    std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
              << done << "/" << total << std::flush;
    if (done == total) std::cerr << "\n";
}

// The event as it was before it was dead-lettered, and the topic it came from.
std::pair<Event, std::string> Original(const Event& dead) {
    Event e = dead;
    std::string source;
    std::erase_if(e.extensions, [&](const auto& kv) {
        if (kv.first == kDeadLetterSource) source = kv.second.substr(0, kv.second.find('/'));
        return kv.first.rfind("deadletter", 0) == 0;
    });
    return {std::move(e), source};
}

int RunRedrive(const GlobalOptions& g, const DlqFlags& f) {
    std::vector<Entry> chosen;
    {
        auto dlq = OpenDlq(g, f.topic);
        if (!dlq.ok()) return Fail(dlq.status());
        Status status = ForEach(dlq->second, f, [&](const Entry& e) {
            if (!Matches(f, e.event)) return true;
            if (f.limit >= 0 && static_cast<int64_t>(chosen.size()) >= f.limit) return false;
            chosen.push_back(e);
            return true;
        });
        if (!status.ok()) return Fail(status);
    }
    if (chosen.empty()) {
        std::cerr << "nothing to redrive\n";
        return 0;
    }
    EmbeddedBrokerOptions options;
    options.dir = g.data_dir;
    auto broker = OpenEmbeddedBroker(options);
    if (!broker.ok()) {
        return Fail(broker.status().WithContext(
            "redrive publishes into the log; stop the process that holds it first"));
    }
    PublishOptions publish;
    publish.dedupe = false;  // the event's id was published before: that is the point
    std::map<std::string, int64_t> per_topic;
    int64_t done = 0;
    int64_t last_offset = -1;
    for (const Entry& e : chosen) {
        auto [event, source] = Original(e.event);
        std::string target = f.to.empty() ? source : f.to;
        if (target.empty()) {
            return Fail(InvalidArgumentError("event " + event.id + " at offset " +
                                             std::to_string(e.offset.value()) +
                                             " does not name its source topic; give --to"));
        }
        if (!f.dry_run) {
            auto r = (*broker)->Publish(target, event, publish);
            if (!r.ok()) return Fail(r.status().WithContext("redriving " + event.id));
        }
        ++per_topic[target];
        last_offset = std::max(last_offset, e.offset.value());
        Progress(++done, static_cast<int64_t>(chosen.size()));
    }
    for (auto& [topic, n] : per_topic) {
        std::cout << (f.dry_run ? "would redrive " : "redrove ") << n << " event(s) to " << topic
                  << "\n";
    }
    std::cout << "last dead-letter offset: " << last_offset << " (next time: --from "
              << last_offset + 1 << ")\n";
    return 0;
}

void AddFilterFlags(CLI::App* cmd, DlqFlags* f) {
    cmd->add_option("--from", f->from, "earliest or an offset")->capture_default_str();
    cmd->add_option("-p,--partition", f->partition, "Only this partition");
    cmd->add_option("--reason", f->reason, "Only events whose reason contains this text");
    cmd->add_option("--stage", f->stage, "Only events dead-lettered by this stage");
    cmd->add_option("-n,--limit", f->limit, "At most this many events");
}

}  // namespace

void AddDlqCommands(CLI::App& app, GlobalOptions& g, Action& action) {
    auto* dlq = app.add_subcommand(
        "dlq", "Dead-letter topics ('<stage>.dead-letter'): list, show and redrive events");
    dlq->require_subcommand(1);

    auto lf = std::make_shared<DlqFlags>();
    auto* list = dlq->add_subcommand("list", "List dead-letter events with their reasons");
    list->add_option("topic", lf->topic, "Dead-letter topic")->required();
    AddFilterFlags(list, lf.get());
    list->add_flag("--json", lf->json, "One JSON object per event");
    list->callback([&g, &action, lf] { action = [&g, lf] { return RunList(g, *lf); }; });

    auto sf = std::make_shared<DlqFlags>();
    auto* show = dlq->add_subcommand("show", "Show one dead-letter event in full");
    show->add_option("topic", sf->topic, "Dead-letter topic")->required();
    show->add_option("offset", sf->offset, "Its offset")->required();
    show->add_option("-p,--partition", sf->partition, "Its partition (default: the first match)");
    show->callback([&g, &action, sf] { action = [&g, sf] { return RunShow(g, *sf); }; });

    auto rf = std::make_shared<DlqFlags>();
    auto* redrive = dlq->add_subcommand(
        "redrive",
        "Publish dead-letter events again to the topic they came from (or --to), without their "
        "dead-letter attributes. The dead-letter topic keeps them; use --from to go on later.");
    redrive->add_option("topic", rf->topic, "Dead-letter topic")->required();
    AddFilterFlags(redrive, rf.get());
    redrive->add_option("--to", rf->to, "Publish here instead of each event's source topic");
    redrive->add_flag("--dry-run", rf->dry_run, "Show what would be redriven");
    redrive->callback([&g, &action, rf] { action = [&g, rf] { return RunRedrive(g, *rf); }; });
}

}  // namespace eventloom::cli
