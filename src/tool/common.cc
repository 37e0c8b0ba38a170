#include "tool/common.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "storage/meta.h"
#include "storage/open.h"
#include "util/macros.h"

namespace jaiminho::tool {

Status WriteFileAtomically(const std::string& path, std::string_view content) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  if (target.filename().empty()) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("output file '{}': not a file name", path));
  }
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  auto fail = [&](std::string_view what, int err) -> Status {
    const ErrorCode code = err == ENOSPC || err == EDQUOT ? ErrorCode::kResourceExhausted : ErrorCode::kIOError;
    return MakeError(code, fmt::format("write {}: {}: {}", path, what, std::strerror(err)));
  };
  int fd = mkstemp(tmp.data());
  if (fd < 0) return fail(fmt::format("create a temporary file in {}", dir.string()), errno);
  auto abandon = [&](std::string_view what) -> Status {
    const int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return fail(what, err);
  };
  for (size_t done = 0; done < content.size();) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return abandon(fmt::format("write {}", tmp));
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd, 0644) != 0) return abandon(fmt::format("chmod {}", tmp));
  if (fsync(fd) != 0) return abandon(fmt::format("fsync {}", tmp));
  if (close(fd) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return fail(fmt::format("close {}", tmp), err);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return fail(fmt::format("rename {} to it", tmp), err);
  }
  // The rename is durable once the directory is.
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return fail(fmt::format("open directory {}", dir.string()), errno);
  const int synced = fsync(dfd);
  const int err = errno;
  close(dfd);
  if (synced != 0) return fail(fmt::format("fsync directory {}", dir.string()), err);
  return {};
}

int Report(Io& io, std::string_view command, const Error& error, int code) {
  std::string line = fmt::format("jaiminho-tool {}: {}", command, error.ToString());
  std::replace(line.begin(), line.end(), '\n', ' ');
  io.out.flush();
  io.err << line << "\n" << std::flush;
  return code;
}

int ReportOpenError(Io& io, std::string_view command, const Error& error) {
  switch (error.code()) {
    case ErrorCode::kNotADatabase:
    case ErrorCode::kFormatTooNew:
    case ErrorCode::kInvalidArgument:
      return Report(io, command, error, kExitUsage);
    case ErrorCode::kBusy:
      return Report(io, command, error, kExitBusy);
    case ErrorCode::kCorruption:
      return Report(io, command, error, kExitDamaged);
    default:
      return Report(io, command, error, kExitFailed);
  }
}

Status CheckDatabasePath(const std::string& path) {
  JM_ASSIGN_OR_RETURN(internal::PathKind kind, internal::ClassifyPath(path));
  switch (kind) {
    case internal::PathKind::kMissing:
      return MakeError(ErrorCode::kNotADatabase, fmt::format("{}: no such database (the path does not exist)", path));
    case internal::PathKind::kEmptyDirectory:
      return MakeError(ErrorCode::kNotADatabase, fmt::format("{} is an empty directory, not a database", path));
    case internal::PathKind::kDatabase:
      return {};
  }
  return {};
}

Result<std::unique_ptr<internal::ReadOnlyDb>> OpenForReading(const std::string& path) {
  JM_RETURN_IF_ERROR(CheckDatabasePath(path));
  // A live writer may delete a WAL or SST file (after a flush or compaction)
  // between the moment the read-only open lists it and the moment it reads it:
  // such an open fails with an I/O or not-found error and succeeds when repeated.
  auto db = internal::OpenReadOnly(path);
  for (int attempt = 1; attempt < 3 && !db; ++attempt) {
    if (db.error().code() != ErrorCode::kIOError && db.error().code() != ErrorCode::kNotFound) break;
    db = internal::OpenReadOnly(path);
  }
  return db;
}

Result<std::vector<SigningKey>> LoadSigningKeys(const std::string& file) {
  std::vector<SigningKey> keys;
  if (file.empty()) return keys;
  std::ifstream in(file);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, fmt::format("cannot read key file {}", file));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size()) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} line {}: expected 'ID SECRET'", file, n));
    }
    keys.push_back(SigningKey{line.substr(0, sp), line.substr(sp + 1)});
  }
  if (keys.empty()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} holds no key", file));
  JM_RETURN_IF_ERROR(internal::Signer::Validate({.keys = keys}));
  return keys;
}

