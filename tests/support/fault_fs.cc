#include "support/fault_fs.h"

#include <algorithm>
#include <filesystem>

namespace jaiminho::testing {
namespace {

class FaultFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultFile(std::unique_ptr<rocksdb::FSWritableFile>&& t, FaultFileSystem* fs, std::string name, uint64_t size)
      : FSWritableFileOwnerWrapper(std::move(t)), fs_(fs), name_(std::move(name)), size_(size) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* d) override {
    if (!fs_->active()) return rocksdb::IOStatus::OK();
    if (auto s = fs_->MaybeFail(name_, false); !s.ok()) {
      if (fs_->partial_appends() && data.size() > 1) {
        // A torn write: half the data reaches the file, then the error.
        rocksdb::Slice half(data.data(), data.size() / 2);
        if (target()->Append(half, o, d).ok()) {
          size_ += half.size();
          fs_->Wrote(name_, size_);
        }
      }
      return s;
    }
    auto s = target()->Append(data, o, d);
    if (s.ok()) {
      size_ += data.size();
      fs_->Wrote(name_, size_);
    }
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& /*info*/, rocksdb::IODebugContext* d) override {
    return Append(data, o, d);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* d) override {
    if (!fs_->active()) return rocksdb::IOStatus::OK();
    if (auto s = fs_->MaybeFail(name_, false); !s.ok()) return s;
    auto s = target()->PositionedAppend(data, offset, o, d);
    if (s.ok()) {
      size_ = std::max(size_, offset + data.size());
      fs_->Wrote(name_, size_);
    }
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& /*info*/,
                                     rocksdb::IODebugContext* d) override {
    return PositionedAppend(data, offset, o, d);
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (!fs_->active()) return rocksdb::IOStatus::OK();
    auto s = target()->Truncate(size, o, d);
    if (s.ok()) {
      size_ = size;
      fs_->Wrote(name_, size_);
    }
    return s;
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (!fs_->active()) return rocksdb::IOStatus::OK();
    return target()->Flush(o, d);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override { return DoSync(o, d); }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override { return DoSync(o, d); }
  rocksdb::IOStatus RangeSync(uint64_t /*offset*/, uint64_t /*nbytes*/, const rocksdb::IOOptions& /*o*/,
                              rocksdb::IODebugContext* /*d*/) override {
    // A range sync is only a hint for write-back; it guarantees nothing.
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (!fs_->active()) return rocksdb::IOStatus::OK();
    return target()->Close(o, d);
  }

 private:
  rocksdb::IOStatus DoSync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) {
    if (!fs_->active()) return rocksdb::IOStatus::OK();
    if (auto s = fs_->MaybeFail(name_, true); !s.ok()) return s;
    auto s = target()->Fsync(o, d);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }

  FaultFileSystem* fs_;
  std::string name_;
  uint64_t size_;
};

uint64_t FileSize(const std::string& f) {
  std::error_code ec;
  auto n = std::filesystem::file_size(f, ec);
  return ec ? 0 : n;
}

}  // namespace

FaultFileSystem::FaultFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

std::unique_ptr<rocksdb::Env> FaultFileSystem::NewEnv() {
  // The Env keeps a shared_ptr to us; callers keep us alive longer than the Env.
  return rocksdb::NewCompositeEnv(std::shared_ptr<rocksdb::FileSystem>(this, [](rocksdb::FileSystem*) {}));
}

void FaultFileSystem::SetFaultFilter(std::string substring) {
  std::lock_guard l(mu_);
  filter_ = std::move(substring);
}

bool FaultFileSystem::Matches(const std::string& f) {
  std::lock_guard l(mu_);
  return filter_.empty() || f.find(filter_) != std::string::npos;
}

rocksdb::IOStatus FaultFileSystem::MaybeFail(const std::string& f, bool is_sync) {
  FaultKind k = write_fault_.load();
  if (k == FaultKind::kNone && is_sync) k = sync_fault_.load();
  if (k == FaultKind::kNone || !Matches(f)) return rocksdb::IOStatus::OK();
  if (skip_.load() > 0 && skip_.fetch_sub(1) > 0) return rocksdb::IOStatus::OK();
  injected_.fetch_add(1);
  if (k == FaultKind::kNoSpace) return rocksdb::IOStatus::NoSpace("injected ENOSPC");
  return rocksdb::IOStatus::IOError("injected EIO");
}

