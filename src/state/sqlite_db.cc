#include "state/sqlite_db.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>

namespace eventloom::state {
namespace {

// Empty data pointers bind NULL in SQLite; an empty value must stay an empty value.
const char* NonNull(std::string_view bytes) { return bytes.data() ? bytes.data() : ""; }

// The directory the database file goes into must exist and be writable: SQLite creates the
// file and, in WAL mode, "<path>-wal" and "<path>-shm" beside it.
Status CheckDirectory(const std::string& path) {
    namespace fs = std::filesystem;
    fs::path dir = fs::path(path).parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    fs::file_status st = fs::status(dir, ec);
    if (!fs::exists(st)) {
        return NotFoundError("state store " + path + ": directory " + dir.string() +
                             " does not exist");
    }
    if (!fs::is_directory(st)) {
        return FailedPreconditionError("state store " + path + ": " + dir.string() +
                                       " is not a directory");
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        return FailedPreconditionError("state store " + path + ": directory " + dir.string() +
                                       " is not writable: " + std::strerror(errno));
    }
    if (fs::is_directory(fs::status(path, ec))) {
        return FailedPreconditionError("state store " + path + " is a directory");
    }
    return Status::Ok();
}

}  // namespace

// ---- Statement ------------------------------------------------------------------------------

Statement::~Statement() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), bind_rc_(other.bind_rc_) {
    other.stmt_ = nullptr;
}

Statement& Statement::BindText(int index, std::string_view text) {
    int rc = sqlite3_bind_text64(stmt_, index, NonNull(text), text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
    int rc = sqlite3_bind_blob64(stmt_, index, NonNull(bytes), bytes.size(), SQLITE_TRANSIENT);
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
}

Statement& Statement::BindInt64(int index, int64_t value) {
    int rc = sqlite3_bind_int64(stmt_, index, value);
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
}

Result<bool> Statement::Step() {
    if (bind_rc_ != SQLITE_OK) return db_->Error(bind_rc_, "bind");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_->Error(rc, sqlite3_sql(stmt_));
}

Status Statement::Run() {
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, Step());
    // Statements with RETURNING make all their changes on the first step; the rest is output.
    while (row) {
        EVENTLOOM_ASSIGN_OR_RETURN(row, Step());
    }
    return Status::Ok();
}

int64_t Statement::ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::ColumnBytes(int column) const {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    if (data == nullptr || size <= 0) return {};
    return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

bool Statement::ColumnIsNull(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---- SqliteDb -------------------------------------------------------------------------------

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path,
                                                 std::chrono::milliseconds busy_timeout) {
    if (path.empty()) return InvalidArgumentError("state store path is empty");
    if (path != ":memory:") EVENTLOOM_RETURN_IF_ERROR(CheckDirectory(path));

    // The store's own mutex serialises the connection, so SQLite's is not needed.
    sqlite3* handle = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &handle,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    std::unique_ptr<SqliteDb> db(new SqliteDb(handle, path));
    if (rc != SQLITE_OK) return db->Error(rc, "open");
    sqlite3_extended_result_codes(handle, 1);
    sqlite3_busy_timeout(handle, static_cast<int>(busy_timeout.count()));
    return db;
}

SqliteDb::~SqliteDb() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    // Closing the last connection checkpoints the WAL into the database file.
    sqlite3_close_v2(db_);
}

Status SqliteDb::Exec(const char* sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    sqlite3_free(message);
    if (rc != SQLITE_OK) return Error(rc, sql);
    return Status::Ok();
}

Result<Statement> SqliteDb::Prepare(std::string_view sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return Statement(this, it->second);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, sql);
    statements_.emplace(sql, stmt);
    return Statement(this, stmt);
}

bool SqliteDb::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

int64_t SqliteDb::changes() const { return sqlite3_changes64(db_); }

Status SqliteDb::Error(int rc, std::string_view what) {
    std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    int sys = db_ != nullptr ? sqlite3_system_errno(db_) : 0;
    if (sys != 0 && (rc & 0xff) != SQLITE_BUSY)
        detail += std::string(" (") + std::strerror(sys) + ")";
    std::string message = "state store " + path_ + ": " + std::string(what) + ": " + detail;

    Status status;
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            status = UnavailableError(std::move(message));
            break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            status = DataLossError("state store " + path_ +
                                   " is corrupt or not a SQLite database: " + detail);
            break;
        case SQLITE_FULL:
        case SQLITE_NOMEM:
            status = ResourceExhaustedError(std::move(message));
            break;
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
        case SQLITE_READONLY:
        case SQLITE_AUTH:
            status = FailedPreconditionError(std::move(message));
            break;
        case SQLITE_IOERR:
            // A failing disk does not heal, but a transient I/O error must not dead-letter an
            // event: retry, and let the attempt limit decide.
            status = UnavailableError(std::move(message));
            break;
        case SQLITE_TOOBIG:
            status = InvalidArgumentError(std::move(message));
            break;
        case SQLITE_INTERRUPT:
            status = CancelledError(std::move(message));
            break;
        default:
            status = InternalError(std::move(message));
            break;
    }
    ++error_count_;
    last_error_ = status;
    return status;
}

}  // namespace eventloom::state
