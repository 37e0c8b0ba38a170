// Writes the fuzz targets' seed corpus from valid values made by the codecs
// themselves (so the corpus follows the on-disk format when it changes):
//
//   cmake --build build-fuzz --target jaiminho_fuzz_corpus
//   build-fuzz/tests/fuzz/jaiminho_fuzz_corpus tests/fuzz/corpus
//
// writes tests/fuzz/corpus/envelope/*, tests/fuzz/corpus/key/* and
// tests/fuzz/corpus/tool_args/* (replacing files of the same name). Each file
// is one input, a few hundred bytes at most; a tool_args input is the
// argument vector, NUL-separated, naming the fuzz target's database "db".
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "storage/envelope.h"
#include "storage/keys.h"

namespace {

using namespace jaiminho;
using namespace jaiminho::internal;

void Write(const std::filesystem::path& dir, const std::string& name, std::string_view bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<long>(bytes.size()));
}

std::string Envelope(const EnvelopeFields& f) {
  std::string out;
  EncodeEnvelope(f, &out);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: jaiminho_fuzz_corpus CORPUS_DIR\n";
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const Header headers[] = {{"trace", "abc"}, {"tenant", "t1"}};

  EnvelopeFields minimal;
  minimal.seq = 1;
  minimal.stream = "s";
  minimal.type = "t";
  minimal.strategy = Strategy::kPublishOnCommit;
  Write(root / "envelope", "minimal", Envelope(minimal));

  EnvelopeFields full = minimal;
  full.seq = 65537;
  full.stream = "telemetry";
  full.type = "reading.v1";
  full.key = "dev/42";
  full.payload = std::string_view("\x00\x01payload\xff", 10);
  full.encoding = "application/x-test";
  full.headers = headers;
  full.created_at = 1'700'000'000'000'000;
  full.strategy = Strategy::kKeepOrder;
  full.attempts = 3;
  full.last_error = "unavailable: broker down";
  full.next_attempt_at = 1'700'000'001'000'000;
  full.note = "requeued by operator";
  Write(root / "envelope", "full", Envelope(full));

  EnvelopeFields sent = full;
  sent.sent_at = 1'700'000'002'000'000;
  const std::string signature(32, '\x5a');
  sent.signature = signature;
  sent.key_id = "k1";
  Write(root / "envelope", "sent_signed", Envelope(sent));

  // Operator actions in its history (issue 20).
  EnvelopeFields audited = full;
  const HistoryEntry history[] = {
      {.at = FromMicros(1'700'000'003'000'000),
       .user = "alice",
       .action = "skip",
       .reason = "poison",
       .previous_note = "blocked: 3 attempts exhausted; requeue or skip it"},
      {.at = FromMicros(1'700'000'004'000'000), .user = "bob", .action = "requeue"},
  };
  audited.history = history;
  audited.history_dropped = 2;
  Write(root / "envelope", "history", Envelope(audited));

  EnvelopeFields corrupt_parked = minimal;
  corrupt_parked.type = "jaiminho.corrupt";
  corrupt_parked.payload = "garbage";
  corrupt_parked.encoding = "application/x-jaiminho-corrupt-record";
  corrupt_parked.note = "corrupt record: bad envelope";
  Write(root / "envelope", "parked_corrupt", Envelope(corrupt_parked));

  EnvelopeFields big = minimal;
  std::string payload(300, 'p');
  big.payload = payload;
  Write(root / "envelope", "payload_300", Envelope(big));

  std::string cut = Envelope(full);
  Write(root / "envelope", "truncated", std::string_view(cut).substr(0, cut.size() / 2));

  for (char tag : {kPendingTag, kSentTag, kParkedTag}) {
    for (uint64_t seq : {uint64_t{0}, uint64_t{1}, uint64_t{65536}, uint64_t{1} << 40, UINT64_MAX}) {
      Write(root / "key", std::string(1, tag) + "_" + std::to_string(seq), SeqKey(tag, seq).view());
    }
  }
  Write(root / "key", "r_due_seq", RetryKey(1'700'000'000'000'000, 7).view());
  Write(root / "key", "r_zero", RetryKey(0, 0).view());
  Write(root / "key", "bad_short", std::string_view(SeqKey(kPendingTag, 1).bytes, 5));
  Write(root / "key", "bad_tag", "x12345678");
  const std::vector<std::vector<std::string>> commands = {
      {"dump", "db"},
      {"dump", "db", "--json", "--full"},
      {"dump", "db", "--stream", "s", "--state", "pending,parked", "--from-seq", "2", "--limit", "3"},
      {"dump", "db", "--type", "unknown", "--state", "corrupt"},
      {"streams", "db", "--json"},
      {"stats", "db", "--prometheus"},
      {"stats", "db", "--stream", "p", "--json"},
      {"verify", "db"},
      {"verify", "db", "--stream", "s", "--json"},
      {"relay", "db", "--stream", "p", "--sink", "stdout", "--interval", "500ms"},
      {"clean", "db", "--json"},
      {"requeue", "db", "--stream", "s", "--seq", "2", "--note", "fixed"},
      {"requeue", "db", "--stream", "s", "--all-parked", "--json"},
      {"skip", "db", "--stream", "s", "--seq", "4", "--reason", "poison"},
      {"dump", "missing"},
      {"--version"},
      {"dump", "--help"},
  };
  for (size_t i = 0; i < commands.size(); ++i) {
    std::string input;
    for (size_t k = 0; k < commands[i].size(); ++k) {
      if (k > 0) input.push_back('\0');
      input += commands[i][k];
    }
    Write(root / "tool_args", commands[i][0].substr(commands[i][0].find_first_not_of('-')) + "_" + std::to_string(i),
          input);
  }
  std::cout << "wrote the corpus under " << root << "\n";
  return 0;
}
