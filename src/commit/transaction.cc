#include <fmt/format.h>

#include "commit/committer.h"
#include "core/outbox_impl.h"
#include "core/transaction_internal.h"
#include "delivery/inline.h"
#include "jaiminho/outbox.h"
#include "sign/signer.h"
#include "storage/envelope.h"
#include "util/macros.h"

namespace jaiminho {
namespace {
constexpr size_t kMaxTypeBytes = kMaxEventTypeBytes;
constexpr size_t kMaxKeyBytes = kMaxEventKeyBytes;
constexpr size_t kMaxEncodingBytes = kMaxEventEncodingBytes;
constexpr size_t kMaxHeaders = kMaxEventHeaders;
constexpr size_t kMaxArenaBytes = size_t{1} << 31;

// The buffers of the last Transaction this thread destroyed, for the next one
// it begins: a program that begins, fills, commits and drops a transaction per
// event allocates nothing for it once warm (before: five allocations and five
// frees per commit of one Put and one Enqueue, for the arena's growth and the
// two vectors). At most kMaxSpareBytes of arena and kMaxSpareRecords records
// are kept per thread, until the thread ends.
constexpr size_t kMaxSpareBytes = 64 << 10;
constexpr size_t kMaxSpareRecords = 256;
thread_local bool spare_gone = false;  // trivially destructible: readable until the thread ends
struct SpareBuffers {
  SpareBuffers() = default;
  SpareBuffers(const SpareBuffers&) = delete;
  SpareBuffers& operator=(const SpareBuffers&) = delete;
  ~SpareBuffers() { spare_gone = true; }  // a Transaction destroyed after this (thread exit) keeps its buffers
  std::string arena;
  std::vector<TransactionInternal::Op> ops;
  std::vector<TransactionInternal::PendingEvent> events;
};
SpareBuffers& Spare() {
  thread_local SpareBuffers spare;
  return spare;
}
}  // namespace

Transaction::Transaction(OutboxImpl* outbox) : outbox_(outbox) {
  if (spare_gone) return;
  SpareBuffers& s = Spare();
  arena_.swap(s.arena);
  ops_.swap(s.ops);
  events_.swap(s.events);
}
Transaction::Transaction(Transaction&&) noexcept = default;
Transaction& Transaction::operator=(Transaction&&) noexcept = default;
Transaction::~Transaction() {
  if (spare_gone) return;
  SpareBuffers& s = Spare();
  // Each buffer replaces the spare one when it is larger (and not too large).
  if (arena_.capacity() > s.arena.capacity() && arena_.capacity() <= kMaxSpareBytes) {
    arena_.clear();
    arena_.swap(s.arena);
  }
  if (ops_.capacity() > s.ops.capacity() && ops_.capacity() <= kMaxSpareRecords) {
    ops_.clear();
    ops_.swap(s.ops);
  }
  if (events_.capacity() > s.events.capacity() && events_.capacity() <= kMaxSpareRecords) {
    events_.clear();
    events_.swap(s.events);
  }
}

size_t Transaction::event_count() const {
  return events_.size();
}
size_t Transaction::op_count() const {
  return ops_.size();
}
bool Transaction::empty() const {
  return ops_.empty() && events_.empty() && hooks_.empty();
}

Status Transaction::Fail(Error e) {
  if (!error_) error_ = e;
  return tl::unexpected(std::move(e));
}

uint32_t Transaction::Append(std::string_view bytes) {
  auto off = static_cast<uint32_t>(arena_.size());
  arena_.append(bytes);
  return off;
}

Status Transaction::Put(const BusinessFamily& family, std::string_view key, std::string_view value) {
  auto info = outbox_->CheckOwned(family, "Put");
  if (!info) return Fail(info.error());
  if (arena_.size() + key.size() + value.size() > kMaxArenaBytes) {
    return Fail(Error(ErrorCode::kInvalidArgument, "Put: transaction larger than 2 GiB"));
  }
  Op op{Op::Type::kPut, (*info)->handle, 0, static_cast<uint32_t>(key.size()), 0, static_cast<uint32_t>(value.size())};
  op.key_offset = Append(key);
  op.value_offset = Append(value);
  ops_.push_back(op);
  return {};
}

Status Transaction::Delete(const BusinessFamily& family, std::string_view key) {
  auto info = outbox_->CheckOwned(family, "Delete");
  if (!info) return Fail(info.error());
  Op op{Op::Type::kDelete, (*info)->handle, 0, static_cast<uint32_t>(key.size()), 0, 0};
  op.key_offset = Append(key);
  ops_.push_back(op);
  return {};
}

Status Transaction::Merge(const BusinessFamily& family, std::string_view key, std::string_view value) {
  auto info = outbox_->CheckOwned(family, "Merge");
  if (!info) return Fail(info.error());
  if (!(*info)->has_merge_operator) {
    return Fail(Error(ErrorCode::kInvalidArgument, fmt::format("Merge: business family '{}' has no merge operator "
                                                               "(set BusinessFamilyOptions.merge_operator)",
                                                               family.name)));
  }
  if (arena_.size() + key.size() + value.size() > kMaxArenaBytes) {
    return Fail(Error(ErrorCode::kInvalidArgument, "Merge: transaction larger than 2 GiB"));
  }
  Op op{
      Op::Type::kMerge, (*info)->handle, 0, static_cast<uint32_t>(key.size()), 0, static_cast<uint32_t>(value.size())};
  op.key_offset = Append(key);
  op.value_offset = Append(value);
  ops_.push_back(op);
  return {};
}

Status Transaction::Enqueue(Stream& stream, const Message& m) {
  const StreamState& s = StreamAccess::Of(stream);
  if (auto owned = outbox_->CheckOwned(s, "Enqueue"); !owned) return Fail(owned.error());
  auto bad = [&](std::string msg) {
    return Fail(Error(ErrorCode::kInvalidArgument, fmt::format("Enqueue into stream '{}': {}", s.name, msg)));
  };
  if (m.type.empty() || m.type.size() > kMaxTypeBytes) {
    return bad(fmt::format("type must be 1-{} bytes, got {}", kMaxTypeBytes, m.type.size()));
  }
  if (m.payload.size() > outbox_->options.max_payload_bytes) {
    return bad(fmt::format("payload of {} bytes exceeds max_payload_bytes ({})", m.payload.size(),
                           outbox_->options.max_payload_bytes));
  }
  if (m.headers.size() > kMaxHeaders) return bad(fmt::format("{} headers exceed {}", m.headers.size(), kMaxHeaders));
  // Headers travel with the payload to the broker: they count toward the same limit.
  size_t header_bytes = 0;
  for (const Header& h : m.headers)
    header_bytes += h.name.size() + h.value.size();
  if (m.payload.size() + header_bytes > outbox_->options.max_payload_bytes) {
    return bad(fmt::format("payload of {} bytes plus headers of {} bytes exceed max_payload_bytes ({})",
                           m.payload.size(), header_bytes, outbox_->options.max_payload_bytes));
  }
  if (m.key.size() > kMaxKeyBytes) return bad(fmt::format("key of {} bytes exceeds {}", m.key.size(), kMaxKeyBytes));
  if (m.encoding.size() > kMaxEncodingBytes) {
    return bad(fmt::format("encoding of {} bytes exceeds {}", m.encoding.size(), kMaxEncodingBytes));
  }
  Strategy strategy = m.strategy.value_or(s.strategy());
  if (strategy != Strategy::kPublishOnCommit && strategy != Strategy::kKeepOrder) {
    return bad(fmt::format("unknown strategy {}", static_cast<int>(strategy)));
  }
  if (arena_.size() + m.payload.size() + header_bytes + m.key.size() + 4096 > kMaxArenaBytes) {
    return bad("transaction larger than 2 GiB");
  }
  internal::EnvelopeFields f;
  f.stream = s.name;
  f.type = m.type;
  f.key = m.key;
  f.payload = m.payload;
  f.encoding = m.encoding;
  f.headers = m.headers;
  f.created_at = ToMicros(outbox_->Now());
  f.strategy = strategy;
  PendingEvent e{&stream, strategy, static_cast<uint32_t>(arena_.size()),
                 0,       0,        0,
                 0,       {},       internal::EventBytes(m.type, m.key, m.payload, m.headers)};
  static constexpr char kUnsigned[internal::kSignatureBytes] = {};
  const internal::Signer& signer = *outbox_->signer;
  if (signer.signs()) {
    f.key_id = signer.signing_key_id();
    f.signature = std::string_view(kUnsigned, sizeof kUnsigned);  // filled in at commit
    e.digest = internal::Signer::FieldsDigest(f);
  }
  internal::ScalarOffsets offsets = internal::EncodeEnvelope(f, &arena_);
  e.size = static_cast<uint32_t>(arena_.size() - e.offset);
  e.seq_field = offsets.seq;
  e.sig_field = offsets.signature;
  events_.push_back(e);
  return {};
}

Result<Receipt> Transaction::Commit(CommitOptions options) {
  if (error_) return tl::unexpected(*error_);
  // Keeps the Outbox open until the commit (and its inline publish) is done.
  JM_ASSIGN_OR_RETURN(auto guard, outbox_->Enter("Commit"));
  Receipt receipt;
  if (empty()) return receipt;
  const bool sync = options.sync.value_or(outbox_->options.durability == Durability::kSyncEachCommit);
  JM_ASSIGN_OR_RETURN(const Committer::Written written, outbox_->committer->Commit(*this, sync));
  receipt.durable = written.durable;
  receipt.position = written.position;
  receipt.events.reserve(events_.size());
  for (const auto& e : events_) {
    receipt.events.push_back(EventId{outbox_->id, StreamAccess::Of(*e.stream).name, e.seq});
  }
  if (written.durable) outbox_->inline_publisher->AfterCommit(*this);
  Clear();
  return receipt;
}

void Transaction::Clear() {
  arena_.clear();
  ops_.clear();
  events_.clear();
  hooks_.clear();
  error_.reset();
}

}  // namespace jaiminho
