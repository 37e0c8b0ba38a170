#include "storage/wal_env.h"

#include <rocksdb/file_system.h>

#include <algorithm>
#include <string>

namespace jaiminho::internal {
namespace {

// A log file whose preallocation steps are at most `cap`.
class WalFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  WalFile(std::unique_ptr<rocksdb::FSWritableFile> file, size_t cap)
      : FSWritableFileOwnerWrapper(std::move(file)), cap_(cap) {}
  void SetPreallocationBlockSize(size_t size) override {
    FSWritableFileOwnerWrapper::SetPreallocationBlockSize(std::min(size, cap_));
  }

 private:
  const size_t cap_;
};

class WalFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  WalFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base, std::function<uint64_t()> step)
      : FileSystemWrapper(base), step_(std::move(step)) {}
  const char* Name() const override { return "JaiminhoWalFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& file_opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    auto s = target()->NewWritableFile(fname, file_opts, result, dbg);
    Wrap(fname, s, result);
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& file_opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    auto s = target()->ReuseWritableFile(fname, old_fname, file_opts, result, dbg);
    Wrap(fname, s, result);
    return s;
  }

  rocksdb::FileOptions OptimizeForLogWrite(const rocksdb::FileOptions& file_options,
                                           const rocksdb::DBOptions& db_options) const override {
    rocksdb::FileOptions o = target()->OptimizeForLogWrite(file_options, db_options);
    o.fallocate_with_keep_size = false;
    return o;
  }

 private:
  void Wrap(const std::string& fname, const rocksdb::IOStatus& s, std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (!s.ok() || !*result || !fname.ends_with(".log")) return;
    const size_t cap = std::min<uint64_t>(step_ ? step_() : kMaxWalPreallocation, kMaxWalPreallocation);
    *result = std::make_unique<WalFile>(std::move(*result), cap);
  }

  const std::function<uint64_t()> step_;
};

}  // namespace

std::unique_ptr<rocksdb::Env> MakeWalEnv(rocksdb::Env* base, std::function<uint64_t()> step) {
  if (base == nullptr) base = rocksdb::Env::Default();
  return rocksdb::NewCompositeEnv(std::make_shared<WalFileSystem>(base->GetFileSystem(), std::move(step)));
}

}  // namespace jaiminho::internal
