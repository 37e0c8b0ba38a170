#include "support/test_util.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>

#include "core/outbox_impl.h"
#include "storage/envelope.h"
#include "storage/keys.h"

namespace jaiminho::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/jaiminho-test-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> Snapshot(const std::string& dir) {
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file())
      out[e.path().string()] = {e.file_size(), e.last_write_time()};
    else
      out[e.path().string()] = {0, {}};
  }
  return out;
}

Status RecordingPublisher::Publish(const Event& e) {
  attempts.fetch_add(1);
  if (fail) {
    if (auto err = fail(e)) return tl::unexpected(*err);
  }
  std::lock_guard l(mu_);
  deliveries_.push_back(Delivery{std::string(e.id.stream), e.id.seq, std::string(e.type), std::string(e.key),
                                 std::string(e.payload), e.strategy, e.attempts});
  cv_.notify_all();
  return {};
}

std::vector<Delivery> RecordingPublisher::deliveries() const {
  std::lock_guard l(mu_);
  return deliveries_;
}

size_t RecordingPublisher::count() const {
  std::lock_guard l(mu_);
  return deliveries_.size();
}

bool RecordingPublisher::WaitFor(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock l(mu_);
  return cv_.wait_for(l, timeout, [&] { return deliveries_.size() >= n; });
}

rocksdb::ColumnFamilyHandle* StreamFamily(const Stream& stream) {
  return StreamAccess::Of(stream).cf;
}

std::vector<std::pair<char, uint64_t>> RawKeys(Outbox& outbox, const Stream& stream) {
  std::vector<std::pair<char, uint64_t>> out;
  std::unique_ptr<rocksdb::Iterator> it(outbox.db()->NewIterator(rocksdb::ReadOptions(), StreamFamily(stream)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = internal::DecodeKey(it->key().ToStringView());
    out.emplace_back(it->key()[0], k ? k->seq : 0);
  }
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

std::unique_ptr<Outbox> MustOpen(const std::string& dir, OutboxOptions o) {
  o.path = dir;
  auto r = Outbox::Open(std::move(o));
  if (!r) {
    ADD_FAILURE() << r.error().ToString();
    return nullptr;
  }
  return std::move(*r);
}

std::unique_ptr<Relay> MustMakeRelay(Outbox& outbox, std::shared_ptr<Publisher> publisher, RelayOptions o) {
  auto r = Relay::Make(outbox, std::move(publisher), std::move(o));
  if (!r) {
    ADD_FAILURE() << "Relay::Make: " << r.error().ToString();
    return nullptr;
  }
  return std::move(*r);
}

std::string EncodedEnvelope(uint64_t seq, std::string_view stream, int64_t next_attempt_at, int64_t sent_at) {
  internal::EnvelopeFields f;
  f.seq = seq;
  f.stream = stream;
  f.type = "t.v1";
  f.payload = "data";
  f.created_at = 5;
  f.next_attempt_at = next_attempt_at;
  f.sent_at = sent_at;
  std::string out;
  internal::EncodeEnvelope(f, &out);
  return out;
}

std::string StateTags(Outbox& outbox, const Stream& stream) {
  std::string out;
  const StreamState& st = StreamAccess::Of(stream);
  for (auto [tag, seq] : RawKeys(outbox, stream)) {
    if (tag == internal::kRunTag) continue;
    if (tag == internal::kPendingTag) {
      auto p = st.cleaner->ClassifyPending(seq);
      if (p.kind == internal::PendingKeyState::kGone) continue;
      if (p.kind == internal::PendingKeyState::kSent) tag = internal::kSentTag;
    }
    out.push_back(tag);
  }
  std::sort(out.begin(), out.end());
  return out;
}

RawDb::RawDb(const std::string& path, bool read_only) {
  rocksdb::DBOptions dbo;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, path, &names_).ok()) << path;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names_)
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = read_only ? rocksdb::DB::OpenForReadOnly(dbo, path, descs, &handles_, &raw)
                                : rocksdb::DB::Open(dbo, path, descs, &handles_, &raw);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  db_.reset(raw);
}

RawDb::~RawDb() {
  if (!db_) return;
  for (auto* h : handles_)
    db_->DestroyColumnFamilyHandle(h);
  EXPECT_TRUE(db_->Close().ok());
}

rocksdb::ColumnFamilyHandle* RawDb::Family(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return handles_[i];
  }
  ADD_FAILURE() << "no column family " << name;
  return nullptr;
}

void RawDb::Put(std::string_view family, std::string_view key, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  ASSERT_TRUE(db_ && Family(family));
  rocksdb::Status s =
      db_->Put(wo, Family(family), rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

std::optional<std::string> RawDb::Get(std::string_view family, std::string_view key) const {
  std::string v;
  if (!db_ || !Family(family)) return std::nullopt;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), Family(family), rocksdb::Slice(key.data(), key.size()), &v);
  if (s.IsNotFound()) return std::nullopt;
  EXPECT_TRUE(s.ok()) << s.ToString();
  return v;
}

}  // namespace jaiminho::testing
