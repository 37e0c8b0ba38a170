#include "storage/open.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

#include "jaiminho/version.h"
#include "storage/status.h"
#include "util/macros.h"

namespace jaiminho::internal {
namespace fs = std::filesystem;

Result<PathKind> ClassifyPath(const std::string& path) {
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "path is empty");
  std::error_code ec;
  auto st = fs::status(path, ec);
  // ENOTDIR: an ancestor is a file; the database is missing (and cannot be
  // created there: CreateParentDirectories names the file).
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    return MakeError(ErrorCode::kIOError, fmt::format("cannot stat {}: {}", path, ec.message()));
  }
  if (!fs::exists(st)) return PathKind::kMissing;
  if (!fs::is_directory(st)) {
    return MakeError(ErrorCode::kNotADatabase, fmt::format("{} is a file, not a database directory", path));
  }
  if (fs::exists(fs::path(path) / "CURRENT", ec)) return PathKind::kDatabase;
  auto it = fs::directory_iterator(path, ec);
  if (ec) return MakeError(ErrorCode::kIOError, fmt::format("cannot list {}: {}", path, ec.message()));
  if (it == fs::directory_iterator()) return PathKind::kEmptyDirectory;
  // What a creation that failed before writing CURRENT leaves behind (a full
  // disk, a power cut): no data, so it may be created again. A directory with
  // any WAL or table file is never treated this way.
  bool leftovers_only = true;
  std::string other;      // a file that is not a leftover of an interrupted creation
  std::string data_file;  // a RocksDB write-ahead log or table file
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    std::string n = it->path().filename().string();
    // Created since the check above (another process creating the database).
    if (n == "CURRENT") return PathKind::kDatabase;
    bool leftover = n == "LOCK" || n == "IDENTITY" || n == "LOG" || n.starts_with("LOG.old.") ||
                    n.starts_with("MANIFEST-") || n.starts_with("OPTIONS-") || n.ends_with(".dbtmp");
    if (!leftover) {
      leftovers_only = false;
      if (other.empty()) other = n;
    }
    bool numbered = !n.empty() && n.find_first_not_of("0123456789") == n.find('.') && n.find('.') > 0;
    if (numbered && (n.ends_with(".log") || n.ends_with(".sst") || n.ends_with(".blob"))) data_file = n;
  }
  if (leftovers_only && !ec) return PathKind::kEmptyDirectory;
  if (!data_file.empty()) {
    // Data without the file that says which MANIFEST describes it: a damaged
    // database (CURRENT deleted), never something to create a database over.
    return MakeError(ErrorCode::kCorruption,
                     fmt::format("{} is a damaged database: its CURRENT file is missing (it holds RocksDB data, "
                                 "for example {}); restore CURRENT or the database from a backup",
                                 path, data_file));
  }
  return MakeError(
      ErrorCode::kNotADatabase,
      fmt::format("{} is a non-empty directory that is not a database (no CURRENT file; it holds {})", path, other));
}

Status CreateParentDirectories(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return {};
  // Walk up to the first ancestor that exists, so that the error can name the
  // component in the way (a file) or the one that could not be made.
  std::error_code ec;
  std::vector<fs::path> missing;
  fs::path base = parent;
  while (!base.empty() && !fs::exists(base, ec) && base != base.parent_path()) {
    missing.push_back(base);
    base = base.parent_path();
  }
  if (base.empty()) base = ".";
  if (!fs::is_directory(base, ec)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("cannot create {}: {} is not a directory", path, base.string()));
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (!fs::create_directory(*it, ec) && ec) {
      return MakeError(ec == std::errc::no_space_on_device ? ErrorCode::kResourceExhausted : ErrorCode::kIOError,
                       fmt::format("cannot create directory {} for {}: {}", it->string(), path, ec.message()));
    }
  }
  return {};
}

std::optional<long> LockHolderPid(const std::string& path) {
  std::string lock = (fs::path(path) / "LOCK").string();
  int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  std::optional<long> pid;
  if (::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) pid = static_cast<long>(fl.l_pid);
  ::close(fd);
  return pid;
}

namespace {
class DiscardingLogger final : public rocksdb::Logger {
 public:
  DiscardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};
}  // namespace

std::shared_ptr<rocksdb::Logger> NullLogger() {
  return std::make_shared<DiscardingLogger>();
}

