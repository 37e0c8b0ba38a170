#include "storage/wal_env.h"

#include <rocksdb/file_system.h>

#include <algorithm>
#include <string>

namespace jaiminho::internal {
namespace {

// A log file whose preallocation steps are at most kMaxWalPreallocation.
class WalFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  using FSWritableFileOwnerWrapper::FSWritableFileOwnerWrapper;
  void SetPreallocationBlockSize(size_t size) override {
    FSWritableFileOwnerWrapper::SetPreallocationBlockSize(std::min(size, kMaxWalPreallocation));
  }
};

class WalFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  using FileSystemWrapper::FileSystemWrapper;
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
  static void Wrap(const std::string& fname, const rocksdb::IOStatus& s,
                   std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (s.ok() && *result && fname.ends_with(".log")) *result = std::make_unique<WalFile>(std::move(*result));
  }
};

}  // namespace

std::unique_ptr<rocksdb::Env> MakeWalEnv(rocksdb::Env* base) {
  if (base == nullptr) base = rocksdb::Env::Default();
  return rocksdb::NewCompositeEnv(std::make_shared<WalFileSystem>(base->GetFileSystem()));
}

}  // namespace jaiminho::internal
