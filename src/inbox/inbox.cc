// Inbox (include/jaiminho/inbox.h): the consumer's record of what it received.
//
// Concurrency: Receive claims the id (Core::Entry::claimed) and adds it to the
// transaction's hook for the (database, stream): one hook per record a
// transaction touches, holding every seq it received there, so a transaction
// receiving n ids of a stream costs O(n log n) and writes the record once.
// The record itself is computed by the hook at commit time
// by the group leader (core/transaction_internal.h), from the committed state
// plus what earlier hooks of the same group wrote, and becomes the committed
// state only once the batch is written. So the record on disk is never
// computed from a stale state, and an id is recorded by one transaction at
// most: a second Receive of a claimed id is kInFlight, of a committed one
// kDuplicate. The claim ends with the transaction's content (commit, Clear,
// destruction).
#include "jaiminho/inbox.h"

#include <fmt/format.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <unordered_set>

#include "core/outbox_impl.h"
#include "core/transaction_internal.h"
#include "jaiminho/outbox.h"
#include "storage/inbox_record.h"
#include "storage/meta.h"
#include "storage/status.h"
#include "util/macros.h"
#include "util/mutex.h"

namespace jaiminho {

using internal::InboxRange;
using internal::InboxRecord;

std::string_view ToString(ReceiveOutcome o) {
  switch (o) {
    case ReceiveOutcome::kNew:
      return "new";
    case ReceiveOutcome::kDuplicate:
      return "duplicate";
    case ReceiveOutcome::kOutOfOrder:
      return "out of order";
    case ReceiveOutcome::kInFlight:
      return "in flight";
  }
  return "unknown";
}

namespace {

constexpr uint64_t kMaxHorizonSeqs = uint64_t{1} << 20;
constexpr uint32_t kMaxGapRanges = 1u << 16;

// The index of the range of `ranges` (sorted) holding seq, or npos.
size_t FindRange(const std::vector<InboxRange>& ranges, uint64_t seq) {
  auto it =
      std::upper_bound(ranges.begin(), ranges.end(), seq, [](uint64_t s, const InboxRange& r) { return s < r.first; });
  if (it == ranges.begin()) return SIZE_MAX;
  --it;
  return seq <= it->last ? static_cast<size_t>(it - ranges.begin()) : SIZE_MAX;
}

bool InGap(const InboxRecord& r, uint64_t seq) {
  return seq <= r.watermark && FindRange(r.gaps, seq) != SIZE_MAX;
}

bool Received(const InboxRecord& r, uint64_t seq) {
  if (seq <= r.watermark) return FindRange(r.gaps, seq) == SIZE_MAX;
  return FindRange(r.above, seq) != SIZE_MAX;
}

// Adds seq (above the watermark, not received) to r.above.
void InsertAbove(InboxRecord& r, uint64_t seq, int64_t now_us) {
  auto& a = r.above;
  auto it = std::upper_bound(a.begin(), a.end(), seq, [](uint64_t s, const InboxRange& x) { return s < x.first; });
  const bool joins_prev = it != a.begin() && std::prev(it)->last + 1 == seq;
  const bool joins_next = it != a.end() && it->first == seq + 1;
  if (joins_prev && joins_next) {
    auto p = std::prev(it);
    p->last = it->last;
    p->since_us = std::min({p->since_us, it->since_us, now_us});
    a.erase(it);
  } else if (joins_prev) {
    auto p = std::prev(it);
    p->last = seq;
    p->since_us = std::min(p->since_us, now_us);
  } else if (joins_next) {
    it->first = seq;
    it->since_us = std::min(it->since_us, now_us);
  } else {
    a.insert(it, InboxRange{seq, seq, now_us});
  }
}

// Removes seq from the gap holding it (a late event).
void RemoveFromGaps(InboxRecord& r, uint64_t seq) {
  const size_t i = FindRange(r.gaps, seq);
  if (i == SIZE_MAX) return;
  InboxRange& g = r.gaps[i];
  if (g.first == g.last) {
    r.gaps.erase(r.gaps.begin() + static_cast<std::ptrdiff_t>(i));
  } else if (seq == g.first) {
    ++g.first;
  } else if (seq == g.last) {
    --g.last;
  } else {
    InboxRange high{seq + 1, g.last, 0};
    g.last = seq - 1;
    r.gaps.insert(r.gaps.begin() + static_cast<std::ptrdiff_t>(i) + 1, high);
  }
}

// Ranges above that touch the watermark fold into it.
void Fold(InboxRecord& r) {
  size_t n = 0;
  while (n < r.above.size() && r.above[n].first == r.watermark + 1) {
    r.watermark = r.above[n].last;
    ++n;
  }
  r.above.erase(r.above.begin(), r.above.begin() + static_cast<std::ptrdiff_t>(n));
}

// The hole below r.above[0] becomes a gap; the range folds into the watermark.
void DeclareLowest(InboxRecord& r, std::vector<InboxRange>& declared) {
  InboxRange gap{r.watermark + 1, r.above.front().first - 1, 0};
  r.gaps.push_back(gap);
  declared.push_back(gap);
  r.gap_seqs += gap.last - gap.first + 1;
  r.watermark = r.above.front().last;
  r.above.erase(r.above.begin());
}

// Records seq (not received yet) in r, then applies the horizons and the
// gap list's bound. Gaps declared are appended to `declared`.
void Apply(InboxRecord& r, uint64_t seq, int64_t now_us, const InboxOptions& o, std::vector<InboxRange>& declared) {
  ++r.received;
  if (seq <= r.watermark) {
    RemoveFromGaps(r, seq);  // a late event in a reported gap (or a forgotten one)
    return;
  }
  InsertAbove(r, seq, now_us);
  Fold(r);
  while (!r.above.empty() && r.above.back().last - r.watermark > o.horizon_seqs)
    DeclareLowest(r, declared);
  if (o.horizon_age.count() > 0 && !r.above.empty()) {
    // The hole below above[i] has waited since the earliest arrival above it.
    std::vector<int64_t> since(r.above.size());
    int64_t m = INT64_MAX;
    for (size_t i = r.above.size(); i-- > 0;) {
      m = std::min(m, r.above[i].since_us);
      since[i] = m;
    }
    size_t i = 0;
    while (i < since.size() && now_us - since[i] > o.horizon_age.count()) {
      DeclareLowest(r, declared);
      ++i;
    }
  }
  if (r.gaps.size() > o.max_gap_ranges) {
    const size_t drop = r.gaps.size() - o.max_gap_ranges;
    for (size_t i = 0; i < drop; ++i)
      r.forgotten += r.gaps[i].last - r.gaps[i].first + 1;
    r.gaps.erase(r.gaps.begin(), r.gaps.begin() + static_cast<std::ptrdiff_t>(drop));
  }
}

std::vector<SeqRange> ToPublic(const std::vector<InboxRange>& ranges) {
  std::vector<SeqRange> out;
  out.reserve(ranges.size());
  for (const InboxRange& r : ranges)
    out.push_back({r.first, r.last});
  return out;
}

// `raw` for a message: printable ASCII as is, other bytes as \xNN, at most 200 bytes.
std::string Shown(std::string_view raw) {
  std::string out;
  for (size_t i = 0; i < raw.size() && i < 200; ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (raw.size() > 200) out += fmt::format("... ({} bytes)", raw.size());
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status ValidateOptions(const InboxOptions& o) {
  if (o.horizon_seqs < 1 || o.horizon_seqs > kMaxHorizonSeqs) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("InboxOptions.horizon_seqs must be 1-{}, got {}", kMaxHorizonSeqs, o.horizon_seqs));
  }
  if (o.horizon_age.count() < 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("InboxOptions.horizon_age must be >= 0, got {} us", o.horizon_age.count()));
  }
  if (o.max_gap_ranges < 1 || o.max_gap_ranges > kMaxGapRanges) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("InboxOptions.max_gap_ranges must be 1-{}, got {}", kMaxGapRanges, o.max_gap_ranges));
  }
  for (const auto& s : o.keep_order_streams) {
    if (auto v = internal::ValidateStreamName(s); !v) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("InboxOptions.keep_order_streams: {}", v.error().message()));
    }
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------