void FaultFileSystem::Wrote(const std::string& f, uint64_t new_size) {
  appends_.fetch_add(1);
  {
    std::lock_guard l(mu_);
    files_[f].size = new_size;
  }
  if (deactivate_after_appends_.load() > 0 && Matches(f) && deactivate_after_appends_.fetch_sub(1) == 1) Deactivate();
}

void FaultFileSystem::Synced(const std::string& f) {
  syncs_.fetch_add(1);
  {
    std::lock_guard l(mu_);
    auto& st = files_[f];
    st.synced = st.size;
    st.ever_synced = true;
  }
  if (deactivate_after_syncs_.load() > 0 && Matches(f) && deactivate_after_syncs_.fetch_sub(1) == 1) Deactivate();
}

rocksdb::IOStatus FaultFileSystem::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                   rocksdb::IODebugContext* d) {
  if (!active()) return rocksdb::IOStatus::IOError("file system inactive (simulated power loss)");
  std::unique_ptr<rocksdb::FSWritableFile> inner;
  auto s = target()->NewWritableFile(f, o, &inner, d);
  if (!s.ok()) return s;
  {
    std::lock_guard l(mu_);
    files_[f] = FileState{};
  }
  r->reset(new FaultFile(std::move(inner), this, f, 0));
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                      rocksdb::IODebugContext* d) {
  if (!active()) return rocksdb::IOStatus::IOError("file system inactive (simulated power loss)");
  uint64_t size = FileSize(f);
  std::unique_ptr<rocksdb::FSWritableFile> inner;
  auto s = target()->ReopenWritableFile(f, o, &inner, d);
  if (!s.ok()) return s;
  {
    std::lock_guard l(mu_);
    auto [it, inserted] = files_.try_emplace(f);
    if (inserted) it->second = FileState{size, size, true};  // existed before: on disk
  }
  r->reset(new FaultFile(std::move(inner), this, f, size));
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReuseWritableFile(const std::string& f, const std::string& old,
                                                     const rocksdb::FileOptions& o,
                                                     std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                     rocksdb::IODebugContext* d) {
  if (!active()) return rocksdb::IOStatus::IOError("file system inactive (simulated power loss)");
  std::unique_ptr<rocksdb::FSWritableFile> inner;
  auto s = target()->ReuseWritableFile(f, old, o, &inner, d);
  if (!s.ok()) return s;
  {
    std::lock_guard l(mu_);
    files_.erase(old);
    files_[f] = FileState{};
  }
  r->reset(new FaultFile(std::move(inner), this, f, 0));
  return s;
}

rocksdb::IOStatus FaultFileSystem::RenameFile(const std::string& s, const std::string& t, const rocksdb::IOOptions& o,
                                              rocksdb::IODebugContext* d) {
  if (!active()) return rocksdb::IOStatus::OK();
  auto st = target()->RenameFile(s, t, o, d);
  if (st.ok()) {
    std::lock_guard l(mu_);
    auto it = files_.find(s);
    if (it != files_.end()) {
      files_[t] = it->second;
      files_.erase(s);
    } else {
      files_.erase(t);
    }
  }
  return st;
}

rocksdb::IOStatus FaultFileSystem::DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                                              rocksdb::IODebugContext* d) {
  if (!active()) return rocksdb::IOStatus::OK();
  auto st = target()->DeleteFile(f, o, d);
  if (st.ok()) {
    std::lock_guard l(mu_);
    files_.erase(f);
  }
  return st;
}

uint64_t FaultFileSystem::DropUnsyncedData(std::mt19937_64* rng) {
  std::lock_guard l(mu_);
  uint64_t dropped = 0;
  for (auto& [name, st] : files_) {
    uint64_t on_disk = FileSize(name);
    uint64_t keep = st.ever_synced ? std::min(st.synced, on_disk) : 0;
    if (rng != nullptr && on_disk > keep) {
      // Some of the unsynced pages may have reached the disk before the cut.
      keep += std::uniform_int_distribution<uint64_t>(0, on_disk - keep)(*rng);
    }
    if (!st.ever_synced && keep == 0) {
      dropped += on_disk;
      std::error_code ec;
      std::filesystem::remove(name, ec);
      continue;
    }
    if (on_disk > keep) {
      dropped += on_disk - keep;
      std::filesystem::resize_file(name, keep);
    }
  }
  files_.clear();
  deactivate_after_syncs_.store(0);
  deactivate_after_appends_.store(0);
  active_.store(true);
  return dropped;
}

}  // namespace jaiminho::testing
