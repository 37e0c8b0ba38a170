// dump: every record, as a table, tab-separated lines or JSON lines.
#include <fmt/format.h>

#include "jaiminho/sinks.h"
#include "storage/meta.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "tool/progress.h"
#include "tool/records.h"
#include "util/json.h"

namespace jaiminho::tool {
namespace {

constexpr size_t kTextLimit = 48;  // last_error and note in terminal tables (history lines: twice), unless --full

std::string QuoteJson(std::string_view s) {
  std::string out;
  internal::AppendJsonString(out, s);
  return out;
}

std::string TimeJson(Timestamp t) {
  return ToMicros(t) == 0 ? "null" : QuoteJson(FormatTime(t));
}

// EventToJson's object (the same shape sinks deliver), plus what only storage knows.
std::string RecordJson(const Record& r) {
  if (!r.ok()) {
    std::string out = "{\"stream\":" + QuoteJson(r.stream);
    out += r.key ? fmt::format(",\"seq\":{}", r.key->seq) : std::string(",\"seq\":null");
    out += ",\"state\":\"corrupt\",\"stored_state\":";
    out += r.key ? QuoteJson(ToString(r.key->state)) : std::string("null");
    out += ",\"error\":" + QuoteJson(r.error);
    out += ",\"raw_key_hex\":\"" + internal::ToHex(r.raw_key) + "\"";
    out += fmt::format(",\"value_size\":{},\"value_hex\":\"{}\"}}", r.raw_value.size(), internal::ToHex(r.raw_value));
    return out;
  }
  const Event& e = *r.event;
  std::string out = EventToJson(e);
  out.pop_back();  // reopen the object
  out += ",\"state\":" + QuoteJson(ToString(e.state));
  out += ",\"last_error\":" + QuoteJson(e.last_error);
  out += ",\"note\":" + QuoteJson(e.note);
  out += ",\"key_id\":" + QuoteJson(e.key_id);
  out += fmt::format(",\"payload_size\":{},\"next_attempt_at_us\":{},\"sent_at_us\":{}", e.payload.size(),
                     ToMicros(e.next_attempt_at), ToMicros(e.sent_at));
  out += ",\"created_at\":" + TimeJson(e.created_at);
  out += ",\"sent_at\":" + TimeJson(e.sent_at);
  out += ",\"history\":[";
  for (size_t i = 0; i < e.history.size(); ++i) {
    const HistoryEntry& h = e.history[i];
    out += i == 0 ? "{\"at\":" : ",{\"at\":";
    out += TimeJson(h.at);
    out += ",\"user\":" + QuoteJson(h.user);
    out += ",\"action\":" + QuoteJson(h.action);
    out += ",\"reason\":" + QuoteJson(h.reason);
    out += ",\"previous_note\":" + QuoteJson(h.previous_note) + "}";
  }
  out += fmt::format("],\"history_dropped\":{}}}", e.history_dropped);
  return out;
}

// The event's operator actions, one line each, oldest first: "TIME USER
// ACTION: REASON (note was: NOTE)", after a line counting the dropped ones.
std::vector<std::string> HistoryLines(const Event& e) {
  std::vector<std::string> lines;
  if (e.history_dropped > 0) lines.push_back(fmt::format("({} earlier actions dropped)", e.history_dropped));
  for (const HistoryEntry& h : e.history) {
    std::string line = fmt::format("{} {} {}", FormatTime(h.at), h.user, h.action);
    if (!h.reason.empty()) line += fmt::format(": {}", h.reason);
    if (!h.previous_note.empty()) line += fmt::format(" (note was: {})", h.previous_note);
    lines.push_back(std::move(line));
  }
  return lines;
}

std::vector<std::string> RecordRow(const Record& r, bool full, bool aligned) {
  auto text = [&](std::string_view s) { return full || !aligned ? std::string(s) : Shorten(s, kTextLimit); };
  if (!r.ok()) {
    return {std::string(r.stream),
            r.key ? std::to_string(r.key->seq) : std::string("?"),
            "corrupt",
            "",
            "",
            "",
            "",
            "",
            text(r.error),
            r.key ? fmt::format("stored as {}", ToString(r.key->state)) : std::string("unrecognized key"),
            RenderPayload(r.raw_value, full)};
  }
  const Event& e = *r.event;
  // Tab-separated: the history in the note cell, one line per action (escaped
  // as \n); aligned, Dump prints it under the row.
  std::string note = text(e.note);
  if (!aligned) {
    for (const std::string& line : HistoryLines(e))
      note += "\n" + line;
  }
  return {std::string(r.stream),
          std::to_string(e.id.seq),
          std::string(ToString(e.state)),
          std::string(e.type),
          std::string(e.key),
          std::to_string(e.attempts),
          FormatTime(e.created_at),
          FormatTime(e.sent_at),
          text(e.last_error),
          note,
          RenderPayload(e.payload, full)};
}

}  // namespace

int Dump(const DumpOptions& o, Io& io) {
  RecordFilter filter;
  for (const std::string& s : o.states) {
    if (s == "corrupt") {
      filter.corrupt = true;
    } else if (s == "pending") {
      filter.states.push_back(EventState::kPending);
    } else if (s == "retrying") {
      filter.states.push_back(EventState::kRetrying);
    } else if (s == "sent") {
      filter.states.push_back(EventState::kSent);
    } else if (s == "parked") {
      filter.states.push_back(EventState::kParked);
    } else {
      return Report(io, "dump",
                    Error(ErrorCode::kInvalidArgument,
                          fmt::format("--state '{}' is not one of pending, retrying, sent, parked, corrupt", s)),
                    kExitUsage);
    }
  }
  filter.from_seq = o.from_seq;
  filter.type = o.type;

  auto db = OpenForReading(o.path);
  if (!db) return ReportOpenError(io, "dump", db.error());
  auto names = SelectStreams(**db, o.path, o.streams);
  if (!names) return Report(io, "dump", names.error());
  auto signer = VerifierFromFile(o.keys_file, (*db)->snapshot.id);
  if (!signer) return Report(io, "dump", signer.error(), kExitUsage);

  // The table itself shows progress on a terminal; a redirected dump shows it on stderr.
  Progress progress(io.err, io.err_tty && !io.out_tty, "dump");
  std::optional<Table> table;
  if (!o.json) {
    table.emplace(io.out,
                  std::vector<std::string>{"stream", "seq", "state", "type", "key", "attempts", "created_at", "sent_at",
                                           "last_error", "note", "payload"},
                  io.out_tty);
  }
  uint64_t printed = 0;
  std::string line;
  for (const std::string& name : *names) {
    if (o.limit && printed >= *o.limit) break;
    rocksdb::ColumnFamilyHandle* cf = (*db)->Family(std::string(internal::kStreamFamilyPrefix) + name);
    auto delivered = DeliveredOf(**db, name);
    if (!delivered) return Report(io, "dump", delivered.error());
    auto scanned = ScanRecords((*db)->db.get(), cf, name, (*db)->snapshot.id, *delivered, filter,
                               [&](const Record& r) {
                                 if (o.limit && printed >= *o.limit) return false;
                                 if (o.json) {
                                   line = RecordJson(r);
                                   line.push_back('\n');
                                   io.out << line;
                                 } else {
                                   table->Add(RecordRow(r, o.full, io.out_tty));
                                   if (io.out_tty && r.ok() && (!r.event->history.empty())) {
                                     table->Flush();
                                     for (const std::string& h : HistoryLines(*r.event))
                                       io.out << "    " << EscapeCell(o.full ? h : Shorten(h, 2 * kTextLimit)) << '\n';
                                   }
                                 }
                                 ++printed;
                                 progress.Add(1);
                                 return true;
                               },
                               signer->get());
    if (!scanned) {
      if (table) table->Flush();
      progress.Clear();
      return Report(io, "dump", scanned.error());
    }
  }
  if (table) table->Flush();
  io.out.flush();
  progress.Finish();
  if (!io.out) return Report(io, "dump", Error(ErrorCode::kIOError, "writing the output failed"));
  return kExitOk;
}

}  // namespace jaiminho::tool