class Inbox::Core : public std::enable_shared_from_this<Inbox::Core> {
 public:
  // What the inbox keeps per (database, stream). Never removed: pointers stay valid.
  struct Entry {
    DatabaseId db;
    std::string stream;
    std::string key;  // internal::InboxKey
    InboxRecord committed;
    // What the current commit group wrote so far (hooks of earlier
    // transactions in the group), and the hook that wrote it last.
    std::optional<InboxRecord> writing;
    const void* writing_owner = nullptr;
    // Seqs recorded by open transactions (claims).
    std::unordered_set<uint64_t> claimed;
  };

  Core(OutboxImpl* impl, rocksdb::ColumnFamilyHandle* cf, InboxOptions options)
      : impl_(impl), cf_(cf), options_(std::move(options)) {}

  Status Load() EXCLUDES(mu_);
  Result<ReceiveOutcome> Receive(Transaction& txn, const EventId& id, const ReceiveOptions& o) EXCLUDES(mu_);
  std::vector<InboxStreamState> State() const EXCLUDES(mu_);
  std::optional<InboxStreamState> State(const DatabaseId& db, std::string_view stream) const EXCLUDES(mu_);

 private:
  class Hook;
  static InboxStreamState ToState(const Entry& e);
  bool KeepOrder(std::string_view stream, const ReceiveOptions& o) const {
    if (o.keep_order) return *o.keep_order;
    return std::find(options_.keep_order_streams.begin(), options_.keep_order_streams.end(), stream) !=
           options_.keep_order_streams.end();
  }

