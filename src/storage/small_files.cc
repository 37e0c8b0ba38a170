#include "storage/small_files.h"

#include <fmt/format.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "storage/status.h"
#include "util/macros.h"

namespace jaiminho::internal {

SmallFiles FindSmallFiles(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  rocksdb::ColumnFamilyMetaData meta;
  db->GetColumnFamilyMetaData(cf, &meta);
  SmallFiles out;
  for (const auto& level : meta.levels) {
    for (const auto& file : level.files) {
      if (file.size >= kSmallFileBytes || file.being_compacted) continue;
      out.names.push_back(file.name);
      out.bytes += file.size;
      out.output_level = std::max(out.output_level, level.level);
    }
  }
  return out;
}

Result<size_t> MergeSmallFiles(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& path) {
  SmallFiles small = FindSmallFiles(db, cf);
  if (small.names.size() <= kMaxSmallFiles) return size_t{0};
  std::error_code ec;
  const auto space = std::filesystem::space(path, ec);
  if (ec || space.available < 2 * small.bytes + (16 << 20)) return size_t{0};
  rocksdb::CompactionOptions o;
  o.compression = rocksdb::kDisableCompressionOption;  // the family's own
  auto s = db->CompactFiles(o, cf, small.names, small.output_level);
  JM_RETURN_IF_ERROR(
      ToStatus(s, fmt::format("merge {} small files of family '{}' in {}", small.names.size(), cf->GetName(), path)));
  return small.names.size();
}

}  // namespace jaiminho::internal
