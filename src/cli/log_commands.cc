// eventloom topics|publish|tail: the embedded log from the command line.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cli/cli.h"
#include "eventloom/event.h"
#include "eventloom/log.h"

namespace eventloom::cli {
namespace {

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted = true; }

Result<std::unique_ptr<Log>> OpenLog(const GlobalOptions& global, bool read_only) {
    LogOptions options;
    options.dir = global.data_dir;
    options.read_only = read_only;
    return Log::Open(options);
}

Result<Topic*> OpenTopic(Log& log, const std::string& name) {
    auto topic = log.GetTopic(name);
    if (!topic.ok()) {
        return NotFoundError("topic '" + name +
                             "' does not exist; create it with 'eventloom topics create " + name +
                             "'");
    }
    return topic;
}

// ---- topics -------------------------------------------------------------------------------

struct TopicFlags {
    std::string name;
    int partitions = 1;
    std::string durability = "always";
    std::string sync_interval = "100ms";
    std::string segment_size = "64M";
    std::string retention_size = "0";
    std::string retention_age = "0";
    std::string max_record_size = "1M";
    bool json = false;
};

Result<TopicOptions> ToTopicOptions(const TopicFlags& f) {
    TopicOptions o;
    o.partitions = f.partitions;
    EVENTLOOM_ASSIGN_OR_RETURN(o.durability, ParseDurability(f.durability));
    EVENTLOOM_ASSIGN_OR_RETURN(o.sync_interval, ParseDuration(f.sync_interval));
    EVENTLOOM_ASSIGN_OR_RETURN(o.segment_bytes, ParseBytes(f.segment_size));
    EVENTLOOM_ASSIGN_OR_RETURN(o.retention_bytes, ParseBytes(f.retention_size));
    EVENTLOOM_ASSIGN_OR_RETURN(o.retention_age, ParseDuration(f.retention_age));
    EVENTLOOM_ASSIGN_OR_RETURN(uint64_t max_record, ParseBytes(f.max_record_size));
    o.max_record_bytes = static_cast<uint32_t>(std::min<uint64_t>(max_record, UINT32_MAX));
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicOptions(o));
    return o;
}

int RunTopicsCreate(const GlobalOptions& g, const TopicFlags& f) {
    auto options = ToTopicOptions(f);
    if (!options.ok()) return Fail(options.status());
    auto log = OpenLog(g, false);
    if (!log.ok()) return Fail(log.status());
    auto topic = (*log)->CreateTopic(f.name, *options);
    if (!topic.ok()) return Fail(topic.status());
    std::cout << "created topic " << f.name << " partitions=" << options->partitions
              << " durability=" << DurabilityName(options->durability) << "\n";
    return 0;
}

int RunTopicsList(const GlobalOptions& g) {
    auto log = OpenLog(g, true);
    if (!log.ok()) return Fail(log.status());
    for (const std::string& name : (*log)->ListTopics()) std::cout << name << "\n";
    return 0;
}

