// A thin layer over the SQLite C API for the state store: one connection, a cache of prepared
// statements, and the mapping of SQLite result codes to Status.
//
// Thread-safety: none. The owner serialises every call (SqliteStateStore holds a mutex).
// A Statement borrows a cached sqlite3_stmt from its SqliteDb and resets it when destroyed; it
// must not outlive the SqliteDb, and only one Statement per SQL text may be alive at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "eventloom/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace eventloom::state {

class SqliteDb;

class Statement {
public:
    Statement(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
    ~Statement();
    Statement(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    Statement& operator=(Statement&&) = delete;

    // Parameters are 1-based. Text and blobs are copied by SQLite. A failed bind is reported
    // by the next Step.
    Statement& BindText(int index, std::string_view text);
    Statement& BindBlob(int index, std::string_view bytes);
    Statement& BindInt64(int index, int64_t value);

    // Runs to the next row: true when there is one, false when the statement is done.
    Result<bool> Step();
    // Runs a statement that returns no rows.
    Status Run();

    int64_t ColumnInt64(int column) const;
    double ColumnDouble(int column) const;
    std::string ColumnBytes(int column) const;
    bool ColumnIsNull(int column) const;

private:
    SqliteDb* db_;
    sqlite3_stmt* stmt_;
    int bind_rc_ = 0;  // SQLITE_OK
};

class SqliteDb {
public:
    // Opens (creating when missing) the database file at `path`, or a private in-memory one for
    // ":memory:". Checks the directory first, so a missing or unwritable one is reported as
    // such rather than as SQLite's "unable to open database file".
    static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                  std::chrono::milliseconds busy_timeout);
    ~SqliteDb();
    SqliteDb(const SqliteDb&) = delete;
    SqliteDb& operator=(const SqliteDb&) = delete;

    const std::string& path() const { return path_; }
    bool in_memory() const { return path_ == ":memory:"; }

    // Runs one or more statements that return no rows (schema, pragmas), without caching.
    Status Exec(const char* sql);

    // The cached statement for `sql`, prepared on first use. `sql` must have static storage
    // (a literal): the cache keys on it.
    Result<Statement> Prepare(std::string_view sql);

    // True while a transaction is open. SQLite rolls a transaction back by itself after some
    // errors (a full disk, an I/O error); this says whether that happened.
    bool InTransaction() const;

    // Rows changed by the last INSERT, UPDATE or DELETE.
    int64_t changes() const;

    // The Status for SQLite result code `rc`, returned by the operation described by `what`.
    // Counts it in error_count().
    Status Error(int rc, std::string_view what);

    // How many errors Error() has produced; the last of them. A transaction compares the count
    // before and after its body to learn whether a storage error happened inside it.
    uint64_t error_count() const { return error_count_; }
    const Status& last_error() const { return last_error_; }

private:
    SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

    sqlite3* db_;
    std::string path_;
    std::unordered_map<std::string_view, sqlite3_stmt*> statements_;
    uint64_t error_count_ = 0;
    Status last_error_;
};

// Rolls back the open transaction when it goes out of scope, unless `committed` was set (also
// when an exception leaves the scope).
struct RollbackUnlessCommitted {
    SqliteDb* db;
    bool committed = false;
    ~RollbackUnlessCommitted() {
        if (!committed && db->InTransaction()) db->Exec("ROLLBACK").IgnoreError();
    }
};

}  // namespace eventloom::state
