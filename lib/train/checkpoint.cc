#include "qat/checkpoint.h"

#include "train/checkpoint_refs.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/checked_size.h"
#include "core/file_util.h"
#include "qat/status_macros.h"
#include "qat/version.h"
#include "checkpoint.pb.h"  // generated from train/checkpoint.proto
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace qat {
namespace {

// File layout: magic (8 bytes) | payload length (u64 LE) | payload |
// FNV-1a 64 of the payload (u64 LE).
constexpr char kMagic[8] = {'Q', 'A', 'T', 'C', 'K', 'P', 'T', '1'};
// Version 2 added the observed quantization parameters, version 3 the
// BatchNormalization running statistics; a checkpoint is written with the
// lowest version that holds what it has, so older readers keep reading
// what they understand.
constexpr int32_t kFormatVersion = 3;
constexpr size_t kHeaderSize = sizeof(kMagic) + sizeof(uint64_t);

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

uint64_t Fnv1a64(absl::string_view bytes, uint64_t h = kFnvOffset) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

void AppendU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t ReadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

void AppendVarint(std::string* out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out->push_back(static_cast<char>(v | 0x80));
  out->push_back(static_cast<char>(v));
}

// The key of a length-delimited field (wire type 2).
uint32_t BytesKey(int field) { return (static_cast<uint32_t>(field) << 3) | 2; }

// Deterministic: the metadata map's entries in key order, so that the same
// training state always gives the same bytes.
absl::StatusOr<std::string> Serialize(const google::protobuf::MessageLite& m) {
  std::string out;
  bool serialized = false;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    serialized = m.SerializeToCodedStream(&coded) && !coded.HadError();
  }
  if (!serialized) return absl::InternalError("a part of it does not serialize");
  return out;
}

// A StoredTensor's fields but its data (field 4, the last, so that the
// pieces concatenate to the message's own serialization).
absl::StatusOr<std::string> TensorHead(const std::string& name, const Tensor& t) {
  checkpoint_proto::StoredTensor head;
  head.set_name(name);
  head.set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) head.add_dims(d);
  return Serialize(head);
}

// The payload in pieces, in field order: the bytes of a Checkpoint
// message's deterministic serialization, with each tensor's data passed
// from the tensor itself.  Without a WritePiece it only counts them.
class PayloadWriter {
 public:
  explicit PayloadWriter(const WritePiece* write) : write_(write) {}

  absl::Status Message(const checkpoint_proto::Checkpoint& fields) {
    QAT_ASSIGN_OR_RETURN(const std::string bytes, Serialize(fields));
    return Small(bytes);
  }
  // Repeated StoredTensor field number `field`.
  absl::Status Tensors(int field, const CheckpointRefs::Tensors& tensors) {
    for (const auto& [name, t] : tensors) {
      QAT_ASSIGN_OR_RETURN(const std::string head, TensorHead(*name, *t));
      const size_t data = t->num_bytes();
      std::string data_key;  // proto3 leaves out an empty field
      if (data > 0) {
        AppendVarint(&data_key, BytesKey(4));
        AppendVarint(&data_key, data);
      }
      std::string key;
      AppendVarint(&key, BytesKey(field));
      AppendVarint(&key, head.size() + data_key.size() + data);
      QAT_RETURN_IF_ERROR(Small(key));
      QAT_RETURN_IF_ERROR(Small(head));
      QAT_RETURN_IF_ERROR(Small(data_key));
      QAT_RETURN_IF_ERROR(
          Large(absl::string_view(static_cast<const char*>(t->raw_data()), data)));
    }
    return absl::OkStatus();
  }
  absl::Status Flush() {
    const std::string pending = std::move(pending_);
    pending_.clear();
    return Pass(pending);
  }
  uint64_t size() const { return size_; }
  uint64_t checksum() const { return checksum_; }

 private:
  static constexpr size_t kBuffer = size_t{1} << 20;

  absl::Status Small(absl::string_view bytes) {
    pending_.append(bytes.data(), bytes.size());
    return pending_.size() >= kBuffer ? Flush() : absl::OkStatus();
  }
  absl::Status Large(absl::string_view bytes) {
    if (bytes.size() < kBuffer) return Small(bytes);
    QAT_RETURN_IF_ERROR(Flush());
    return Pass(bytes);
  }
  absl::Status Pass(absl::string_view bytes) {
    size_ += bytes.size();
    if (write_ == nullptr || bytes.empty()) return absl::OkStatus();
    checksum_ = Fnv1a64(bytes, checksum_);
    return (*write_)(bytes);
  }

