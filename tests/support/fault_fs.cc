#include "support/fault_fs.h"

#include <algorithm>

namespace eventloom::testing {

class FaultFile final : public File {
public:
    FaultFile(FaultFileSystem* fs, std::unique_ptr<File> base) : fs_(fs), base_(std::move(base)) {}

    Status WriteAt(uint64_t offset, std::string_view data) override {
        size_t allowed = data.size();
        Status fault = fs_->BeforeWrite(path(), base_.get(), offset, data, &allowed);
        if (allowed > 0) EVENTLOOM_RETURN_IF_ERROR(base_->WriteAt(offset, data.substr(0, allowed)));
        return fault;
    }
    Result<size_t> ReadAt(uint64_t offset, char* buf, size_t n) const override {
        return base_->ReadAt(offset, buf, n);
    }
    Status Sync() override {
        EVENTLOOM_RETURN_IF_ERROR(fs_->BeforeSync(path()));
        return base_->Sync();
    }
    Status Truncate(uint64_t size) override { return base_->Truncate(size); }
    // Zero-filling fresh space is not recorded: a crash leaves zeros or holes there, which
    // read the same.
    Status Preallocate(uint64_t from, uint64_t size) override {
        return base_->Preallocate(from, size);
    }
    Result<uint64_t> Size() const override { return base_->Size(); }
    const std::string& path() const override { return base_->path(); }

private:
    FaultFileSystem* fs_;
    std::unique_ptr<File> base_;
};

void FaultFileSystem::FailSyncs(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_syncs_ = fail;
}

void FaultFileSystem::TearWritesAfter(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    tear_after_ = bytes;
}

int FaultFileSystem::syncs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return syncs_;
}

size_t FaultFileSystem::unsynced_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [path, undos] : unsynced_) {
        for (const Undo& u : undos) n += u.new_bytes.size();
    }
    return n;
}

Status FaultFileSystem::BeforeWrite(const std::string& path, File* file, uint64_t offset,
                                    std::string_view data, size_t* allowed) {
    std::lock_guard<std::mutex> lock(mu_);
    if (dead_) {
        *allowed = 0;
        return InternalError("write " + path + ": simulated crash");
    }
    Status fault;
    if (tear_after_ >= 0) {
        if (static_cast<int64_t>(data.size()) > tear_after_) {
            *allowed = static_cast<size_t>(tear_after_);
            fault = InternalError("write " + path + ": injected torn write");
        }
        tear_after_ -= static_cast<int64_t>(*allowed);
    }
    Undo undo;
    undo.offset = offset;
    auto size = file->Size();
    undo.old_size = size.ok() ? *size : 0;
    undo.old_bytes.resize(*allowed);
    auto n = file->ReadAt(offset, undo.old_bytes.data(), *allowed);
    undo.old_bytes.resize(n.ok() ? *n : 0);
    undo.new_bytes = std::string(data.substr(0, *allowed));
    unsynced_[path].push_back(std::move(undo));
    return fault;
}

void FaultFileSystem::PauseSyncs() {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
}

void FaultFileSystem::ResumeSyncs() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        paused_ = false;
    }
    resume_cv_.notify_all();
}

int FaultFileSystem::syncs_waiting() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
}

Status FaultFileSystem::BeforeSync(const std::string& path) {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    resume_cv_.wait(lock, [&] { return !paused_; });
    --waiting_;
    if (dead_) return InternalError("fdatasync " + path + ": simulated crash");
    if (fail_syncs_) return InternalError("fdatasync " + path + ": injected I/O error");
    ++syncs_;
    unsynced_.erase(path);
    return Status::Ok();
}

void FaultFileSystem::Crash(size_t keep_torn_bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [path, undos] : unsynced_) {
        auto file = base_->Open(path, OpenMode::kReadWrite);
        if (!file.ok()) continue;
        for (auto it = undos.rbegin(); it != undos.rend(); ++it) {
            (*file)->WriteAt(it->offset, it->old_bytes).IgnoreError();
            // A write that grew the file is undone by cutting the file back.
            if (it->offset + it->new_bytes.size() > it->old_size) {
                (*file)->Truncate(it->old_size).IgnoreError();
            }
        }
        if (keep_torn_bytes > 0 && !undos.empty()) {
            const Undo& first = undos.front();
            size_t keep = std::min(keep_torn_bytes, first.new_bytes.size());
            (*file)
                ->WriteAt(first.offset, std::string_view(first.new_bytes).substr(0, keep))
                .IgnoreError();
        }
    }
    unsynced_.clear();
    dead_ = true;
    paused_ = false;
    resume_cv_.notify_all();
}

void FaultFileSystem::Revive() {
    std::lock_guard<std::mutex> lock(mu_);
    dead_ = false;
    fail_syncs_ = false;
    tear_after_ = -1;
}

Result<std::unique_ptr<File>> FaultFileSystem::Open(const std::string& path, OpenMode mode) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, base_->Open(path, mode));
    return std::unique_ptr<File>(std::make_unique<FaultFile>(this, std::move(file)));
}

Status FaultFileSystem::Remove(const std::string& path) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (dead_) return InternalError("unlink " + path + ": simulated crash");
        unsynced_.erase(path);
    }
    return base_->Remove(path);
}

Status FaultFileSystem::Rename(const std::string& from, const std::string& to) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (dead_) return InternalError("rename " + from + ": simulated crash");
        auto it = unsynced_.find(from);
        if (it != unsynced_.end()) {
            unsynced_[to] = std::move(it->second);
            unsynced_.erase(it);
        }
    }
    return base_->Rename(from, to);
}

Status FaultFileSystem::SyncDir(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    if (dead_) return InternalError("fsync " + path + ": simulated crash");
    return base_->SyncDir(path);
}

}  // namespace eventloom::testing
