// Support code shared by the benchmarks: latency summaries, plain-text tables, temporary
// directories, free loopback ports and child processes (the peer servers a benchmark starts
// and stops itself).
//
// Everything here is for benchmarks and tools, not for the runtime: functions may block, and
// nothing is tuned for the hot path. Unless a comment says otherwise, objects are not
// thread-safe; free functions are safe to call from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::bench {

// ---------------------------------------------------------------------------------------------
// Latency summaries.

// Percentiles of a set of latencies, in microseconds. All fields are 0 when n == 0.
struct LatencyStats {
    size_t n = 0;
    double p50_us = 0;
    double p90_us = 0;
    double p99_us = 0;
    double max_us = 0;
    double mean_us = 0;
};

// Summarizes latencies given in microseconds. Percentiles use the nearest-rank method: the
// p-th percentile is the smallest sample with at least p% of the samples at or below it, so it
// is always one of the samples.
LatencyStats Summarize(std::vector<double> micros);

// Microseconds elapsed between two steady-clock points.
inline double MicrosBetween(std::chrono::steady_clock::time_point from,
                            std::chrono::steady_clock::time_point to) {
    return std::chrono::duration<double, std::micro>(to - from).count();
}

// Seconds elapsed between two steady-clock points.
inline double SecondsBetween(std::chrono::steady_clock::time_point from,
                             std::chrono::steady_clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// `count / seconds`, or 0 when no time passed.
inline double RatePerSecond(double count, double seconds) {
    return seconds > 0 ? count / seconds : 0;
}

// ---------------------------------------------------------------------------------------------
// Formatting.

// A rate with an SI suffix and one decimal: "950/s", "188.2k/s", "1.5M/s".
std::string FormatRate(double per_s);

// A latency in the unit that keeps it readable: "87 us", "126.4 us", "1.25 ms", "2.10 s".
std::string FormatMicros(double us);

// A byte count in binary units: "256 B", "1 KiB", "1.5 MiB".
std::string FormatBytes(uint64_t bytes);

// "p50 126 us, p90 180 us, p99 270 us, max 1.20 ms".
std::string FormatLatency(const LatencyStats& stats);

// A table cell: `value`, or "n/a (<error>)" when the measurement failed with `status`.
std::string CellOr(const Status& status, const std::string& value);

// ---------------------------------------------------------------------------------------------
// Tables.

// A plain-text table: a header row, a dashed rule, then the rows, each column padded to its
// widest cell. The first column is left-aligned and the others right-aligned (labels first,
// figures after), unless SetAlignment says otherwise. Rows may have fewer cells than the header
// (the rest print empty) or more (the table widens).
class Table {
public:
    enum class Align { kLeft, kRight };

    void SetHeader(std::vector<std::string> columns);
    void AddRow(std::vector<std::string> cells);
    void SetAlignment(size_t column, Align align);

    // Writes the table; every line ends with '\n'. Columns are separated by two spaces.
    void Print(std::ostream& out) const;

    size_t row_count() const { return rows_.size(); }

private:
    Align AlignmentOf(size_t column) const;

    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<std::pair<size_t, Align>> alignments_;
};

// ---------------------------------------------------------------------------------------------
// Temporary directories.

// Creates a fresh directory named "<prefix>XXXXXX" (mkdtemp) under `parent`, or under $TMPDIR
// (falling back to /tmp) when `parent` is empty. Returns its path. The caller removes it.
Result<std::string> MakeTempDir(std::string_view prefix, std::string_view parent = {});

// Owns a temporary directory and removes it, with everything inside, when destroyed.
// Movable, not copyable; a moved-from TempDir owns nothing.
class TempDir {
public:
    static Result<TempDir> Create(std::string_view prefix, std::string_view parent = {});

    TempDir(TempDir&& other) noexcept;
    TempDir& operator=(TempDir&& other) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();

    const std::string& path() const { return path_; }

    // Removes the directory now (errors are ignored, as in the destructor).
    void Remove();

private:
    explicit TempDir(std::string path) : path_(std::move(path)) {}

    std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Loopback TCP.

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read the port, close).
// Another process may take it before the caller binds it; benchmarks accept that race.
// Returns -1 when no socket could be bound.
int FreeTcpPort();

// Polls until something accepts TCP connections on 127.0.0.1:`port`. Returns
// DeadlineExceeded when nothing did within `timeout`.
Status WaitForTcpPort(int port, std::chrono::milliseconds timeout);

// ---------------------------------------------------------------------------------------------
// Child processes.

// The path of an executable named `name`: `name` itself when it contains a '/', otherwise the
// first match in $PATH, then /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin
// (nats-server is in /usr/sbin on Debian, which is not on every user's PATH). NotFound when
// there is none.
Result<std::string> FindExecutable(std::string_view name);

// A child process running in its own process group, with stdout and stderr appended to a log
// file. Stop() (and the destructor) sends SIGTERM to the group, waits up to 3 s, then sends
// SIGKILL and reaps the child, so a benchmark never leaves a server running.
//
// As a second guard, the child gets SIGKILL if the thread that called Start() exits
// (PR_SET_PDEATHSIG), which covers a benchmark killed before its destructors run. Start
// children from a thread that outlives them (the main thread, typically).
//
// Movable, not copyable. Not thread-safe.
class ChildProcess {
public:
    // Starts argv[0] (resolved with FindExecutable) with arguments argv[1..]. Fails when the
    // executable is missing, the log cannot be opened or exec fails (reported by the child
    // through a close-on-exec pipe, so an exec failure is an error here, not a silent exit).
    static Result<ChildProcess> Start(std::vector<std::string> argv, std::string log_path);

    ChildProcess(ChildProcess&& other) noexcept;
    ChildProcess& operator=(ChildProcess&& other) noexcept;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess();

    // The child's pid (also its process group id); -1 once stopped or moved from.
    pid_t pid() const { return pid_; }
    const std::string& log_path() const { return log_path_; }

    // True while the child has not exited. Does not reap it (Stop() does), so its pid and
    // process group id stay reserved until Stop().
    bool Running() const;

    // Terminates the process group (SIGTERM, then SIGKILL after 3 s) and reaps the child.
    // Returns OK when the child is gone, also when it had already exited. Idempotent.
    Status Stop();

    // Waits until the child accepts TCP connections on 127.0.0.1:`port`. Fails early, with the
    // tail of the log in the message, when the child exits first.
    Status WaitForPort(int port, std::chrono::milliseconds timeout);

    // The last `max_bytes` of the log file ("" when it cannot be read): for error messages.
    std::string LogTail(size_t max_bytes = 2048) const;

private:
    ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

    pid_t pid_ = -1;
    std::string log_path_;
};

}  // namespace eventloom::bench