Status CheckFormat(uint32_t format, const std::string& path) {
  if (format > kFormatVersion) {
    return MakeError(ErrorCode::kFormatTooNew,
                     fmt::format("{} has on-disk format {}, newer than this library's {}; upgrade jaiminho", path,
                                 format, kFormatVersion));
  }
  if (format == 0) {
    return MakeError(ErrorCode::kCorruption, fmt::format("{}: jaiminho.meta has no format record", path));
  }
  return {};
}

Result<MetaSnapshot> ReadMeta(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta, const std::string& path) {
  MetaSnapshot snap;
  rocksdb::ReadOptions ro;
  std::string v;
  auto s = db->Get(ro, meta, std::string(kFormatKey), &v);
  if (s.IsNotFound()) {
    // A creation interrupted before its first write (format and id are written
    // together, before anything else): an empty meta family means "not yet
    // initialized" (format 0); anything else without a format is corrupt.
    std::unique_ptr<rocksdb::Iterator> any(db->NewIterator(ro, meta));
    any->SeekToFirst();
    JM_RETURN_IF_ERROR(ToStatus(any->status(), fmt::format("read jaiminho.meta of {}", path)));
    if (!any->Valid()) return snap;
    return MakeError(ErrorCode::kCorruption, fmt::format("{}: jaiminho.meta has no format record", path));
  }
  JM_RETURN_IF_ERROR(ToStatus(s, fmt::format("read format of {}", path)));
  JM_ASSIGN_OR_RETURN(snap.format, DecodeU32(v, fmt::format("{}: format record", path)));
  JM_RETURN_IF_ERROR(CheckFormat(snap.format, path));
  s = db->Get(ro, meta, std::string(kDbIdKey), &v);
  JM_RETURN_IF_ERROR(ToStatus(s, fmt::format("read database id of {}", path)));
  if (v.size() != snap.id.bytes.size()) {
    return MakeError(ErrorCode::kCorruption, fmt::format("{}: database id has {} bytes, expected 16", path, v.size()));
  }
  std::copy(v.begin(), v.end(), snap.id.bytes.begin());

  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, meta));
  const std::string prefix = "stream/";
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view key = it->key().ToStringView().substr(prefix.size());
    size_t slash = key.rfind('/');
    if (slash == std::string_view::npos) continue;
    std::string name(key.substr(0, slash));
    std::string_view field = key.substr(slash + 1);
    std::string_view value = it->value().ToStringView();
    StreamMeta& m = snap.streams[name];
    if (field == "config") {
      JM_ASSIGN_OR_RETURN(m.config, DecodeStreamConfig(value, name));
    } else if (field == "hwm") {
      JM_ASSIGN_OR_RETURN(m.hwm, DecodeU64(value, fmt::format("stream '{}' seq reservation", name)));
    } else if (field == "cursor") {
      JM_ASSIGN_OR_RETURN(m.cursor, DecodeU64(value, fmt::format("stream '{}' relay cursor", name)));
    } else if (field == "last") {
      JM_ASSIGN_OR_RETURN(m.last, DecodeU64(value, fmt::format("stream '{}' last assigned seq", name)));
    }
  }
  JM_RETURN_IF_ERROR(ToStatus(it->status(), fmt::format("read jaiminho.meta of {}", path)));
  return snap;
}

