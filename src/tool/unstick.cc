// requeue and skip: the operator actions that unstick a stream, on the
// database itself or through the control socket of the process holding it;
// recorded in the event's history with the OS user running the tool.
#include <fmt/format.h>

#include "tool/commands.h"
#include "util/json.h"
#include "util/user.h"

namespace jaiminho::tool {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  internal::AppendJsonString(out, s);
  return out;
}

// Closes the outbox and reports a failed close (the action itself is already durable).
int Finish(Io& io, std::string_view command, Outbox& outbox, int code) {
  if (auto closed = outbox.Close(); !closed) return Report(io, command, closed.error());
  return code;
}

void PrintRequeued(const RequeueOptions& o, Io& io, uint64_t n) {
  if (o.all_parked) {
    if (o.json) {
      io.out << fmt::format("{{\"stream\":{},\"requeued\":{}}}\n", Quote(o.stream), n);
    } else {
      io.out << fmt::format("requeued {} parked events of stream '{}'\n", n, o.stream);
    }
  } else if (o.json) {
    io.out << fmt::format("{{\"stream\":{},\"seq\":{},\"requeued\":1}}\n", Quote(o.stream), *o.seq);
  } else {
    io.out << fmt::format("requeued stream '{}' seq {}\n", o.stream, *o.seq);
  }
  io.out.flush();
}

void PrintSkipped(const SkipOptions& o, Io& io) {
  if (o.json) {
    io.out << fmt::format("{{\"stream\":{},\"seq\":{},\"skipped\":1,\"reason\":{}}}\n", Quote(o.stream), o.seq,
                          Quote(o.reason));
  } else {
    io.out << fmt::format("skipped stream '{}' seq {} (parked; requeue it to deliver it later)\n", o.stream, o.seq);
  }
  io.out.flush();
}

// requeue through the control socket of the process holding the database.
int RequeueLive(const RequeueOptions& o, Io& io, const LiveControl& live) {
  internal::ControlLine request{
      .action = "requeue", .fields = {{"stream", o.stream}, {"note", o.note}, {"user", internal::EffectiveUserName()}}};
  if (o.all_parked) {
    request.fields.emplace_back("all_parked", "1");
  } else {
    request.fields.emplace_back("seq", std::to_string(*o.seq));
  }
  auto lines = CallLive(io, "requeue", o.path, live, request);
  if (!lines) return Report(io, "requeue", lines.error(), LiveExitCode(lines.error()));
  Result<uint64_t> n = lines->empty() ? MakeError(ErrorCode::kInternal, "the control socket's reply has no result")
                                      : (*lines)[0].GetU64("requeued");
  if (!n) return Report(io, "requeue", n.error());
  PrintRequeued(o, io, *n);
  return kExitOk;
}

}  // namespace

int Requeue(const RequeueOptions& o, Io& io) {
  if (o.seq.has_value() == o.all_parked) {
    return Report(io, "requeue", Error(ErrorCode::kInvalidArgument, "give exactly one of --seq N and --all-parked"),
                  kExitUsage);
  }
  auto live = FindLiveControl(o.path, /*required=*/true);
  if (!live) return ReportOpenError(io, "requeue", live.error());
  if (*live) return RequeueLive(o, io, **live);
  auto opened = OpenForWriting(o.path);
  if (!opened) return ReportOpenError(io, "requeue", opened.error());
  Outbox& outbox = **opened;
  auto stream = outbox.FindStream(o.stream);
  if (!stream) return Finish(io, "requeue", outbox, Report(io, "requeue", stream.error()));
  if (o.all_parked) {
    auto n = outbox.RequeueAllParked(**stream, o.note, internal::EffectiveUserName());
    if (!n) return Finish(io, "requeue", outbox, Report(io, "requeue", n.error()));
    PrintRequeued(o, io, *n);
  } else {
    auto s = outbox.Requeue(**stream, *o.seq, o.note, internal::EffectiveUserName());
    if (!s) return Finish(io, "requeue", outbox, Report(io, "requeue", s.error()));
    PrintRequeued(o, io, 1);
  }
  return Finish(io, "requeue", outbox, kExitOk);
}

int Skip(const SkipOptions& o, Io& io) {
  if (o.reason.empty()) {
    return Report(io, "skip", Error(ErrorCode::kInvalidArgument, "--reason is required and must not be empty"),
                  kExitUsage);
  }
  auto live = FindLiveControl(o.path, /*required=*/true);
  if (!live) return ReportOpenError(io, "skip", live.error());
  if (*live) {
    auto lines = CallLive(io, "skip", o.path, **live,
                          {.action = "skip",
                           .fields = {{"stream", o.stream},
                                      {"seq", std::to_string(o.seq)},
                                      {"reason", o.reason},
                                      {"user", internal::EffectiveUserName()}}});
    if (!lines) return Report(io, "skip", lines.error(), LiveExitCode(lines.error()));
    PrintSkipped(o, io);
    return kExitOk;
  }
  auto opened = OpenForWriting(o.path);
  if (!opened) return ReportOpenError(io, "skip", opened.error());
  Outbox& outbox = **opened;
  auto stream = outbox.FindStream(o.stream);
  if (!stream) return Finish(io, "skip", outbox, Report(io, "skip", stream.error()));
  auto s = outbox.Skip(**stream, o.seq, o.reason, internal::EffectiveUserName());
  if (!s) return Finish(io, "skip", outbox, Report(io, "skip", s.error()));
  PrintSkipped(o, io);
  return Finish(io, "skip", outbox, kExitOk);
}

}  // namespace jaiminho::tool
