// dump: every record in seq order, as a table, tab-separated lines or JSON
// lines; --follow keeps printing the events committed afterwards.
#include <fmt/format.h>
#include <signal.h>

#include <map>

#include "jaiminho/sinks.h"
#include "storage/meta.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "tool/progress.h"
#include "tool/records.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho::tool {
namespace {

constexpr size_t kTextLimit = 48;  // last_error and note in terminal tables (history lines: twice), unless --full
// --follow: polls in a row whose reopening of the database may fail (I/O or a
// missing file, as when a live writer deletes a file being read) before dump fails.
constexpr int kFollowOpenAttempts = 10;

// A point in time as microseconds since the epoch, or null when unset.
std::optional<uint64_t> MicrosOrNull(Timestamp t) {
  const int64_t us = ToMicros(t);
  if (us <= 0) return std::nullopt;
  return static_cast<uint64_t>(us);
}

// The event's operator history as a JSON array of {at, user, action, reason,
// previous_note}, oldest first.
std::string HistoryJson(const Event& e) {
  std::string out = "[";
  for (const HistoryEntry& h : e.history) {
    if (out.size() > 1) out += ',';
    out += JsonObject()
               .Time("at", h.at)
               .Str("user", h.user)
               .Str("action", h.action)
               .Str("reason", h.reason)
               .Str("previous_note", h.previous_note)
               .Done();
  }
  out += ']';
  return out;
}

// EventToJson's object (the same shape sinks deliver), plus what only storage
// knows. Times as in the README's JSON schema: X_at (ISO-8601 UTC) and X_at_us
// (microseconds since the epoch), both null when unset.
std::string RecordJson(const Record& r) {
  if (!r.ok()) {
    return JsonObject()
        .Str("stream", r.stream)
        .U64OrNull("seq", r.key ? std::optional<uint64_t>(r.key->seq) : std::nullopt)
        .Str("state", "corrupt")
        .StrOrNull("stored_state", r.key ? std::optional<std::string_view>(ToString(r.key->state)) : std::nullopt)
        .Str("error", r.error)
        .Str("raw_key_hex", internal::ToHex(r.raw_key))
        .U64("value_size", r.raw_value.size())
        .Str("value_hex", internal::ToHex(r.raw_value))
        .Done();
  }
  const Event& e = *r.event;
  std::string out = EventToJson(e);
  out.pop_back();  // reopen the object
  std::string more = JsonObject()
                         .Str("state", ToString(e.state))
                         .Str("last_error", e.last_error)
                         .Str("note", e.note)
                         .Str("key_id", e.key_id)
                         .U64("payload_size", e.payload.size())
                         .U64OrNull("next_attempt_at_us", MicrosOrNull(e.next_attempt_at))
                         .U64OrNull("sent_at_us", MicrosOrNull(e.sent_at))
                         .Time("created_at", e.created_at)
                         .Time("sent_at", e.sent_at)
                         .Time("next_attempt_at", e.next_attempt_at)
                         .Raw("history", HistoryJson(e))
                         .U64("history_dropped", e.history_dropped)
                         .Done();
  out += ',';
  out.append(more, 1, std::string::npos);  // the members, without the opening brace
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

// The filter of the options (kInvalidArgument naming the option when one is wrong).
Result<RecordFilter> FilterOf(const DumpOptions& o) {
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
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("--state '{}' is not one of pending, retrying, sent, parked, corrupt", s));
    }
  }
  filter.from_seq = o.from_seq;
  filter.to_seq = o.to_seq;
  if (o.to_seq && *o.to_seq < o.from_seq) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("--to-seq {} is below --from-seq {}", *o.to_seq, o.from_seq));
  }
  filter.type = o.type;
  filter.key = o.key;
  if (!o.since.empty()) {
    JM_ASSIGN_OR_RETURN(filter.since_us, ParseTime(o.since, "--since"));
  }
  if (!o.until.empty()) {
    JM_ASSIGN_OR_RETURN(filter.until_us, ParseTime(o.until, "--until"));
  }
  if (filter.since_us && filter.until_us && *filter.until_us <= *filter.since_us) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("--since {} is not before --until {}", o.since, o.until));
  }
  return filter;
}

}  // namespace