Error DamagedDatabase(const std::string& path, const rocksdb::Status& s) {
  // CURRENT names the MANIFEST (with a newline); the MANIFEST lists the
  // column families and files.
  std::string current;
  {
    std::ifstream in(fs::path(path) / "CURRENT", std::ios::binary);
    current.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const bool readable = s.IsCorruption() || s.IsPathNotFound() || s.IsNotFound();
  if (!readable) return FromRocks(s, fmt::format("read the MANIFEST of {}", path));
  if (current.empty() || current.back() != '\n' || !current.starts_with("MANIFEST-")) {
    return Error(ErrorCode::kCorruption, fmt::format("{} is a damaged database: its CURRENT file does not name a "
                                                     "MANIFEST: {}",
                                                     path, s.ToString()));
  }
  current.pop_back();
  std::error_code ec;
  if (!fs::exists(fs::path(path) / current, ec)) {
    return Error(ErrorCode::kCorruption, fmt::format("{} is a damaged database: {}, named by CURRENT, is missing: {}",
                                                     path, current, s.ToString()));
  }
  return Error(ErrorCode::kCorruption, fmt::format("{} is a damaged database: {} (named by CURRENT) cannot be read: {}",
                                                   path, current, s.ToString()));
}

Result<std::vector<std::string>> ListJaiminhoFamilies(const std::string& path, const rocksdb::DBOptions& options) {
  std::vector<std::string> names;
  auto s = rocksdb::DB::ListColumnFamilies(options, path, &names);
  if (!s.ok()) return tl::unexpected(DamagedDatabase(path, s));
  if (std::find(names.begin(), names.end(), std::string(kMetaFamily)) == names.end()) {
    // RocksDB lists only "default" from a MANIFEST it cannot parse at all:
    // tell a damaged database from someone else's by opening it read-only.
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    descs.reserve(names.size());
    for (const auto& n : names)
      descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    auto os = rocksdb::DB::OpenForReadOnly(options, path, descs, &handles, &raw);
    // A creation killed inside RocksDB's DB::Open (after CURRENT, before the
    // jaiminho families) leaves only "default", empty: no data, so the next
    // Open finishes the creation (and readers see an empty database).
    bool interrupted_creation = false;
    if (os.ok() && names.size() == 1 && names[0] == rocksdb::kDefaultColumnFamilyName) {
      std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), handles[0]));
      it->SeekToFirst();
      interrupted_creation = !it->Valid() && it->status().ok();
    }
    if (raw != nullptr) {
      for (auto* h : handles)
        raw->DestroyColumnFamilyHandle(h);
      raw->Close().PermitUncheckedError();
      delete raw;
    }
    if (!os.ok()) return tl::unexpected(DamagedDatabase(path, os));
    if (interrupted_creation) return names;
    return MakeError(
        ErrorCode::kNotADatabase,
        fmt::format("{} is a RocksDB database but not a jaiminho one (no {} column family)", path, kMetaFamily));
  }
  return names;
}

std::optional<std::string> StreamOfFamily(std::string_view family) {
  if (!family.starts_with(kStreamFamilyPrefix)) return std::nullopt;
  return std::string(family.substr(kStreamFamilyPrefix.size()));
}

ReadOnlyDb::~ReadOnlyDb() {
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  handles.clear();
  if (db) db->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* ReadOnlyDb::Family(std::string_view name) const {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return handles[i];
  }
  return nullptr;
}

Result<std::unique_ptr<ReadOnlyDb>> OpenReadOnly(const std::string& path, rocksdb::Env* env,
                                                 const std::string& secondary_path) {
  JM_ASSIGN_OR_RETURN(PathKind kind, ClassifyPath(path));
  if (kind != PathKind::kDatabase) {
    return MakeError(ErrorCode::kNotADatabase, fmt::format("{} is not a database (no such database)", path));
  }
  rocksdb::DBOptions dbo;
  dbo.info_log = NullLogger();
  dbo.info_log_level = rocksdb::InfoLogLevel::HEADER_LEVEL;
  if (env != nullptr) dbo.env = env;
  if (!secondary_path.empty()) dbo.max_open_files = -1;
  JM_ASSIGN_OR_RETURN(auto names, ListJaiminhoFamilies(path, dbo));
  auto out = std::make_unique<ReadOnlyDb>();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names)
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (secondary_path.empty()) {
    s = rocksdb::DB::OpenForReadOnly(dbo, path, descs, &out->handles, &raw);
  } else {
    s = rocksdb::DB::OpenAsSecondary(dbo, path, secondary_path, descs, &out->handles, &raw);
  }
  if (s.IsCorruption()) return tl::unexpected(DamagedDatabase(path, s));
  JM_RETURN_IF_ERROR(ToStatus(s, fmt::format("open {} read-only", path)));
  out->db.reset(raw);
  out->names = names;
  out->meta = out->Family(kMetaFamily);
  // No meta family: an interrupted creation (ListJaiminhoFamilies), format 0.
  if (out->meta != nullptr) {
    JM_ASSIGN_OR_RETURN(out->snapshot, ReadMeta(out->db.get(), out->meta, path));
  }
  return out;
}

}  // namespace jaiminho::internal
