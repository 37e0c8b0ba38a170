// The command line: CLI11 options into the commands' option structs.
#include <rocksdb/version.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "jaiminho/version.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "util/macros.h"

namespace jaiminho::tool {
namespace {

constexpr const char* kExitCodes =
    "Exit codes: 0 ok; 1 bad records found (verify) or the operation failed; 2 usage error, or the path does not "
    "exist or is not a jaiminho database (nothing is created); 3 a write command found the database in use by "
    "another process that serves no control socket, or whose socket does not answer (nothing is changed); 4 the "
    "database is damaged (CURRENT or MANIFEST missing or corrupt, jaiminho.meta fails verification; nothing is "
    "changed).";

CLI::Option* AddPath(CLI::App* cmd, std::string& path) {
  return cmd->add_option("db", path, "Database directory")->required();
}

// --stream S (repeatable): the streams a command looks at; all when absent.
void AddStreams(CLI::App* cmd, std::vector<std::string>& streams) {
  cmd->add_option("--stream", streams, "Only this stream (repeatable; default: all)");
}

// --keys FILE: signing keys (SigningOptions::keys) to check signatures with.
void AddKeys(CLI::App* cmd, std::string& file, const std::string& effect) {
  cmd->add_option("--keys", file, "Signing keys file (lines 'ID SECRET', signing key first): " + effect);
}

// Seqs and counts on the command line: 1 to 2^63-1.
constexpr uint64_t kMaxNumber = 9'223'372'036'854'775'807ULL;

// A numeric option read as text, so that "-5" or "1e3" is refused with a clear
// message (ParseCount) instead of wrapping around or being cut.
CLI::Option* AddNumber(CLI::App* cmd, const std::string& name, std::string& text, const std::string& help) {
  return cmd->add_option(name, text, help + " (1 to 2^63-1)")->type_name("N");
}

// The value of a numeric option given as `text` (nullopt when the option was absent).
Result<std::optional<uint64_t>> NumberOf(const CLI::Option* option, const std::string& text) {
  if (option->count() == 0) return std::optional<uint64_t>();
  JM_ASSIGN_OR_RETURN(uint64_t v, ParseCount(text, option->get_name(), 1, kMaxNumber));
  return std::optional<uint64_t>(v);
}

// "dump, streams, ...": the commands, in the order of --help.
std::string CommandList(const CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (!out.empty()) out += ", ";
    out += sub->get_name();
  }
  return out;
}

bool IsCommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == name) return true;
  }
  return false;
}

}  // namespace

