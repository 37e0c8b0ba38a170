// clean: forces the cleaner (Outbox::Clean) and reports what it removed, on
// the database itself or through the control socket of the process holding it.
#include <fmt/format.h>

#include "tool/commands.h"
#include "tool/format.h"
#include "util/macros.h"

namespace jaiminho::tool {

namespace {

// Outbox::Clean through the control socket of the process holding the database.
Result<CleanReport> CleanLive(const CleanOptions& o, Io& io, const LiveControl& live) {
  JM_ASSIGN_OR_RETURN(auto lines, CallLive(io, "clean", o.path, live, {.action = "clean"}));
  if (lines.empty()) return MakeError(ErrorCode::kInternal, "the control socket's reply has no result");
  return internal::DecodeCleanReport(lines[0]);
}

}  // namespace

int Clean(const CleanOptions& o, Io& io) {
  auto live = FindLiveControl(o.path, /*required=*/true);
  if (!live) return ReportOpenError(io, "clean", live.error());
  Result<CleanReport> report = CleanReport{};
  Status closed;
  if (*live) {
    report = CleanLive(o, io, **live);
    if (!report) return Report(io, "clean", report.error(), LiveExitCode(report.error()));
  } else {
    auto opened = OpenForWriting(o.path);
    if (!opened) return ReportOpenError(io, "clean", opened.error());
    Outbox& outbox = **opened;
    report = outbox.Clean();
    closed = outbox.Close();
  }
  if (!report) return Report(io, "clean", report.error());
  if (o.json) {
    io.out << fmt::format("{{\"removed\":{},\"kept_corrupt\":{},\"bytes_before\":{},\"bytes_after\":{}}}\n",
                          report->removed, report->kept_corrupt, report->bytes_before, report->bytes_after);
  } else {
    io.out << fmt::format("removed {} sent events, kept {} corrupt records; stream data {} -> {}\n", report->removed,
                          report->kept_corrupt, FormatBytes(report->bytes_before), FormatBytes(report->bytes_after));
  }
  io.out.flush();
  if (!closed) return Report(io, "clean", closed.error());
  return kExitOk;
}

}  // namespace jaiminho::tool