Result<std::unique_ptr<internal::Signer>> VerifierFromFile(const std::string& file, const DatabaseId& db) {
  if (file.empty()) return std::unique_ptr<internal::Signer>();
  JM_ASSIGN_OR_RETURN(auto keys, LoadSigningKeys(file));
  return internal::Signer::Make(
      {.keys = std::move(keys), .sign_events = false, .verify_signatures = true, .require_signature = true}, db);
}

Result<std::unique_ptr<Outbox>> OpenForWriting(const std::string& path, std::vector<SigningKey> keys,
                                               std::shared_ptr<Logger> logger, bool control_socket) {
  JM_RETURN_IF_ERROR(CheckDatabasePath(path));
  // Outbox::Open would also refuse (kBusy), but only after RocksDB started its
  // open, which rotates the holder's LOG file: ask the lock first.
  if (auto pid = internal::LockHolderPid(path)) {
    return MakeError(
        ErrorCode::kBusy,
        fmt::format("{} is in use by process {}; stop it first (read commands work while it runs)", path, *pid));
  }
  // The read-only probe inside Outbox::Open refuses a non-jaiminho database
  // before anything is written.
  OutboxOptions o{.path = path, .create_if_missing = false};
  o.logger = std::move(logger);
  o.control_socket = control_socket;
  if (!keys.empty()) o.signing = {.keys = std::move(keys), .sign_events = false, .require_signature = true};
  return Outbox::Open(std::move(o));
}

Result<std::optional<LiveControl>> FindLiveControl(const std::string& path, bool required) {
  JM_RETURN_IF_ERROR(CheckDatabasePath(path));
  auto pid = internal::LockHolderPid(path);
  if (!pid) return std::optional<LiveControl>();
  LiveControl live{.pid = *pid, .socket = internal::ControlSocketPath(path)};
  struct stat st {};
  if (::lstat(live.socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return std::optional<LiveControl>(live);
  if (!required) return std::optional<LiveControl>();
  return MakeError(ErrorCode::kBusy,
                   fmt::format("{} is in use by process {}, which serves no control socket ({}), or is still "
                               "opening the database (then try again in a moment); stop it first, or open the database "
                               "there with OutboxOptions::control_socket = true to act on it while it runs (read "
                               "commands work while it runs)",
                               path, *pid, live.socket));
}

Result<std::vector<internal::ControlLine>> CallLive(Io& io, std::string_view command, const std::string& path,
                                                    const LiveControl& live, const internal::ControlLine& request) {
  io.err << fmt::format("jaiminho-tool {}: via the running process's control socket {} (process {} holds {})\n",
                        command, live.socket, live.pid, path)
         << std::flush;
  // A clean compacts every stream: give it time.
  auto reply = internal::ControlCall(live.socket, request, std::chrono::minutes(10));
  if (!reply) {
    if (reply.error().code() != ErrorCode::kUnavailable) return tl::unexpected(reply.error());
    return MakeError(ErrorCode::kBusy,
                     fmt::format("{} is in use by process {}, and its control socket does not answer: {}; nothing "
                                 "was changed",
                                 path, live.pid, reply.error().message()));
  }
  if (reply->error) return tl::unexpected(*reply->error);
  return std::move(reply->lines);
}

int LiveExitCode(const Error& error) {
  return error.code() == ErrorCode::kBusy ? kExitBusy : kExitFailed;
}

Result<std::vector<std::string>> SelectStreams(const internal::ReadOnlyDb& db, const std::string& path,
                                               const std::vector<std::string>& only) {
  std::vector<std::string> all;
  for (const auto& family : db.names) {
    if (auto s = internal::StreamOfFamily(family)) all.push_back(*s);
  }
  std::sort(all.begin(), all.end());
  if (only.empty()) return all;
  std::vector<std::string> out;
  for (const auto& name : only) {
    if (!std::binary_search(all.begin(), all.end(), name)) {
      return MakeError(ErrorCode::kNotFound,
                       fmt::format("{} has no stream '{}' (streams: {})", path, name,
                                   all.empty() ? "none" : fmt::format("{}", fmt::join(all, ", "))));
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace jaiminho::tool