  OutboxImpl* const impl_;
  rocksdb::ColumnFamilyHandle* const cf_;
  const InboxOptions options_;
  mutable internal::Mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_ GUARDED_BY(mu_);
};

// The ids one transaction received from one (database, stream)
// (core/transaction_internal.h's protocol).
class Inbox::Core::Hook final : public TransactionInternal::Hook {
 public:
  Hook(std::shared_ptr<Core> core, Entry* entry) : core_(std::move(core)), entry_(entry) {}
  ~Hook() override {
    internal::MutexLock l(core_->mu_);
    for (uint64_t seq : order_)
      entry_->claimed.erase(seq);
  }
  const Entry* entry() const { return entry_; }
  bool Holds(uint64_t seq) const { return seqs_.count(seq) != 0; }
  // Claimed by the caller, under core_->mu_.
  void Add(uint64_t seq) {
    seqs_.insert(seq);
    order_.push_back(seq);
  }
  // The next seq in order for a keep-order stream: the first above `watermark`
  // this transaction does not hold. Every seq from watermark + 1 to the last
  // answer was held then and still is (a transaction only adds), so the walk
  // resumes there: amortized O(log n) per call.
  uint64_t NextInOrder(uint64_t watermark) {
    uint64_t next = std::max(watermark + 1, next_in_order_);
    while (Holds(next))
      ++next;
    next_in_order_ = next;
    return next;
  }

  void Prepare(rocksdb::WriteBatch& batch) override {
    const int64_t now = ToMicros(core_->impl_->Now());
    internal::MutexLock l(core_->mu_);
    after_ = entry_->writing ? *entry_->writing : entry_->committed;
    declared_.clear();
    for (uint64_t seq : order_)
      Apply(after_, seq, now, core_->options_, declared_);
    internal::EncodeInboxRecord(after_, &value_);
    // A Put into a family the batch knows: WriteBatch::Put fails only past its size limit (none set).
    batch.Put(core_->cf_, entry_->key, value_).PermitUncheckedError();
    entry_->writing = after_;
    entry_->writing_owner = this;
  }
  void Written() override {
    {
      internal::MutexLock l(core_->mu_);
      entry_->committed = std::move(after_);
      if (entry_->writing_owner == this) {
        entry_->writing.reset();
        entry_->writing_owner = nullptr;
      }
    }
    for (const InboxRange& g : declared_) {
      core_->impl_->Log({.level = LogLevel::kWarn,
                         .message = "inbox: seqs never received, skipped as a gap",
                         .stream = entry_->stream,
                         .fields = {{"db", entry_->db.ToHex()},
                                    {"first_seq", std::to_string(g.first)},
                                    {"last_seq", std::to_string(g.last)},
                                    {"seqs", std::to_string(g.last - g.first + 1)}}});
    }
  }
  void Unwritten() override {
    internal::MutexLock l(core_->mu_);
    entry_->writing.reset();
    entry_->writing_owner = nullptr;
  }

