// clean: forces the cleaner (Outbox::Clean) and reports what it removed.
#include <fmt/format.h>

#include "tool/commands.h"
#include "tool/format.h"

namespace jaiminho::tool {

int Clean(const CleanOptions& o, Io& io) {
  auto opened = OpenForWriting(o.path);
  if (!opened) return ReportOpenError(io, "clean", opened.error());
  Outbox& outbox = **opened;
  auto report = outbox.Clean();
  auto closed = outbox.Close();
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