int RunTopicsDescribe(const GlobalOptions& g, const TopicFlags& f) {
    auto log = OpenLog(g, true);
    if (!log.ok()) return Fail(log.status());
    auto topic = OpenTopic(**log, f.name);
    if (!topic.ok()) return Fail(topic.status());
    const TopicOptions& o = (*topic)->options();
    nlohmann::json out = {
        {"topic", f.name},
        {"durability", DurabilityName(o.durability)},
        {"segment_bytes", o.segment_bytes},
        {"retention_bytes", o.retention_bytes},
        {"retention_age_ms", o.retention_age.count()},
        {"max_record_bytes", o.max_record_bytes},
        {"partitions", nlohmann::json::array()},
    };
    if (o.durability == Durability::kInterval) out["sync_interval_ms"] = o.sync_interval.count();
    for (int32_t p = 0; p < o.partitions; ++p) {
        auto info = (*topic)->Describe(PartitionId(p));
        if (!info.ok()) return Fail(info.status());
        nlohmann::json pj = {{"partition", p},
                             {"start_offset", info->start_offset.value()},
                             {"end_offset", info->end_offset.value()},
                             {"segments", info->segments},
                             {"bytes", info->bytes}};
        if (!info->error.empty()) pj["error"] = info->error;
        out["partitions"].push_back(pj);
    }
    if (f.json) {
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    std::cout << "topic " << f.name << ": " << o.partitions << " partition(s), durability "
              << DurabilityName(o.durability) << ", segments of " << o.segment_bytes << " bytes\n";
    std::cout << "partition  start_offset  end_offset  segments  bytes\n";
    for (const auto& pj : out["partitions"]) {
        std::printf(
            "%9d  %12lld  %10lld  %8d  %lld%s\n", pj["partition"].get<int>(),
            static_cast<long long>(pj["start_offset"].get<int64_t>()),
            static_cast<long long>(pj["end_offset"].get<int64_t>()), pj["segments"].get<int>(),
            static_cast<long long>(pj["bytes"].get<uint64_t>()),
            pj.contains("error") ? ("  ERROR: " + pj["error"].get<std::string>()).c_str() : "");
    }
    return 0;
}

// ---- publish ------------------------------------------------------------------------------

struct PublishFlags {
    std::string topic;
    std::string file;
    Event event;
    std::string data;
    std::string priority;
    std::vector<std::string> extensions;
};

Result<Event> EventFromFlags(const PublishFlags& f) {
    Event e = f.event;
    if (e.source.empty()) e.source = "eventloom-cli";
    if (!f.data.empty()) {
        e.data = f.data;
        e.has_data = true;
    }
    if (!f.priority.empty()) {
        try {
            e.priority = std::stoi(f.priority);
        } catch (const std::exception&) {
            return InvalidArgumentError("--priority must be a number 0..9, got '" + f.priority +
                                        "'");
        }
    }
    for (const std::string& kv : f.extensions) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            return InvalidArgumentError("--ext must be NAME=VALUE, got '" + kv + "'");
        }
        e.extensions.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    FillDefaults(&e);
    EVENTLOOM_RETURN_IF_ERROR(ValidateEvent(e));
    return e;
}

// Publishes JSON-lines events from `in`: a window of appends, then one wait for durability.
int PublishLines(Topic* topic, std::istream& in, const std::string& where) {
    std::string line;
    int line_no = 0;
    std::map<int32_t, std::pair<int64_t, int64_t>> ranges;  // partition -> first, last offset
    std::optional<RecordPosition> last;
    std::map<int32_t, RecordPosition> last_by_partition;
    int64_t count = 0;
    std::string record;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto event = EventFromJson(line);
        if (!event.ok()) {
            return Fail(event.status().WithContext(where + " line " + std::to_string(line_no)));
        }
        FillDefaults(&*event);
        record.clear();
        AppendEncodedEvent(*event, &record);
        auto pos = topic->Append(event->partitionkey, record);
        while (!pos.ok() && pos.status().code() == StatusCode::kResourceExhausted) {
            for (auto& [p, at] : last_by_partition) {
                if (Status s = topic->WaitDurable(at); !s.ok()) return Fail(s);
            }
            pos = topic->Append(event->partitionkey, record);
        }
        if (!pos.ok()) {
            return Fail(pos.status().WithContext(where + " line " + std::to_string(line_no)));
        }
        auto [it, fresh] = ranges.emplace(pos->partition.value(),
                                          std::make_pair(pos->offset.value(), pos->offset.value()));
        it->second.second = pos->offset.value();
        last_by_partition[pos->partition.value()] = *pos;
        ++count;
    }
    for (auto& [p, at] : last_by_partition) {
        if (Status s = topic->WaitDurable(at); !s.ok()) return Fail(s);
    }
    std::cout << "published " << count << " event(s) to " << topic->name();
    for (auto& [p, range] : ranges) {
        std::cout << "  partition=" << p << " offsets=" << range.first << ".." << range.second;
    }
    std::cout << "\n";
    return 0;
}

