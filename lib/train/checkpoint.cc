#include "qat/checkpoint.h"

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

uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
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

void Store(const std::string& name, const Tensor& t,
           checkpoint_proto::StoredTensor* out) {
  out->set_name(name);
  out->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) out->add_dims(d);
  out->set_data(static_cast<const char*>(t.raw_data()), t.num_bytes());
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

absl::Status SaveCheckpoint(const std::string& path, const Checkpoint& c) {
  checkpoint_proto::Checkpoint p;
  const bool observed = !c.quant_params.empty() || !c.observer_state.empty() ||
                        c.observed_steps != 0;
  p.set_format_version(!c.running_stats.empty() ? 3 : observed ? 2 : 1);
  p.set_producer(absl::StrCat("libqat ", QAT_VERSION_STRING));
  for (const auto& [name, t] : c.parameters) Store(name, t, p.add_parameters());
  p.set_optimizer(c.optimizer);
  p.set_optimizer_step(c.optimizer_step);
  for (const auto& [name, t] : c.optimizer_state) {
    Store(name, t, p.add_optimizer_state());
  }
  p.set_epoch(c.progress.epoch);
  p.set_step_in_epoch(c.progress.step_in_epoch);
  p.set_global_step(c.progress.global_step);
  p.set_seed(c.progress.seed);
  for (const auto& [k, v] : c.metadata) (*p.mutable_metadata())[k] = v;
  for (const auto& [name, t] : c.quant_params) Store(name, t, p.add_quant_params());
  for (const auto& [name, t] : c.running_stats) Store(name, t, p.add_running_stats());
  for (const auto& [name, t] : c.observer_state) Store(name, t, p.add_observer_state());
  p.set_observed_steps(c.observed_steps);
  // Deterministic: the metadata map's entries in key order, so that the same
  // training state always gives the same bytes.  The payload is serialized
  // straight after the header, and the message freed before the checksum:
  // no separate payload string, whose copy was the peak of `qat train`'s
  // memory (issue 16).
  std::string file(kMagic, sizeof(kMagic));
  AppendU64(&file, 0);  // the payload length, set below
  file.reserve(kHeaderSize + p.ByteSizeLong() + sizeof(uint64_t));
  bool serialized = false;
  {
    google::protobuf::io::StringOutputStream stream(&file);  // appends
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    serialized = p.SerializeToCodedStream(&coded) && !coded.HadError();
  }
  if (!serialized) {
    return absl::InternalError(absl::StrCat("cannot serialize checkpoint '", path, "'"));
  }
  p = checkpoint_proto::Checkpoint();
  const size_t length = file.size() - kHeaderSize;
  std::string length_bytes;
  AppendU64(&length_bytes, length);
  file.replace(sizeof(kMagic), sizeof(uint64_t), length_bytes);
  AppendU64(&file, Fnv1a64(absl::string_view(file.data() + kHeaderSize, length)));
  return WriteFileAtomically(path, file);
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