int Dump(const DumpOptions& o, Io& io) {
  auto filter = FilterOf(o);
  if (!filter) return Report(io, "dump", filter.error(), kExitUsage);
  std::chrono::microseconds interval{0};
  if (o.follow) {
    auto parsed = ParseDuration(o.interval, "--interval");
    if (!parsed) return Report(io, "dump", parsed.error(), kExitUsage);
    interval = *parsed;
  }
  std::optional<StopSignals> signals;
  if (o.follow) signals.emplace();

  auto db = OpenForReading(o.path);
  if (!db) return ReportOpenError(io, "dump", db.error());
  auto names = SelectStreams(**db, o.path, o.streams);
  if (!names) return Report(io, "dump", names.error());
  auto signer = VerifierFromFile(o.keys_file, (*db)->snapshot.id);
  if (!signer) return Report(io, "dump", signer.error(), kExitUsage);

  // The table itself shows progress on a terminal; a redirected dump shows it on stderr.
  Progress progress(io.err, io.err_tty && !io.out_tty && !o.follow, "dump");
  std::optional<Table> table;
  if (!o.json) {
    table.emplace(io.out,
                  std::vector<std::string>{"stream", "seq", "state", "type", "key", "attempts", "created_at", "sent_at",
                                           "last_error", "note", "payload"},
                  io.out_tty);
  }
  uint64_t printed = 0;
  std::string line;
  auto full = [&] { return o.limit && printed >= *o.limit; };
  auto print = [&](const Record& r) {
    if (o.json) {
      line = RecordJson(r);
      line.push_back('\n');
      io.out << line;
    } else {
      table->Add(RecordRow(r, o.full, io.out_tty));
      if (io.out_tty && r.ok() && !r.event->history.empty()) {
        table->Flush();
        for (const std::string& h : HistoryLines(*r.event))
          io.out << "    " << EscapeCell(o.full ? h : Shorten(h, 2 * kTextLimit)) << '\n';
      }
    }
    ++printed;
    progress.Add(1);
  };
  auto fail = [&](const Error& e) {
    if (table) table->Flush();
    progress.Clear();
    return Report(io, "dump", e);
  };
  // --follow: the last seq seen in each stream (seqs are assigned in commit
  // order, so the next poll reads each stream from the seq after it).
  std::map<std::string, uint64_t, std::less<>> seen;
  while (true) {
    for (const std::string& name : *names) {
      if (full()) break;
      rocksdb::ColumnFamilyHandle* cf = (*db)->Family(std::string(internal::kStreamFamilyPrefix) + name);
      auto delivered = DeliveredOf(**db, name);
      if (!delivered) return fail(delivered.error());
      Status scanned;
      if (!o.follow) {
        scanned = ScanRecordsInSeqOrder((*db)->db.get(), cf, name, (*db)->snapshot.id, *delivered, *filter,
                                        [&](const Record& r) {
                                          if (full()) return false;
                                          print(r);
                                          return true;
                                        },
                                        signer->get());
      } else {
        // Every record from the seq after the last one seen (whatever the
        // other filters say: an event is looked at once, in the state it has then).
        auto emplaced = seen.try_emplace(name, 0);
        uint64_t& last_seen = emplaced.first->second;
        RecordFilter after{.from_seq = emplaced.second ? filter->from_seq : std::max(filter->from_seq, last_seen + 1),
                           .to_seq = filter->to_seq};
        scanned = ScanRecordsInSeqOrder((*db)->db.get(), cf, name, (*db)->snapshot.id, *delivered, after,
                                        [&](const Record& r) {
                                          if (full()) return false;
                                          if (r.key) last_seen = std::max(last_seen, r.key->seq);
                                          if (filter->Wants(r)) print(r);
                                          return true;
                                        },
                                        signer->get());
      }
      if (!scanned) return fail(scanned.error());
    }
    if (table) table->Flush();
    io.out.flush();
    if (!o.follow || full() || signals->WaitFor(interval)) break;
    // A read-only view does not see later commits: open a new one. A live
    // writer can delete a file while an open reads it (OpenForReading tries
    // three times): the next polls try again, kFollowOpenAttempts in all.
    bool stopped = false;
    for (int attempt = 1;; ++attempt) {
      db = OpenForReading(o.path);
      if (db) break;
      const ErrorCode code = db.error().code();
      if ((code != ErrorCode::kIOError && code != ErrorCode::kNotFound) || attempt >= kFollowOpenAttempts) {
        return fail(db.error());
      }
      if (signals->WaitFor(interval)) {
        stopped = true;
        break;
      }
    }
    if (stopped) break;
    names = SelectStreams(**db, o.path, o.streams);
    if (!names) return fail(names.error());
  }
  if (table) table->Flush();
  io.out.flush();
  progress.Finish();
  if (!io.out) return Report(io, "dump", Error(ErrorCode::kIOError, "writing the output failed"));
  return kExitOk;
}

}  // namespace jaiminho::tool