int RunPublish(const GlobalOptions& g, const PublishFlags& f) {
    auto log = OpenLog(g, false);
    if (!log.ok()) return Fail(log.status());
    auto topic = OpenTopic(**log, f.topic);
    if (!topic.ok()) return Fail(topic.status());

    if (!f.file.empty()) {
        if (f.file == "-") return PublishLines(*topic, std::cin, "stdin");
        std::ifstream in(f.file);
        if (!in) return Fail(NotFoundError("cannot open " + f.file));
        return PublishLines(*topic, in, f.file);
    }
    if (f.event.type.empty()) {
        return Fail(InvalidArgumentError("--type is required (or give --file with JSON lines)"));
    }
    auto event = EventFromFlags(f);
    if (!event.ok()) return Fail(event.status());
    auto pos = (*topic)->Publish(event->partitionkey, EncodeEvent(*event));
    if (!pos.ok()) return Fail(pos.status());
    std::cout << "published id=" << event->id << " topic=" << f.topic
              << " partition=" << pos->partition.value() << " offset=" << pos->offset.value()
              << "\n";
    return 0;
}

// ---- tail ---------------------------------------------------------------------------------

struct TailFlags {
    std::string topic;
    std::string from = "earliest";
    int partition = -1;
    bool follow = false;
    bool json = false;
    int64_t limit = -1;
};

void PrintRecord(const TailFlags& f, PartitionId partition, const RecordView& record) {
    auto event = DecodeEvent(record.payload);
    if (f.json) {
        // The event is printed as EventToJson wrote it, so its data keeps its bytes.
        std::cout << "{\"partition\":" << partition.value()
                  << ",\"offset\":" << record.offset.value();
        if (event.ok()) {
            std::cout << ",\"event\":" << EventToJson(*event) << "}\n";
        } else {
            std::cout << ",\"error\":" << nlohmann::json(event.status().ToString()).dump() << "}\n";
        }
        return;
    }
    std::cout << "p" << partition.value() << "@" << record.offset.value() << "  ";
    if (!event.ok()) {
        std::cout << "(undecodable: " << event.status().message() << ")\n";
        return;
    }
    std::cout << event->type << "  id=" << event->id;
    if (!event->partitionkey.empty()) std::cout << "  key=" << event->partitionkey;
    if (event->has_data) {
        std::string data =
            event->data.size() > 200 ? event->data.substr(0, 200) + "..." : event->data;
        std::cout << "  " << data;
    }
    std::cout << "\n";
}

int RunTail(const GlobalOptions& g, const TailFlags& f) {
    auto log = OpenLog(g, true);
    if (!log.ok()) return Fail(log.status());
    auto topic = OpenTopic(**log, f.topic);
    if (!topic.ok()) return Fail(topic.status());
    int32_t partitions = (*topic)->partitions();
    if (f.partition >= partitions) {
        return Fail(InvalidArgumentError("topic " + f.topic + " has " + std::to_string(partitions) +
                                         " partition(s); --partition " +
                                         std::to_string(f.partition) + " does not exist"));
    }

    std::vector<PartitionId> chosen;
    for (int32_t p = 0; p < partitions; ++p) {
        if (f.partition < 0 || f.partition == p) chosen.push_back(PartitionId(p));
    }
    std::vector<std::unique_ptr<Reader>> readers;
    for (PartitionId p : chosen) {
        auto info = (*topic)->Describe(p);
        if (!info.ok()) return Fail(info.status());
        Offset from = info->start_offset;
        if (f.from == "latest") {
            from = info->visible_offset;
        } else if (f.from != "earliest") {
            try {
                from = Offset(std::max<int64_t>(std::stoll(f.from), info->start_offset.value()));
                from = std::min(from, info->visible_offset);
            } catch (const std::exception&) {
                return Fail(InvalidArgumentError(
                    "--from must be earliest, latest or an offset, got '" + f.from + "'"));
            }
        }
        auto reader = (*topic)->OpenReader(p, from);
        if (!reader.ok()) return Fail(reader.status());
        readers.push_back(std::move(reader).value());
    }

    std::signal(SIGINT, OnInterrupt);
    std::signal(SIGTERM, OnInterrupt);
    int64_t printed = 0;
    while (!g_interrupted) {
        bool any = false;
        for (size_t i = 0; i < readers.size(); ++i) {
            auto batch = readers[i]->Read(256, 1 << 20);
            if (!batch.ok()) return Fail(batch.status());
            for (const RecordView& r : *batch) {
                if (f.limit >= 0 && printed >= f.limit) return 0;
                PrintRecord(f, chosen[i], r);
                ++printed;
                any = true;
            }
        }
        if (f.limit >= 0 && printed >= f.limit) break;
        if (any) continue;
        if (!f.follow) break;
        std::cout.flush();
        // Another process writes: the reads above re-scan the files; poll them all again soon.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
}

}  // namespace