 private:
  const std::shared_ptr<Core> core_;
  Entry* const entry_;
  std::set<uint64_t> seqs_;      // held, for lookups
  std::vector<uint64_t> order_;  // held, in the order received (applied in it)
  uint64_t next_in_order_ = 0;
  InboxRecord after_;
  std::vector<InboxRange> declared_;
  std::string value_;
};

Status Inbox::Core::Load() {
  const std::string& path = impl_->options.path;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, cf_));
  internal::MutexLock l(mu_);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    auto decoded_key = internal::DecodeInboxKey(key);
    if (!decoded_key) {
      return MakeError(ErrorCode::kCorruption, fmt::format("{}: {}", path, decoded_key.error().message()));
    }
    auto& [db, stream] = *decoded_key;
    JM_ASSIGN_OR_RETURN(InboxRecord record,
                        internal::DecodeInboxRecord(std::string_view(it->value().data(), it->value().size()),
                                                    fmt::format("{}: {} record of stream '{}' from database {}", path,
                                                                internal::kInboxFamily, Shown(stream), db.ToHex())));
    auto e = std::make_unique<Entry>();
    e->db = db;
    e->stream = stream;
    e->key = std::string(key);
    e->committed = std::move(record);
    entries_.emplace(e->key, std::move(e));
  }
  return internal::ToStatus(it->status(), fmt::format("read {} of {}", internal::kInboxFamily, path));
}

Result<ReceiveOutcome> Inbox::Core::Receive(Transaction& txn, const EventId& id, const ReceiveOptions& o) {
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("Inbox::Receive"));
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("Inbox::Receive of event {}/{}/{}: {}", id.db.ToHex(), Shown(id.stream), id.seq, why));
  };
  if (TransactionInternal::Owner(txn) != impl_) {
    return bad(fmt::format("the transaction belongs to another Outbox, not to {}", impl_->options.path));
  }
  if (id.seq == 0) return bad("seq 0 (seqs start at 1)");
  if (auto v = internal::ValidateStreamName(id.stream); !v) return bad(v.error().message());
  const bool keep_order = KeepOrder(id.stream, o);
  std::string key = internal::InboxKey(id.db, id.stream);
  auto& hooks = TransactionInternal::Hooks(txn);
  internal::MutexLock l(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    auto e = std::make_unique<Entry>();
    e->db = id.db;
    e->stream = std::string(id.stream);
    e->key = key;
    it = entries_.emplace(std::move(key), std::move(e)).first;
  }
  Entry* e = it->second.get();
  // This transaction's hook for the entry (one per record it touches: few).
  Hook* mine = nullptr;
  for (const auto& h : hooks) {
    auto* hook = dynamic_cast<Hook*>(h.get());
    if (hook != nullptr && hook->entry() == e) {
      mine = hook;
      break;
    }
  }
  if (Received(e->committed, id.seq) || (mine != nullptr && mine->Holds(id.seq))) return ReceiveOutcome::kDuplicate;
  if (e->claimed.count(id.seq) != 0) return ReceiveOutcome::kInFlight;
  if (keep_order && !InGap(e->committed, id.seq)) {
    // The next in order: after the watermark and what this transaction received.
    const uint64_t next = mine != nullptr ? mine->NextInOrder(e->committed.watermark) : e->committed.watermark + 1;
    if (id.seq != next) return ReceiveOutcome::kOutOfOrder;
  }
  if (mine == nullptr) {
    hooks.push_back(std::make_unique<Hook>(shared_from_this(), e));
    mine = static_cast<Hook*>(hooks.back().get());
  }
  e->claimed.insert(id.seq);
  mine->Add(id.seq);
  return ReceiveOutcome::kNew;
}

InboxStreamState Inbox::Core::ToState(const Entry& e) {
  InboxStreamState s;
  s.db = e.db;
  s.stream = e.stream;
  s.watermark = e.committed.watermark;
  s.above = ToPublic(e.committed.above);
  s.gaps = ToPublic(e.committed.gaps);
  s.received = e.committed.received;
  s.gap_seqs = e.committed.gap_seqs;
  s.forgotten = e.committed.forgotten;
  return s;
}

std::vector<InboxStreamState> Inbox::Core::State() const {
  std::vector<InboxStreamState> out;
  internal::MutexLock l(mu_);
  for (const auto& [key, e] : entries_) {
    if (e->committed == InboxRecord{}) continue;  // nothing recorded yet
    out.push_back(ToState(*e));
  }
  return out;
}