  const WritePiece* write_;
  std::string pending_;
  uint64_t size_ = 0;
  uint64_t checksum_ = kFnvOffset;
};

// The fields in their numbers' order, scalars as partial messages (proto3
// leaves out the fields they do not set).
absl::Status WritePayload(const CheckpointRefs& c, PayloadWriter& out) {
  const bool observed = !c.quant_params.empty() || !c.observer_state.empty() ||
                        c.observed_steps != 0;
  checkpoint_proto::Checkpoint head;
  head.set_format_version(!c.running_stats.empty() ? 3 : observed ? 2 : 1);
  head.set_producer(absl::StrCat("libqat ", QAT_VERSION_STRING));
  QAT_RETURN_IF_ERROR(out.Message(head));
  QAT_RETURN_IF_ERROR(out.Tensors(3, c.parameters));
  checkpoint_proto::Checkpoint optimizer;
  optimizer.set_optimizer(c.optimizer);
  optimizer.set_optimizer_step(c.optimizer_step);
  QAT_RETURN_IF_ERROR(out.Message(optimizer));
  QAT_RETURN_IF_ERROR(out.Tensors(6, c.optimizer_state));
  checkpoint_proto::Checkpoint progress;
  progress.set_epoch(c.progress.epoch);
  progress.set_step_in_epoch(c.progress.step_in_epoch);
  progress.set_global_step(c.progress.global_step);
  progress.set_seed(c.progress.seed);
  if (c.metadata != nullptr) {
    for (const auto& [k, v] : *c.metadata) (*progress.mutable_metadata())[k] = v;
  }
  QAT_RETURN_IF_ERROR(out.Message(progress));
  QAT_RETURN_IF_ERROR(out.Tensors(12, c.quant_params));
  QAT_RETURN_IF_ERROR(out.Tensors(13, c.observer_state));
  checkpoint_proto::Checkpoint observed_steps;
  observed_steps.set_observed_steps(c.observed_steps);
  QAT_RETURN_IF_ERROR(out.Message(observed_steps));
  QAT_RETURN_IF_ERROR(out.Tensors(15, c.running_stats));
  return out.Flush();
}

absl::StatusOr<Tensor> Restore(const checkpoint_proto::StoredTensor& s,
                               const std::string& path) {
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("checkpoint '", path, "': tensor '",
                                            s.name(), "' ", why));
  };
  if (!IsSupportedDataType(s.data_type())) return bad("has an unknown type");
  std::vector<int64_t> dims(s.dims().begin(), s.dims().end());
  const DataType type = static_cast<DataType>(s.data_type());
  const absl::StatusOr<int64_t> bytes = CheckedByteCount(type, dims);
  if (!bytes.ok()) return bad(absl::StrCat("has bad dims: ", bytes.status().message()));
  if (*bytes != static_cast<int64_t>(s.data().size())) {
    return bad("has a size that disagrees with its shape");
  }
  absl::StatusOr<Tensor> t = Tensor::Create(type, std::move(dims));
  if (!t.ok()) return absl::Status(t.status().code(), bad(std::string(t.status().message())).message());
  if (!s.data().empty()) std::memcpy(t->raw_data(), s.data().data(), s.data().size());
  return t;
}

}  // namespace

CheckpointRefs RefsOf(const Checkpoint& c) {
  auto refs = [](const auto& named) {
    CheckpointRefs::Tensors out;
    for (const auto& [name, t] : named) out.emplace_back(&name, &t);
    return out;
  };
  CheckpointRefs r;
  r.parameters = refs(c.parameters);
  r.optimizer = c.optimizer;
  r.optimizer_step = c.optimizer_step;
  r.optimizer_state = refs(c.optimizer_state);
  r.progress = c.progress;
  r.metadata = &c.metadata;
  r.quant_params = refs(c.quant_params);
  r.observer_state = refs(c.observer_state);
  r.observed_steps = c.observed_steps;
  r.running_stats = refs(c.running_stats);
  return r;
}