void AddLogCommands(CLI::App& app, GlobalOptions& g, Action& action) {
    auto* topics = app.add_subcommand("topics", "Create, list and describe topics");
    topics->require_subcommand(1);

    auto create_flags = std::make_shared<TopicFlags>();
    auto* create = topics->add_subcommand("create", "Create a topic (no-op if it exists as given)");
    create->add_option("name", create_flags->name, "Topic name: letters, digits, '.', '_', '-'")
        ->required();
    create->add_option("-p,--partitions", create_flags->partitions, "Number of partitions")
        ->capture_default_str();
    create
        ->add_option("--durability", create_flags->durability,
                     "always: publish returns after fdatasync (group commit); interval: synced "
                     "every --sync-interval; never: synced on segment roll only")
        ->check(CLI::IsMember({"always", "interval", "never"}))
        ->capture_default_str();
    create
        ->add_option("--sync-interval", create_flags->sync_interval,
                     "Sync period for --durability interval (e.g. 100ms, 1s)")
        ->capture_default_str();
    create
        ->add_option("--segment-size", create_flags->segment_size,
                     "Roll to a new segment file past this size (e.g. 64M)")
        ->capture_default_str();
    create
        ->add_option("--retention-size", create_flags->retention_size,
                     "Per partition, drop oldest segments past this size (0: keep all)")
        ->capture_default_str();
    create
        ->add_option("--retention-age", create_flags->retention_age,
                     "Drop segments older than this (e.g. 7d; 0: keep all)")
        ->capture_default_str();
    create
        ->add_option("--max-record-size", create_flags->max_record_size,
                     "Largest event accepted, encoded")
        ->capture_default_str();
    create->callback([&g, &action, create_flags] {
        action = [&g, create_flags] { return RunTopicsCreate(g, *create_flags); };
    });

    auto* list = topics->add_subcommand("list", "List topics");
    list->callback([&g, &action] { action = [&g] { return RunTopicsList(g); }; });

    auto describe_flags = std::make_shared<TopicFlags>();
    auto* describe = topics->add_subcommand("describe", "Show a topic's options and offsets");
    describe->add_option("name", describe_flags->name, "Topic name")->required();
    describe->add_flag("--json", describe_flags->json, "Print JSON");
    describe->callback([&g, &action, describe_flags] {
        action = [&g, describe_flags] { return RunTopicsDescribe(g, *describe_flags); };
    });

    auto pf = std::make_shared<PublishFlags>();
    auto* publish = app.add_subcommand(
        "publish",
        "Publish one event from flags, or many from a file of CloudEvents JSON lines (--file, '-' "
        "for stdin). Returns once the events are durable per the topic's policy.");
    publish->add_option("topic", pf->topic, "Topic to publish to")->required();
    publish->add_option("-f,--file", pf->file, "JSON-lines file of CloudEvents ('-': stdin)");
    publish->add_option("-t,--type", pf->event.type, "Event type, e.g. ticket.created");
    publish->add_option("-s,--source", pf->event.source, "Event source (default eventloom-cli)");
    publish->add_option("--id", pf->event.id, "Event id (default: a new UUIDv7)");
    publish->add_option("--subject", pf->event.subject, "Event subject");
    publish->add_option("-d,--data", pf->data, "Event data");
    publish->add_option("--content-type", pf->event.datacontenttype, "datacontenttype of the data");
    publish->add_option("--dataschema", pf->event.dataschema, "Schema name/version, e.g. ticket/2");
    publish->add_option("-k,--key", pf->event.partitionkey, "Partition key (order kept per key)");
    publish->add_option("--priority", pf->priority, "0 (default) .. 9, higher first");
    publish->add_option("--deadline", pf->event.deadline, "RFC 3339 time the event expires");
    publish->add_option("--traceparent", pf->event.traceparent, "W3C traceparent");
    publish->add_option("--correlation-id", pf->event.correlationid, "correlationid extension");
    publish->add_option("--ext", pf->extensions, "Other extension attribute NAME=VALUE");
    publish->callback([&g, &action, pf] { action = [&g, pf] { return RunPublish(g, *pf); }; });

    auto tf = std::make_shared<TailFlags>();
    auto* tail = app.add_subcommand("tail", "Print the events of a topic");
    tail->add_option("topic", tf->topic, "Topic to read")->required();
    tail->add_option("--from", tf->from, "earliest, latest or an offset")->capture_default_str();
    tail->add_option("-p,--partition", tf->partition, "Only this partition (default: all)");
    tail->add_flag("-F,--follow", tf->follow, "Keep waiting for new events (Ctrl-C stops)");
    tail->add_flag("--json", tf->json, "One JSON object per event, with partition and offset");
    tail->add_option("-n,--limit", tf->limit, "Stop after this many events");
    tail->callback([&g, &action, tf] { action = [&g, tf] { return RunTail(g, *tf); }; });
}

