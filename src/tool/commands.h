// The commands of jaiminho-tool, one function each (the CLI in cli.cc only
// parses options into these structs). Each returns the process exit code
// (tool::ExitCode) and writes only to io.out / io.err.
//
//   std::ostringstream out, err;
//   tool::Io io{out, err};
//   int code = tool::Dump({.path = "var/gw.db", .json = true}, io);
//
// Human output: an aligned table when io.out_tty, else tab-separated with a
// header line. --json: one JSON object per line. Progress of long operations
// goes to io.err only when io.err_tty.
//
// Thread-safety: each call is independent; commands on one database from
// several threads are as safe as the library calls they make.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "storage/inbox_record.h"
#include "tool/common.h"

namespace jaiminho::tool {

// dump: events in seq order per stream, across states (streams by name).
// With `follow`, then polls the database every `interval` (reopening it
// read-only) and prints the events committed since, until SIGINT or SIGTERM
// (exit 0) or until `limit` events were printed.
struct DumpOptions {
  std::string path{};
  std::vector<std::string> streams{};  // empty = every stream
  std::vector<std::string> states{};   // pending, retrying, sent, parked, corrupt; empty = all
  uint64_t from_seq = 0;
  std::optional<uint64_t> to_seq{};  // inclusive
  std::optional<uint64_t> limit{};   // records printed, over all streams
  std::string type{};
  std::optional<std::string> key{};  // only events whose key is this
  // created_at bounds: since inclusive, until exclusive; ISO-8601 UTC or epoch
  // seconds (ParseTime).
  std::string since{};
  std::string until{};
  bool full = false;        // payloads (and long texts in tables) untruncated
  bool json = false;        // full payloads always
  std::string keys_file{};  // signing keys: records that fail verification show as corrupt
  bool follow = false;
  std::string interval = "1s";  // --follow's poll interval (ParseDuration)
};
int Dump(const DumpOptions& o, Io& io);

// streams: configuration and delivery state of each stream.
struct StreamsOptions {
  std::string path{};
  std::vector<std::string> streams{};
  bool json = false;
};
int Streams(const StreamsOptions& o, Io& io);

// stats: the metrics gauges; --prometheus in the Prometheus text format.
// With `output`, the text replaces that file atomically (WriteFileAtomically:
// for node_exporter's textfile collector) instead of going to io.out.
struct StatsOptions {
  std::string path{};
  std::vector<std::string> streams{};
  bool prometheus = false;
  bool json = false;
  std::string output{};
};
int Stats(const StatsOptions& o, Io& io);

// verify: checks every record of every stream; exit 1 when any is bad.
struct VerifyOptions {
  std::string path{};
  std::vector<std::string> streams{};
  bool json = false;
  std::string keys_file{};  // signing keys: signatures are checked too
};
int Verify(const VerifyOptions& o, Io& io);

// inbox: what the Inbox recorded per (producer database id, stream): the
// watermark, the ranges received above it, the reported gaps and the counts;
// with `gaps`, one row per gap range. Read-only (works while a program holds
// the database). A record failing verification is named on io.err (exit 1);
// a database without an inbox gives a note on io.err, no rows, exit 0.
struct InboxCommandOptions {
  std::string path{};
  std::vector<std::string> db_ids{};   // producer database ids (32 hex digits); empty = all
  std::vector<std::string> streams{};  // producer stream names; empty = all
  bool gaps = false;
  bool json = false;
};
int InboxCommand(const InboxCommandOptions& o, Io& io);

// One record of jaiminho.inbox as read by ScanInbox: `error` (naming the
// record) is set when its key or value fails verification; `db` and `stream`
// are set when `key_ok`.
struct InboxEntry {
  std::string raw_key{};
  bool key_ok = false;
  DatabaseId db{};
  std::string stream{};
  internal::InboxRecord record{};
  std::string error{};
};
// Calls `each` for every record of the inbox family of `db` (none when the
// database has no inbox), in key order. Errors: reading the family failed.
Status ScanInbox(const internal::ReadOnlyDb& db, const std::string& path,
                 const std::function<void(const InboxEntry&)>& each);

// relay: delivers to a sink once (everything due now): exit 1 when an attempt
// failed or a stream is blocked. With `loop`, until SIGINT/SIGTERM: exit 0 then
// (failures are retried by the loop). A summary line goes to io.err.
struct RelayCommandOptions {
  std::string path{};
  std::string sink = "stdout";
  bool loop = false;
  std::string interval = "1s";
  std::vector<std::string> streams{};
  std::string keys_file{};  // signing keys: tampered records are parked, not published
  // Serve requeue, skip, clean and stats on DB/control.sock while relaying
  // (OutboxOptions::control_socket).
  bool control_socket = false;
};
int RelayCommand(const RelayCommandOptions& o, Io& io);

// clean: Outbox::Clean.
struct CleanOptions {
  std::string path{};
  bool json = false;
};
int Clean(const CleanOptions& o, Io& io);

// requeue: a parked or retrying event (or a blocked keep-order head) back to
// delivery, or every parked event of the stream; any other event is refused.
struct RequeueOptions {
  std::string path{};
  std::string stream{};
  std::optional<uint64_t> seq{};
  bool all_parked = false;
  std::string note{};  // the reason, recorded in the event's history (may be empty)
  bool json = false;
};
int Requeue(const RequeueOptions& o, Io& io);

// skip: parks a pending event with a reason (unblocks a keep-order stream).
struct SkipOptions {
  std::string path{};
  std::string stream{};
  uint64_t seq = 0;
  std::string reason{};
  bool json = false;
};
int Skip(const SkipOptions& o, Io& io);

// Parses argv (argv[0] is the program) and runs the command. --help on the
// tool and on each command prints to io.out and returns 0; usage errors print
// one line to io.err and return 2.
int Run(int argc, const char* const* argv, Io& io);

// Run() on std::cout / std::cerr, with isatty() deciding tables and progress.
int Main(int argc, const char* const* argv);

}  // namespace jaiminho::tool