Checkpoint CopyOf(const CheckpointRefs& r) {
  auto copy = [](const CheckpointRefs::Tensors& refs, auto* out) {
    for (const auto& [name, t] : refs) out->insert(out->end(), {*name, *t});
  };
  Checkpoint c;
  copy(r.parameters, &c.parameters);
  c.optimizer = r.optimizer;
  c.optimizer_step = r.optimizer_step;
  copy(r.optimizer_state, &c.optimizer_state);
  c.progress = r.progress;
  if (r.metadata != nullptr) c.metadata = *r.metadata;
  copy(r.quant_params, &c.quant_params);
  copy(r.observer_state, &c.observer_state);
  c.observed_steps = r.observed_steps;
  copy(r.running_stats, &c.running_stats);
  return c;
}

absl::Status SaveCheckpointRefs(const std::string& path, const CheckpointRefs& refs) {
  PayloadWriter counter(nullptr);  // the header announces the payload's length
  if (absl::Status counted = WritePayload(refs, counter); !counted.ok()) {
    return absl::Status(counted.code(), absl::StrCat("cannot serialize checkpoint '", path,
                                                     "': ", counted.message()));
  }
  return WriteFileAtomicallyInPieces(path, [&](WritePiece write) -> absl::Status {
    std::string header(kMagic, sizeof(kMagic));
    AppendU64(&header, counter.size());
    QAT_RETURN_IF_ERROR(write(header));
    PayloadWriter payload(&write);
    QAT_RETURN_IF_ERROR(WritePayload(refs, payload));
    std::string trailer;
    AppendU64(&trailer, payload.checksum());
    return write(trailer);
  });
}

absl::Status SaveCheckpoint(const std::string& path, const Checkpoint& c) {
  return SaveCheckpointRefs(path, RefsOf(c));
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path) {
  QAT_ASSIGN_OR_RETURN(std::string file, ReadFileToString(path));
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("checkpoint '", path, "' ", why));
  };
  if (file.size() < kHeaderSize || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return bad("is not a libqat checkpoint (bad magic)");
  }
  const uint64_t length = ReadU64(file.data() + sizeof(kMagic));
  if (length > file.size() || file.size() - kHeaderSize - sizeof(uint64_t) != length) {
    return bad(absl::StrCat("is truncated or padded: it has ", file.size(),
                            " bytes, the header announces ",
                            length + kHeaderSize + sizeof(uint64_t)));
  }
  const absl::string_view payload(file.data() + kHeaderSize, length);
  if (ReadU64(file.data() + kHeaderSize + length) != Fnv1a64(payload)) {
    return bad("is corrupted (checksum mismatch)");
  }
  checkpoint_proto::Checkpoint p;
  if (!p.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return bad("has a payload that does not parse");
  }
  if (p.format_version() > kFormatVersion || p.format_version() < 1) {
    return bad(absl::StrCat("has format version ", p.format_version(),
                            "; this libqat reads up to ", kFormatVersion));
  }
  Checkpoint c;
  for (const auto& s : p.parameters()) {
    QAT_ASSIGN_OR_RETURN(Tensor t, Restore(s, path));
    c.parameters.emplace_back(s.name(), std::move(t));
  }
  c.optimizer = p.optimizer();
  c.optimizer_step = p.optimizer_step();
  for (const auto& s : p.optimizer_state()) {
    QAT_ASSIGN_OR_RETURN(Tensor t, Restore(s, path));
    c.optimizer_state.emplace(s.name(), std::move(t));
  }
  c.progress = {p.epoch(), p.step_in_epoch(), p.global_step(), p.seed()};
  c.metadata.insert(p.metadata().begin(), p.metadata().end());
  for (const auto& s : p.quant_params()) {
    QAT_ASSIGN_OR_RETURN(Tensor t, Restore(s, path));
    c.quant_params.emplace_back(s.name(), std::move(t));
  }
  for (const auto& s : p.running_stats()) {
    QAT_ASSIGN_OR_RETURN(Tensor t, Restore(s, path));
    c.running_stats.emplace_back(s.name(), std::move(t));
  }
  for (const auto& s : p.observer_state()) {
    QAT_ASSIGN_OR_RETURN(Tensor t, Restore(s, path));
    c.observer_state.emplace(s.name(), std::move(t));
  }
  if (p.observed_steps() < 0) return bad("has a negative count of observed steps");
  c.observed_steps = p.observed_steps();
  return c;
}

}  // namespace qat