Result<uint64_t> ParseBytes(const std::string& text) {
    if (text.empty()) return InvalidArgumentError("size is empty");
    size_t used = 0;
    double value;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        return InvalidArgumentError("size '" + text + "' is not a number with K, M or G");
    }
    std::string unit = text.substr(used);
    double scale = 1;
    if (unit == "K" || unit == "KiB" || unit == "k")
        scale = 1024;
    else if (unit == "M" || unit == "MiB")
        scale = 1024.0 * 1024;
    else if (unit == "G" || unit == "GiB")
        scale = 1024.0 * 1024 * 1024;
    else if (!unit.empty() && unit != "B") {
        return InvalidArgumentError("size '" + text + "' has unknown unit '" + unit + "'");
    }
    if (value < 0) return InvalidArgumentError("size '" + text + "' is negative");
    return static_cast<uint64_t>(value * scale);
}

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
    if (text.empty()) return InvalidArgumentError("duration is empty");
    size_t used = 0;
    double value;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        return InvalidArgumentError("duration '" + text +
                                    "' is not a number with ms, s, m, h or d");
    }
    std::string unit = text.substr(used);
    double ms = value;
    if (unit == "s")
        ms = value * 1000;
    else if (unit == "m")
        ms = value * 60'000;
    else if (unit == "h")
        ms = value * 3'600'000;
    else if (unit == "d")
        ms = value * 86'400'000;
    else if (!unit.empty() && unit != "ms") {
        return InvalidArgumentError("duration '" + text + "' has unknown unit '" + unit + "'");
    }
    if (ms < 0) return InvalidArgumentError("duration '" + text + "' is negative");
    return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

int Fail(const Status& status) {
    std::cerr << "error: " << status.ToString() << "\n";
    return 1;
}

}  // namespace eventloom::cli