int Run(int argc, const char* const* argv, Io& io) {
  CLI::App app{
      "Inspects, relays, cleans and unsticks a jaiminho database.\n"
      "Read commands (dump, streams, stats, verify, inbox) work while a program has the database open and never change "
      "it;\n"
      "write commands (relay, clean, requeue, skip) refuse a database another process holds, except that\n"
      "requeue, skip, clean (and stats, with counters) act through that process's control socket when it serves one.",
      "jaiminho-tool"};
  app.require_subcommand(1);
  app.footer(kExitCodes);
  app.set_version_flag("--version", std::string("jaiminho-tool ") + JAIMINHO_VERSION_STRING + " (RocksDB " +
                                        rocksdb::GetRocksVersionAsString() + ", on-disk format " +
                                        std::to_string(kFormatVersion) + ")");
  app.failure_message([](const CLI::App* /*app*/, const CLI::Error& e) {
    return std::string("jaiminho-tool: ") + e.what() + " (run with --help for usage)\n";
  });

  DumpOptions dump;
  std::string dump_from, dump_to, dump_limit, dump_key;
  CLI::App* d = app.add_subcommand(
      "dump", "Print events in seq order, across states (per stream, streams by name); --follow for new ones");
  AddPath(d, dump.path);
  AddStreams(d, dump.streams);
  d->add_option("--state", dump.states, "Only these states: pending, retrying, sent, parked, corrupt (repeatable)")
      ->delimiter(',');
  CLI::Option* from_seq = AddNumber(d, "--from-seq", dump_from, "Only events with seq >= N");
  CLI::Option* to_seq = AddNumber(d, "--to-seq", dump_to, "Only events with seq <= N");
  CLI::Option* limit = AddNumber(d, "--limit", dump_limit, "At most N events in all");
  d->add_option("--type", dump.type, "Only events of this type");
  CLI::Option* key = d->add_option("--key", dump_key, "Only events whose key is K")->type_name("K");
  d->add_option("--since", dump.since,
                "Only events created at or after T (created_at): ISO-8601 UTC (2024-05-01T12:00:00Z, 2024-05-01) or "
                "seconds since the epoch")
      ->type_name("T");
  d->add_option("--until", dump.until, "Only events created before T (as --since)")->type_name("T");
  d->add_flag("--full", dump.full, "Do not truncate payloads and long texts");
  d->add_flag("--json", dump.json, "One JSON object per line (payloads never truncated)");
  AddKeys(d, dump.keys_file, "records failing verification show as corrupt");
  d->add_flag("--follow", dump.follow,
              "Then keep printing events as they are committed (polls every --interval, reopening the database "
              "read-only; works while a program holds it) until SIGINT/SIGTERM");
  d->add_option("--interval", dump.interval, "--follow's poll interval: 250ms, 1s, ...")->capture_default_str();

  StreamsOptions streams;
  CLI::App* s = app.add_subcommand("streams", "Each stream: strategy, backlog, cursor, parked, blocked and by what");
  AddPath(s, streams.path);
  AddStreams(s, streams.streams);
  s->add_flag("--json", streams.json, "One JSON object per stream");

  StatsOptions stats;
  CLI::App* st = app.add_subcommand(
      "stats", "The metrics gauges of each stream (and counters, from a running program's control socket)");
  AddPath(st, stats.path);
  AddStreams(st, stats.streams);
  st->add_flag("--prometheus", stats.prometheus, "Prometheus text exposition format");
  st->add_flag("--json", stats.json, "One JSON object per stream");
  st->add_option(
      "--output", stats.output,
      "Write to FILE atomically (temporary file, fsync, rename), e.g. for node_exporter's textfile collector");

  VerifyOptions verify;
  CLI::App* v = app.add_subcommand("verify", "Verify every record; list the bad ones (exit 1 when any)");
  AddPath(v, verify.path);
  AddStreams(v, verify.streams);
  v->add_flag("--json", verify.json, "One JSON object per bad record");
  AddKeys(v, verify.keys_file, "check signatures too");

  InboxCommandOptions inbox;
  CLI::App* in = app.add_subcommand(
      "inbox", "Per (producer database id, stream) the Inbox recorded: watermark, ranges above it, gaps, counts");
  AddPath(in, inbox.path);
  in->add_option("--db-id", inbox.db_ids, "Only this producer database id, 32 hex digits (repeatable; default: all)")
      ->type_name("HEX");
  in->add_option("--stream", inbox.streams, "Only this producer stream (repeatable; default: all)");
  in->add_flag("--gaps", inbox.gaps, "One row per reported gap range (db_id, stream, first_seq, last_seq, seqs)");
  in->add_flag("--json", inbox.json, "One JSON object per (database id, stream), or per gap range with --gaps");

  RelayCommandOptions relay;
  CLI::App* r = app.add_subcommand("relay", "Deliver events to a sink (once, or --loop until SIGINT/SIGTERM)");
  AddPath(r, relay.path);
  r->add_option("--sink", relay.sink,
                "stdout (JSON lines), exec:COMMAND (run per event with its JSON line on stdin; exit 0 = delivered), "
                "or, when built with the broker adapters, mqtt://HOST[:PORT]/TOPIC-TEMPLATE (mqtts:// for TLS) and "
                "kafka://HOST:PORT[,...]/TOPIC-TEMPLATE")
      ->capture_default_str();
  r->add_flag("--loop", relay.loop,
              "Keep running until SIGINT/SIGTERM, retrying failed events when due (polls every --interval; the "
              "database stays locked)");
  r->add_option("--interval", relay.interval, "Loop poll and retry interval: 500ms, 2s, 1m, ...")
      ->capture_default_str();
  AddStreams(r, relay.streams);
  AddKeys(r, relay.keys_file, "tampered events are parked, never sent");
  r->add_flag("--control-socket", relay.control_socket,
              "Serve requeue, skip, clean and stats to other jaiminho-tool runs on DB/control.sock while relaying");

  CleanOptions clean;
  CLI::App* c = app.add_subcommand("clean", "Force the cleaner: drop sent events older than time_to_delete");
  AddPath(c, clean.path);
  c->add_flag("--json", clean.json, "The report as one JSON object");

  RequeueOptions requeue;
  std::string requeue_seq;
  CLI::App* q = app.add_subcommand("requeue", "Send a parked or retrying event (or a blocked head) back to delivery");
  AddPath(q, requeue.path);
  q->add_option("--stream", requeue.stream, "Stream")->required();
  CLI::Option* seq = AddNumber(q, "--seq", requeue_seq, "The event's seq");
  CLI::Option* all = q->add_flag("--all-parked", requeue.all_parked, "Every parked event of the stream");
  seq->excludes(all);
  q->add_option("--note", requeue.note, "Why (recorded in the event's history with your user name)");
  q->add_flag("--json", requeue.json, "The result as one JSON object");

  SkipOptions skip;
  std::string skip_seq;
  CLI::App* k = app.add_subcommand("skip", "Park a pending event with a reason (unblocks a keep-order stream)");
  AddPath(k, skip.path);
  k->add_option("--stream", skip.stream, "Stream")->required();
  CLI::Option* skip_seq_option = AddNumber(k, "--seq", skip_seq, "The event's seq")->required();
  k->add_option("--reason", skip.reason, "Why (recorded in the event's history with your user name)")->required();
  k->add_flag("--json", skip.json, "The result as one JSON object");

  for (CLI::App* cmd : {d, s, st, v, in, r, c, q, k})
    cmd->footer(kExitCodes);

  // An unknown command is named (CLI11 would call it an unexpected argument).
  if (argc < 2) {
    io.err << "jaiminho-tool: a command is required; commands are: " << CommandList(app)
           << " (run with --help for usage)\n";
    return kExitUsage;
  }
  if (const std::string first = argv[1]; !first.starts_with("-") && !IsCommand(app, first)) {
    io.err << "jaiminho-tool: unknown command '" << first << "'; commands are: " << CommandList(app)
           << " (run with --help for usage)\n";
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    io.out.flush();
    int code = app.exit(e, io.out, io.err);
    io.out.flush();
    io.err.flush();
    return code == 0 ? kExitOk : kExitUsage;
  }
  // Numeric options, range-checked (usage errors).
  auto number = [&](const CLI::Option* option, const std::string& text, std::optional<uint64_t>& out) {
    auto parsed = NumberOf(option, text);
    if (!parsed) return false;
    out = *parsed;
    return true;
  };
  auto bad_number = [&](const CLI::App* command, const CLI::Option* option, const std::string& text) {
    auto parsed = NumberOf(option, text);
    return Report(io, command->get_name(), parsed.error(), kExitUsage);
  };
  if (d->parsed()) {
    std::optional<uint64_t> from;
    if (!number(from_seq, dump_from, from)) return bad_number(d, from_seq, dump_from);
    dump.from_seq = from.value_or(0);
    if (!number(to_seq, dump_to, dump.to_seq)) return bad_number(d, to_seq, dump_to);
    if (!number(limit, dump_limit, dump.limit)) return bad_number(d, limit, dump_limit);
    if (key->count() > 0) dump.key = dump_key;
    return Dump(dump, io);
  }
  if (s->parsed()) return Streams(streams, io);
  if (st->parsed()) return Stats(stats, io);
  if (v->parsed()) return Verify(verify, io);
  if (in->parsed()) return InboxCommand(inbox, io);
  if (r->parsed()) return RelayCommand(relay, io);
  if (c->parsed()) return Clean(clean, io);
  if (q->parsed()) {
    if (!number(seq, requeue_seq, requeue.seq)) return bad_number(q, seq, requeue_seq);
    return Requeue(requeue, io);
  }
  if (k->parsed()) {
    std::optional<uint64_t> skip_value;
    if (!number(skip_seq_option, skip_seq, skip_value)) return bad_number(k, skip_seq_option, skip_seq);
    skip.seq = skip_value.value_or(0);
    return Skip(skip, io);
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
}

int Main(int argc, const char* const* argv) {
  Io io{std::cout, std::cerr, ::isatty(1) == 1, ::isatty(2) == 1};
  return Run(argc, argv, io);
}

}  // namespace jaiminho::tool
