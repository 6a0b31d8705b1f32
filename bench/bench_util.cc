#include "bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

namespace eventloom::bench {
namespace {

constexpr auto kStopGrace = std::chrono::seconds(3);
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string ErrnoMessage(std::string_view what, int err) {
    return fmt::format("{}: {}", what, std::strerror(err));
}

// The nearest-rank percentile of sorted, non-empty `sorted`.
double NearestRank(const std::vector<double>& sorted, double percent) {
    const auto n = static_cast<double>(sorted.size());
    auto rank = static_cast<size_t>(std::ceil(percent / 100.0 * n));
    rank = std::clamp<size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

// Closes a file descriptor when it goes out of scope.
class FdCloser {
public:
    explicit FdCloser(int fd) : fd_(fd) {}
    FdCloser(const FdCloser&) = delete;
    FdCloser& operator=(const FdCloser&) = delete;
    ~FdCloser() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

bool AcceptsConnections(int port) {
    FdCloser fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return false;
    sockaddr_in addr = Loopback(port);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

bool IsExecutableFile(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

// In the forked child: only async-signal-safe calls from here to exec.
[[noreturn]] void ExecChild(const char* path, char* const* argv, int log_fd, int null_fd,
                            int error_fd, pid_t parent) {
    ::setpgid(0, 0);

    // Die with the thread that started us; if it is already gone, do not start at all.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);

    // The parent may block or ignore signals; exec keeps both, and a server that ignores
    // SIGTERM would cost the full grace period on every Stop().
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP}) ::signal(sig, SIG_DFL);

    if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(log_fd, STDOUT_FILENO) < 0 ||
        ::dup2(log_fd, STDERR_FILENO) < 0) {
        int err = errno;
        (void)!::write(error_fd, &err, sizeof(err));
        ::_exit(127);
    }
    ::execv(path, argv);
    int err = errno;
    (void)!::write(error_fd, &err, sizeof(err));
    ::_exit(127);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Latency summaries and formatting.

LatencyStats Summarize(std::vector<double> micros) {
    LatencyStats stats;
    stats.n = micros.size();
    if (micros.empty()) return stats;

    std::sort(micros.begin(), micros.end());
    stats.p50_us = NearestRank(micros, 50);
    stats.p90_us = NearestRank(micros, 90);
    stats.p99_us = NearestRank(micros, 99);
    stats.max_us = micros.back();
    stats.mean_us = std::accumulate(micros.begin(), micros.end(), 0.0) / micros.size();
    return stats;
}

std::string FormatRate(double per_s) {
    if (per_s < 1e3) return fmt::format("{:.0f}/s", per_s);
    if (per_s < 1e6) return fmt::format("{:.1f}k/s", per_s / 1e3);
    if (per_s < 1e9) return fmt::format("{:.1f}M/s", per_s / 1e6);
    return fmt::format("{:.1f}G/s", per_s / 1e9);
}

std::string FormatMicros(double us) {
    if (us < 100) return fmt::format("{:.1f} us", us);
    if (us < 1e3) return fmt::format("{:.0f} us", us);
    if (us < 1e6) return fmt::format("{:.2f} ms", us / 1e3);
    return fmt::format("{:.2f} s", us / 1e6);
}

std::string FormatBytes(uint64_t bytes) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    size_t unit = 0;
    while (value >= 1024 && unit + 1 < std::size(kUnits)) {
        value /= 1024;
        ++unit;
    }
    if (value == std::floor(value)) return fmt::format("{:.0f} {}", value, kUnits[unit]);
    return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string FormatLatency(const LatencyStats& stats) {
    return fmt::format("p50 {}, p90 {}, p99 {}, max {}", FormatMicros(stats.p50_us),
                       FormatMicros(stats.p90_us), FormatMicros(stats.p99_us),
                       FormatMicros(stats.max_us));
}

// ---------------------------------------------------------------------------------------------
// Table.

void Table::SetHeader(std::vector<std::string> columns) { header_ = std::move(columns); }

void Table::AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

void Table::SetAlignment(size_t column, Align align) {
    for (auto& [col, a] : alignments_) {
        if (col == column) {
            a = align;
            return;
        }
    }
    alignments_.emplace_back(column, align);
}

Table::Align Table::AlignmentOf(size_t column) const {
    for (const auto& [col, a] : alignments_) {
        if (col == column) return a;
    }
    return column == 0 ? Align::kLeft : Align::kRight;
}

void Table::Print(std::ostream& out) const {
    // Column widths over the header and every row.
    std::vector<size_t> widths(header_.size(), 0);
    auto widen = [&widths](const std::vector<std::string>& cells) {
        if (cells.size() > widths.size()) widths.resize(cells.size(), 0);
        for (size_t i = 0; i < cells.size(); ++i) widths[i] = std::max(widths[i], cells[i].size());
    };
    widen(header_);
    for (const auto& row : rows_) widen(row);

    auto print_line = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (size_t i = 0; i < widths.size(); ++i) {
            const std::string empty;
            const std::string& cell = i < cells.size() ? cells[i] : empty;
            std::string pad(widths[i] - cell.size(), ' ');
            if (i > 0) line += "  ";
            line += AlignmentOf(i) == Align::kLeft ? cell + pad : pad + cell;
        }
        // Left-aligned last columns would leave trailing blanks.
        line.erase(line.find_last_not_of(' ') + 1);
        out << line << '\n';
    };

    if (!header_.empty()) {
        print_line(header_);
        size_t total = 0;
        for (size_t w : widths) total += w;
        total += widths.empty() ? 0 : 2 * (widths.size() - 1);
        out << std::string(total, '-') << '\n';
    }
    for (const auto& row : rows_) print_line(row);
}

// ---------------------------------------------------------------------------------------------
// Temporary directories.

Result<std::string> MakeTempDir(std::string_view prefix, std::string_view parent) {
    std::string base(parent);
    if (base.empty()) {
        const char* tmpdir = std::getenv("TMPDIR");
        base = (tmpdir != nullptr && *tmpdir != '\0') ? tmpdir : "/tmp";
    }
    std::string path = fmt::format("{}/{}XXXXXX", base, prefix);
    if (::mkdtemp(path.data()) == nullptr) {
        return InternalError(ErrnoMessage(fmt::format("mkdtemp {}", path), errno));
    }
    return path;
}

Result<TempDir> TempDir::Create(std::string_view prefix, std::string_view parent) {
    EVENTLOOM_ASSIGN_OR_RETURN(std::string path, MakeTempDir(prefix, parent));
    return TempDir(std::move(path));
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
    if (this != &other) {
        Remove();
        path_ = std::exchange(other.path_, {});
    }
    return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    path_.clear();
}

// ---------------------------------------------------------------------------------------------
// Loopback TCP.

int FreeTcpPort() {
    FdCloser fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return -1;
    sockaddr_in addr = Loopback(0);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
    socklen_t len = sizeof(addr);
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
    return ntohs(addr.sin_port);
}

Status WaitForTcpPort(int port, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (AcceptsConnections(port)) return Status::Ok();
        if (std::chrono::steady_clock::now() >= deadline) {
            return DeadlineExceededError(
                fmt::format("nothing accepted connections on 127.0.0.1:{} within {} ms", port,
                            timeout.count()));
        }
        std::this_thread::sleep_for(kPollInterval);
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

Result<std::string> FindExecutable(std::string_view name) {
    if (name.empty()) return InvalidArgumentError("empty executable name");
    if (name.find('/') != std::string_view::npos) {
        std::string path(name);
        if (IsExecutableFile(path)) return path;
        return NotFoundError(fmt::format("{} is not an executable file", path));
    }

    std::vector<std::string> dirs;
    if (const char* env = std::getenv("PATH"); env != nullptr) {
        std::string_view rest(env);
        while (!rest.empty()) {
            size_t colon = rest.find(':');
            std::string_view dir = rest.substr(0, colon);
            // An empty entry means the current directory; a benchmark should not depend on it.
            if (!dir.empty()) dirs.emplace_back(dir);
            rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
        }
    }
    for (const char* dir :
         {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
        dirs.emplace_back(dir);
    }

    for (const auto& dir : dirs) {
        std::string path = fmt::format("{}/{}", dir, name);
        if (IsExecutableFile(path)) return path;
    }
    return NotFoundError(
        fmt::format("executable {} not found in PATH, /usr/sbin or /usr/bin", name));
}

Result<ChildProcess> ChildProcess::Start(std::vector<std::string> argv, std::string log_path) {
    if (argv.empty()) return InvalidArgumentError("ChildProcess::Start: empty argv");
    EVENTLOOM_ASSIGN_OR_RETURN(std::string path, FindExecutable(argv[0]));

    // Everything the child needs is prepared here: after fork it may not allocate.
    FdCloser log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (log_fd.get() < 0) return InternalError(ErrnoMessage("open " + log_path, errno));
    FdCloser null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_fd.get() < 0) return InternalError(ErrnoMessage("open /dev/null", errno));
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return InternalError(ErrnoMessage("pipe2", errno));
    FdCloser error_read(pipe_fds[0]);
    auto error_write = std::make_unique<FdCloser>(pipe_fds[1]);

    std::vector<char*> c_argv;
    for (auto& arg : argv) c_argv.push_back(arg.data());
    c_argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) return InternalError(ErrnoMessage("fork", errno));
    if (pid == 0) {
        ExecChild(path.c_str(), c_argv.data(), log_fd.get(), null_fd.get(), error_write->get(),
                  parent);
    }

    // Both sides set the group, so it exists whichever runs first.
    ::setpgid(pid, pid);
    ChildProcess child(pid, std::move(log_path));

    // EOF on the pipe means exec succeeded (the write end closed on exec).
    error_write.reset();
    int child_errno = 0;
    ssize_t n;
    do {
        n = ::read(error_read.get(), &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        child.Stop().IgnoreError();
        return InternalError(ErrnoMessage(fmt::format("exec {}", path), child_errno));
    }
    return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), log_path_(std::move(other.log_path_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
    if (this != &other) {
        Stop().IgnoreError();
        pid_ = std::exchange(other.pid_, -1);
        log_path_ = std::move(other.log_path_);
    }
    return *this;
}

ChildProcess::~ChildProcess() { Stop().IgnoreError(); }

bool ChildProcess::Running() const {
    if (pid_ <= 0) return false;
    siginfo_t info{};
    // WNOWAIT leaves the child a zombie: its pid cannot be reused before Stop() reaps it.
    if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
    return info.si_pid == 0;
}

Status ChildProcess::Stop() {
    if (pid_ <= 0) return Status::Ok();

    // SIGTERM to the whole group, then poll for the leader's exit up to the grace period.
    if (Running() && ::kill(-pid_, SIGTERM) != 0 && errno != ESRCH) {
        return InternalError(ErrnoMessage(fmt::format("kill -TERM -{}", pid_), errno));
    }
    const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
    while (Running() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(kPollInterval);
    }

    // The leader is still unreaped, so its pid still names the group: kill what is left of it
    // (the leader if it ignored SIGTERM, and any children it forked), then reap.
    ::kill(-pid_, SIGKILL);
    int wstatus = 0;
    pid_t reaped;
    do {
        reaped = ::waitpid(pid_, &wstatus, 0);
    } while (reaped < 0 && errno == EINTR);
    pid_ = -1;
    if (reaped < 0 && errno != ECHILD) return InternalError(ErrnoMessage("waitpid", errno));
    return Status::Ok();
}

Status ChildProcess::WaitForPort(int port, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (AcceptsConnections(port)) return Status::Ok();
        if (!Running()) {
            return UnavailableError(fmt::format("pid {} exited before listening on port {}: {}",
                                                pid_, port, LogTail(1024)));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return DeadlineExceededError(fmt::format(
                "pid {} did not listen on port {} within {} ms", pid_, port, timeout.count()));
        }
        std::this_thread::sleep_for(kPollInterval);
    }
}

std::string ChildProcess::LogTail(size_t max_bytes) const {
    std::ifstream in(log_path_, std::ios::binary | std::ios::ate);
    if (!in) return "";
    const std::streamoff size = in.tellg();
    const std::streamoff start = size > static_cast<std::streamoff>(max_bytes)
                                     ? size - static_cast<std::streamoff>(max_bytes)
                                     : 0;
    in.seekg(start);
    std::string tail(static_cast<size_t>(size - start), '\0');
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));

    // Start at a line boundary when the tail was cut.
    if (start > 0) {
        size_t newline = tail.find('\n');
        if (newline != std::string::npos) tail.erase(0, newline + 1);
    }
    return tail;
}

std::string CellOr(const Status& status, const std::string& value) {
    return status.ok() ? value : "n/a (" + status.message().substr(0, 60) + ")";
}

}  // namespace eventloom::bench