std::optional<InboxStreamState> Inbox::Core::State(const DatabaseId& db, std::string_view stream) const {
  internal::MutexLock l(mu_);
  auto it = entries_.find(internal::InboxKey(db, stream));
  if (it == entries_.end() || it->second->committed == InboxRecord{}) return std::nullopt;
  return ToState(*it->second);
}

// ---------------------------------------------------------------------------

Inbox::Inbox(std::shared_ptr<Core> core) : core_(std::move(core)) {}
Inbox::~Inbox() = default;

Result<std::unique_ptr<Inbox>> Inbox::Open(Outbox& outbox, InboxOptions options) {
  JM_RETURN_IF_ERROR(ValidateOptions(options));
  OutboxImpl& impl = OutboxAccess::Of(outbox);
  JM_ASSIGN_OR_RETURN(auto guard, impl.Enter("Inbox::Open"));
  internal::MutexLock create(impl.create_mu);
  if (!impl.inbox.expired()) {
    return MakeError(ErrorCode::kBusy, fmt::format("Inbox::Open: {} already has an Inbox (one at a time; destroy it "
                                                   "and the transactions holding its received ids first)",
                                                   impl.options.path));
  }
  if (impl.inbox_cf == nullptr) {
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    auto s = impl.db->CreateColumnFamily(internal::InboxFamilyOptions(), std::string(internal::kInboxFamily), &cf);
    JM_RETURN_IF_ERROR(
        internal::ToStatus(s, fmt::format("create column family {} in {}", internal::kInboxFamily, impl.options.path)));
    impl.owned_handles.push_back(cf);
    impl.inbox_cf = cf;
  }
  auto core = std::make_shared<Core>(&impl, impl.inbox_cf, std::move(options));
  JM_RETURN_IF_ERROR(core->Load());
  impl.inbox = core;
  return std::unique_ptr<Inbox>(new Inbox(std::move(core)));
}

Result<ReceiveOutcome> Inbox::Receive(Transaction& txn, const EventId& id, ReceiveOptions options) {
  return core_->Receive(txn, id, options);
}

Result<ReceiveOutcome> Inbox::Receive(Transaction& txn, std::string_view raw_id, ReceiveOptions options) {
  auto id = ParseEventId(raw_id);
  if (!id) return MakeError(ErrorCode::kInvalidArgument, fmt::format("Inbox::Receive: {}", id.error().message()));
  return core_->Receive(txn, *id, options);
}

Result<EventId> Inbox::ParseEventId(std::string_view raw) {
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("event id '{}' is not <32 hex digits>/<stream>/<seq>: {}", Shown(raw), why));
  };
  if (raw.size() > 32 + 1 + 128 + 1 + 20) return bad(fmt::format("{} bytes is too long", raw.size()));
  const size_t slash = raw.find('/');
  if (slash == std::string_view::npos) return bad("no '/'");
  if (slash != 32) return bad(fmt::format("the database id has {} characters, not 32", slash));
  EventId id;
  for (size_t i = 0; i < 16; ++i) {
    const int hi = HexValue(raw[2 * i]), lo = HexValue(raw[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return bad(fmt::format("the database id has a character that is not a hex digit at offset {}",
                             hi < 0 ? 2 * i : 2 * i + 1));
    }
    id.db.bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  const size_t last = raw.rfind('/');
  if (last == slash) return bad("no '/' between the stream and the seq");
  id.stream = raw.substr(slash + 1, last - slash - 1);
  if (auto v = internal::ValidateStreamName(id.stream); !v) return bad(v.error().message());
  const std::string_view seq = raw.substr(last + 1);
  if (seq.empty()) return bad("no seq after the stream");
  if (!std::all_of(seq.begin(), seq.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("the seq is not a decimal number");
  }
  auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), id.seq);
  if (ec != std::errc() || end != seq.data() + seq.size()) return bad("the seq is past 2^64 - 1");
  if (id.seq == 0) return bad("seq 0 (seqs start at 1)");
  return id;
}

std::vector<InboxStreamState> Inbox::State() const {
  return core_->State();
}
std::optional<InboxStreamState> Inbox::State(const DatabaseId& db, std::string_view stream) const {
  return core_->State(db, stream);
}

}  // namespace jaiminho
