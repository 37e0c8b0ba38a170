// The crash harness's durable logs: what the child process that gets killed
// writes, and what the checker reads back.
//
//   deliveries.log  "D <stream> <seq> <type> <payload>"   one line per successful Publish
//                   (appended and fdatasync'ed before Publish returns)
//   acks.log        "A <commit> <n> <stream>:<seq>..."    one line per acknowledged commit
//                   (appended and fdatasync'ed after Commit returned), the ids
//                   in enqueue order
//   outcomes.log    "O <stream> <seq> <payload>"          one line per delivery whose
//                   outcome (deleted / marked sent) the library reported written
//                   (Observer::OnPublished / OnPublishedByRelay); not synced: a
//                   killed process loses nothing from the page cache
//   drops.log       "X <stream> <first_seq> <last_seq> <count>"  one line per
//                   Observer::OnDropped (a drop-oldest quota), appended and
//                   fdatasync'ed in the callback, which runs before the
//                   dropping Commit returns: an acknowledged commit's drops
//                   are all in this log before its ack line
//   "G <generation>" lines separate the child processes (the parent writes them).
//
// A commit "g3.w1.17" writes business key "c/g3.w1.17" = "<n>" and n events
// whose payloads are "g3.w1.17#<k>/<n>" (k = 0..n-1), so both the database and
// the logs say which commit every record belongs to.
//
// A line torn by a kill (no final newline) is ended by RepairTornTail before
// the next process appends; the parser counts such lines and skips them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jaiminho::testing::crash {

inline constexpr std::string_view kDeliveriesLog = "deliveries.log";
inline constexpr std::string_view kAcksLog = "acks.log";
inline constexpr std::string_view kOutcomesLog = "outcomes.log";
inline constexpr std::string_view kDropsLog = "drops.log";
inline constexpr std::string_view kBusinessFamily = "accounts";
inline constexpr std::string_view kBusinessPrefix = "c/";
inline constexpr std::string_view kEventType = "crash.v1";

// An append-only file: each Append is a single write(2) of one whole line
// (O_APPEND, so concurrent appenders never interleave), then fdatasync when
// `sync`. Aborts the process on an I/O error: the harness cannot go on without it.
class DurableLog {
 public:
  DurableLog(const std::string& path, bool sync);
  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;
  void Append(std::string_view line);  // `line` without the newline

 private:
  int fd_ = -1;
  bool sync_;
};

// Ends the file with a newline when its last line was torn; returns true then.
bool RepairTornTail(const std::string& path);

struct EventRef {
  std::string stream;
  uint64_t seq = 0;
  bool operator<(const EventRef& o) const { return stream != o.stream ? stream < o.stream : seq < o.seq; }
  bool operator==(const EventRef& o) const = default;
};
std::string ToString(const EventRef& r);

// "<commit>#<k>/<n>", parsed.
struct Identity {
  std::string commit;
  int index = 0;
  int count = 0;
};
std::string EventPayload(std::string_view commit, int index, int count);
std::optional<Identity> ParsePayload(std::string_view payload);

struct Delivery {
  int generation = 0;
  EventRef id;
  std::string type;
  std::string payload;
};
struct Ack {
  std::string commit;
  int count = 0;
  std::vector<EventRef> events;
};
struct Outcome {
  int generation = 0;
  EventRef id;
  std::string payload;
};

// What Observer::OnDropped reported: `count` events of `stream` dropped,
// seqs first..last (seqs in between that were not droppable excepted).
struct Drop {
  int generation = 0;
  std::string stream;
  uint64_t first = 0, last = 0, count = 0;
};

struct Logs {
  std::vector<Delivery> deliveries;  // in file order
  std::vector<Ack> acks;
  std::vector<Outcome> outcomes;
  std::vector<Drop> drops;
  int torn_lines = 0;       // lines cut by a kill, skipped
  int malformed_lines = 0;  // anything else unreadable (a harness bug)
};

// Reads the four logs of `dir` (missing files are empty).
Logs ReadLogs(const std::string& dir);

// Line formats, shared by the writer and the parser.
std::string DeliveryLine(std::string_view stream, uint64_t seq, std::string_view type, std::string_view payload);
std::string OutcomeLine(std::string_view stream, uint64_t seq, std::string_view payload);
std::string AckLine(std::string_view commit, int count, const std::vector<EventRef>& events);
std::string DropLine(std::string_view stream, uint64_t first, uint64_t last, uint64_t count);
std::string MarkerLine(int generation);

}  // namespace jaiminho::testing::crash
