#include "storage/wal_env.h"

#include <rocksdb/file_system.h>

namespace jaiminho::internal {
namespace {

class WalFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  using FileSystemWrapper::FileSystemWrapper;
  const char* Name() const override { return "JaiminhoWalFileSystem"; }

  rocksdb::FileOptions OptimizeForLogWrite(const rocksdb::FileOptions& file_options,
                                           const rocksdb::DBOptions& db_options) const override {
    rocksdb::FileOptions o = target()->OptimizeForLogWrite(file_options, db_options);
    o.fallocate_with_keep_size = false;
    return o;
  }
};

}  // namespace

std::unique_ptr<rocksdb::Env> MakeWalEnv(rocksdb::Env* base) {
  if (base == nullptr) base = rocksdb::Env::Default();
  return rocksdb::NewCompositeEnv(std::make_shared<WalFileSystem>(base->GetFileSystem()));
}

}  // namespace jaiminho::internal
