#include "qat/calibration_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "calibration_table.pb.h"
#include "core/file_util.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

namespace proto = ::qat::calibration_proto;
using ::google::protobuf::ListValue;
using ::google::protobuf::Struct;
using ::google::protobuf::Value;

constexpr const char* kRoleNames[] = {"activation", "weight"};

absl::Status EntryError(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", what));
}

// ---- Numbers in JSON --------------------------------------------------------

// The double with the fewest decimal digits that converts back to f, so the
// file shows 0.1 rather than 0.10000000149011612 and still loads back to f.
double ShortestDouble(float f) {
  char text[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, static_cast<double>(f));
    const double d = std::strtod(text, nullptr);
    if (static_cast<float>(d) == f) return d;
  }
  return static_cast<double>(f);
}

Value Number(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}

template <typename T>
Value NumbersValue(const std::vector<T>& values, bool per_channel) {
  auto one = [](T x) {
    return Number(std::is_same<T, float>::value
                      ? ShortestDouble(static_cast<float>(x))
                      : static_cast<double>(x));
  };
  if (!per_channel) return one(values.front());
  Value v;
  ListValue* list = v.mutable_list_value();
  for (T x : values) *list->add_values() = one(x);
  return v;
}

// A number (per tensor) or an array of numbers (per channel).
absl::StatusOr<std::vector<double>> ReadNumbers(absl::string_view tensor,
                                                absl::string_view field,
                                                const Value& v, bool per_channel) {
  if (!per_channel) {
    if (v.kind_case() != Value::kNumberValue) {
      return EntryError(tensor, absl::StrCat("'", field, "' must be a number",
                                             v.kind_case() == Value::kListValue
                                                 ? " (arrays need an \"axis\")"
                                                 : ""));
    }
    return std::vector<double>{v.number_value()};
  }
  if (v.kind_case() != Value::kListValue) {
    return EntryError(tensor, absl::StrCat("'", field,
                                           "' must be an array of numbers, one "
                                           "per channel, since the entry has an axis"));
  }
  std::vector<double> out;
  for (int i = 0; i < v.list_value().values_size(); ++i) {
    const Value& item = v.list_value().values(i);
    if (item.kind_case() != Value::kNumberValue) {
      return EntryError(tensor, absl::StrCat("'", field, "'[", i, "] is not a number"));
    }
    out.push_back(item.number_value());
  }
  return out;
}

std::vector<float> ToFloats(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

absl::StatusOr<std::vector<int32_t>> ToZeroPoints(absl::string_view tensor,
                                                  const std::vector<double>& values) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < values.size(); ++i) {
    const double d = values[i];
    if (!(d == std::floor(d) && std::fabs(d) <= (1 << 30))) {
      return EntryError(tensor, absl::StrCat("zero_point[", i,
                                             "] must be an integer, got ", d));
    }
    out.push_back(static_cast<int32_t>(d));
  }
  return out;
}

// ---- Entry <-> proto --------------------------------------------------------

absl::StatusOr<CalibrationEntry> FromProto(absl::string_view name,
                                           const proto::Entry& p) {
  CalibrationEntry e;
  if (p.role() == kRoleNames[0]) {
    e.role = TensorRole::kActivation;
  } else if (p.role() == kRoleNames[1]) {
    e.role = TensorRole::kWeight;
  } else {
    return EntryError(name, absl::StrCat("role must be \"activation\" or "
                                         "\"weight\", got \"", p.role(), "\""));
  }
  auto type = ParseQuantType(p.type());
  if (!type.ok()) return EntryError(name, type.status().message());
  e.type = *type;
  auto method = ParseCalibrationMethod(p.method());
  if (!method.ok()) return EntryError(name, method.status().message());
  e.method = *method;
  if (p.bits() != QuantTypeBits(e.type) &&
      (p.bits() < kMinQuantBits || p.bits() > QuantTypeBits(e.type))) {
    return EntryError(name, absl::StrCat("bits is ", p.bits(), " but type ",
                                         p.type(), " holds ", kMinQuantBits, " to ",
                                         QuantTypeBits(e.type)));
  }
  if (p.bits() != QuantTypeBits(e.type)) e.num_bits = p.bits();
  if (p.has_range()) {
    auto mode = ParseQuantRangeMode(p.range());
    if (!mode.ok()) return EntryError(name, mode.status().message());
    e.range_mode = *mode;
  }
  e.symmetric = p.symmetric();
  e.reduce_range = p.reduce_range();
  if (p.has_axis()) e.axis = p.axis();
  const bool per_channel = e.axis.has_value();
  QAT_ASSIGN_OR_RETURN(auto rmin, ReadNumbers(name, "rmin", p.rmin(), per_channel));
  QAT_ASSIGN_OR_RETURN(auto rmax, ReadNumbers(name, "rmax", p.rmax(), per_channel));
  QAT_ASSIGN_OR_RETURN(auto scale, ReadNumbers(name, "scale", p.scale(), per_channel));
  QAT_ASSIGN_OR_RETURN(auto zp,
                       ReadNumbers(name, "zero_point", p.zero_point(), per_channel));
  e.rmin = ToFloats(rmin);
  e.rmax = ToFloats(rmax);
  e.scale = ToFloats(scale);
  QAT_ASSIGN_OR_RETURN(e.zero_point, ToZeroPoints(name, zp));
  QAT_RETURN_IF_ERROR(ValidateCalibrationEntry(name, e));
  return e;
}

proto::Entry ToProto(const CalibrationEntry& e) {
  proto::Entry p;
  p.set_role(TensorRoleName(e.role));
  p.set_type(QuantTypeName(e.type));
  p.set_bits(e.bits());
  p.set_method(CalibrationMethodName(e.method));
  p.set_symmetric(e.symmetric);
  p.set_reduce_range(e.reduce_range);
  if (e.range_mode != QuantRangeMode::kAuto) p.set_range(QuantRangeModeName(e.range_mode));
  const bool per_channel = e.axis.has_value();
  if (per_channel) p.set_axis(static_cast<int32_t>(*e.axis));
  *p.mutable_rmin() = NumbersValue(e.rmin, per_channel);
  *p.mutable_rmax() = NumbersValue(e.rmax, per_channel);
  *p.mutable_scale() = NumbersValue(e.scale, per_channel);
  *p.mutable_zero_point() = NumbersValue(e.zero_point, per_channel);
  return p;
}

// Pretty JSON with map keys in sorted order.  MessageToJsonString would
// print maps in hash order; going through a deterministic (key-sorted)
// binary serialization fixes the order, so the same table always gives the
// same file.
absl::StatusOr<std::string> PrintJson(const google::protobuf::Message& message) {
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!message.SerializeToCodedStream(&coded)) {
      return absl::InternalError("cannot serialize the table");
    }
  }
  constexpr char kUrlPrefix[] = "type.googleapis.com";
  const std::unique_ptr<google::protobuf::util::TypeResolver> resolver(
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          kUrlPrefix, google::protobuf::DescriptorPool::generated_pool()));
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::BinaryToJsonString(
      resolver.get(),
      absl::StrCat(kUrlPrefix, "/", message.GetDescriptor()->full_name()),
      binary, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print JSON: ", status.ToString()));
  }
  return json;
}

// ---- Node overrides ---------------------------------------------------------

absl::StatusOr<NodeQuantOverride> NodeOverrideFromJson(absl::string_view node, const Value& v) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("node_overrides '", node, "': ", what));
  };
  if (v.kind_case() != Value::kStructValue) return bad("must be an object");
  NodeQuantOverride o;
  for (const auto& [field, x] : v.struct_value().fields()) {
    if (field == "keep_float") {
      if (x.kind_case() != Value::kBoolValue) return bad("keep_float must be true or false");
      o.keep_float = x.bool_value();
    } else if (field == "weight_bits" || field == "activation_bits") {
      if (x.kind_case() != Value::kNumberValue || x.number_value() != std::floor(x.number_value()) ||
          std::fabs(x.number_value()) > 64) {
        return bad(absl::StrCat(field, " must be an integer"));
      }
      (field == "weight_bits" ? o.weight_bits : o.activation_bits) =
          static_cast<int>(x.number_value());
    } else {
      return bad(absl::StrCat("unknown field '", field,
                              "'; expected keep_float, weight_bits, activation_bits"));
    }
  }
  QAT_RETURN_IF_ERROR(ValidateNodeQuantOverride(node, o));
  return o;
}

Value NodeOverrideToJson(const NodeQuantOverride& o) {
  Value v;
  auto& f = *v.mutable_struct_value()->mutable_fields();
  if (o.keep_float) f["keep_float"].set_bool_value(true);
  if (o.weight_bits != 0) f["weight_bits"] = Number(o.weight_bits);
  if (o.activation_bits != 0) f["activation_bits"] = Number(o.activation_bits);
  return v;
}

// ---- Parsing ----------------------------------------------------------------

// InvalidArgument when arrays and objects nest deeper than `max_depth`.
// protobuf's JSON parser takes time quadratic in the depth of nested arrays
// (32k levels: 30 s), so this linear scan runs first.
absl::Status CheckJsonDepth(absl::string_view json, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(absl::StrCat(
            "JSON nested deeper than ", max_depth, " levels (at byte ", i, ")"));
      }
    } else if (c == ']' || c == '}') {
      --depth;  // a stray closer is the parser's to report
    }
  }
  return absl::OkStatus();
}

// ---- AIMET ------------------------------------------------------------------

Value AimetEncoding(const CalibrationEntry& e, size_t c) {
  const int32_t offset = e.quant_range().quant_min - e.zero_point[c];
  const double levels = std::ldexp(1.0, e.bits()) - 1.0;
  const double scale = e.scale[c];
  Value v;
  auto& f = *v.mutable_struct_value()->mutable_fields();
  f["bitwidth"] = Number(e.bits());
  f["dtype"].set_string_value("int");
  f["is_symmetric"].set_string_value(e.symmetric ? "True" : "False");
  f["min"] = Number(ShortestDouble(static_cast<float>(offset * scale)));
  f["max"] = Number(ShortestDouble(static_cast<float>((offset + levels) * scale)));
  f["offset"] = Number(offset);
  f["scale"] = Number(ShortestDouble(e.scale[c]));
  return v;
}

}  // namespace

const char* TensorRoleName(TensorRole role) {
  return kRoleNames[role == TensorRole::kActivation ? 0 : 1];
}

absl::Status ValidateCalibrationEntry(absl::string_view name,
                                      const CalibrationEntry& e) {
  const size_t n = e.scale.size();
  if (n == 0) return EntryError(name, "scale holds no value");
  if (!e.axis.has_value() && n != 1) {
    return EntryError(name, absl::StrCat("a per-tensor entry holds one value, "
                                         "scale holds ", n));
  }
  if (e.axis.has_value() && (*e.axis < std::numeric_limits<int32_t>::min() ||
                             *e.axis > std::numeric_limits<int32_t>::max())) {
    return EntryError(name, absl::StrCat("axis ", *e.axis, " is out of range"));
  }
  const std::pair<const char*, size_t> sizes[] = {
      {"rmin", e.rmin.size()}, {"rmax", e.rmax.size()},
      {"zero_point", e.zero_point.size()}};
  for (const auto& [field, size] : sizes) {
    if (size != n) {
      return EntryError(name, absl::StrCat(field, " has ", size,
                                           " values but scale has ", n));
    }
  }
  if (e.num_bits != 0 && (e.num_bits < kMinQuantBits || e.num_bits > QuantTypeBits(e.type))) {
    return EntryError(name, absl::StrCat("bits ", e.num_bits, " is outside ", kMinQuantBits,
                                         "..", QuantTypeBits(e.type), " for ",
                                         QuantTypeName(e.type)));
  }
  const QuantRange range = e.quant_range();
  for (size_t c = 0; c < n; ++c) {
    if (!std::isfinite(e.rmin[c]) || !std::isfinite(e.rmax[c]) ||
        e.rmin[c] > e.rmax[c]) {
      return EntryError(name, absl::StrCat("[rmin, rmax][", c, "] must be finite "
                                           "with rmin <= rmax, got [", e.rmin[c],
                                           ", ", e.rmax[c], "]"));
    }
    if (!(std::isfinite(e.scale[c]) && e.scale[c] > 0.0f)) {
      return EntryError(name, absl::StrCat("scale[", c, "] must be positive and "
                                           "finite, got ", e.scale[c]));
    }
    if (e.zero_point[c] < range.quant_min || e.zero_point[c] > range.quant_max) {
      return EntryError(name, absl::StrCat(
          "zero_point[", c, "] = ", e.zero_point[c], " is outside [",
          range.quant_min, ", ", range.quant_max, "] for ", QuantTypeName(e.type),
          e.symmetric ? " symmetric" : "", e.reduce_range ? " reduce_range" : ""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CalibrationEntry> MakeCalibrationEntry(
    TensorRole role, QuantType type, CalibrationMethod method, bool symmetric,
    bool reduce_range, std::optional<int64_t> axis,
    const std::vector<ObservedRange>& ranges) {
  return MakeCalibrationEntry(role, type, QuantTypeBits(type), QuantRangeMode::kAuto, method,
                              symmetric, reduce_range, axis, ranges);
}

absl::StatusOr<CalibrationEntry> MakeCalibrationEntry(
    TensorRole role, QuantType type, int bits, QuantRangeMode range_mode,
    CalibrationMethod method, bool symmetric, bool reduce_range,
    std::optional<int64_t> axis, const std::vector<ObservedRange>& ranges) {
  CalibrationEntry e;
  if (bits < kMinQuantBits || bits > QuantTypeBits(type)) {
    return absl::InvalidArgumentError(absl::StrCat("bits ", bits, " is outside ", kMinQuantBits,
                                                   "..", QuantTypeBits(type), " for ",
                                                   QuantTypeName(type)));
  }
  e.num_bits = bits == QuantTypeBits(type) ? 0 : bits;
  e.range_mode = range_mode;
  e.role = role;
  e.type = type;
  e.method = method;
  e.symmetric = symmetric;
  e.reduce_range = reduce_range;
  e.axis = axis;
  const QuantRange range = e.quant_range();
  for (const ObservedRange& r : ranges) {
    QAT_ASSIGN_OR_RETURN(const QuantParams p,
                         ComputeQuantParams(r.rmin, r.rmax, range, symmetric));
    e.rmin.push_back(r.rmin);
    e.rmax.push_back(r.rmax);
    e.scale.push_back(p.scale);
    e.zero_point.push_back(p.zero_point);
  }
  return e;
}

absl::StatusOr<CalibrationTable> CalibrationTable::FromJson(
    absl::string_view json, absl::string_view source) {
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("calibration table '", source,
                                               "': ", s.message()));
  };
  if (absl::Status s = CheckJsonDepth(json, kMaxJsonDepth); !s.ok()) return fail(s);
  proto::Table table;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &table, options);
  if (!parsed.ok()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("not a valid table: ", parsed.ToString())));
  }
  if (table.version() != kFormatVersion) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "\"version\" must be ", kFormatVersion, ", got ", table.version(),
        table.version() == 0 ? " (missing?)" : "")));
  }
  CalibrationTable out;
  for (const auto& [name, entry] : table.tensors()) {
    auto e = FromProto(name, entry);
    if (!e.ok()) return fail(e.status());
    out.entries_.emplace(name, *std::move(e));
  }
  for (const auto& [node, value] : table.node_overrides().fields()) {
    auto o = NodeOverrideFromJson(node, value);
    if (!o.ok()) return fail(o.status());
    out.node_overrides_.emplace(node, *o);
  }
  return out;
}

absl::StatusOr<CalibrationTable> CalibrationTable::Load(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("cannot read calibration table: ",
                                     text.status().message()));
  }
  return FromJson(*text, path);
}

absl::StatusOr<std::string> CalibrationTable::ToJson() const {
  proto::Table table;
  table.set_version(kFormatVersion);
  for (const auto& [name, entry] : entries_) {
    (*table.mutable_tensors())[name] = ToProto(entry);
  }
  for (const auto& [node, o] : node_overrides_) {
    (*table.mutable_node_overrides()->mutable_fields())[node] = NodeOverrideToJson(o);
  }
  return PrintJson(table);
}

absl::Status CalibrationTable::Save(const std::string& path) const {
  QAT_ASSIGN_OR_RETURN(const std::string json, ToJson());
  return WriteFileAtomically(path, json);
}

absl::Status ValidateNodeQuantOverride(absl::string_view node, const NodeQuantOverride& o) {
  for (const auto& [field, bits] : {std::pair<const char*, int>{"weight_bits", o.weight_bits},
                                    {"activation_bits", o.activation_bits}}) {
    if (bits != 0 && (bits < kMinQuantBits || bits > kMaxQuantBits)) {
      return absl::InvalidArgumentError(absl::StrCat("node override '", node, "': ", field,
                                                     " must be 0 or from ", kMinQuantBits,
                                                     " to ", kMaxQuantBits, ", got ", bits));
    }
  }
  return absl::OkStatus();
}

absl::Status CalibrationTable::SetNodeOverride(const std::string& node,
                                               const NodeQuantOverride& o) {
  QAT_RETURN_IF_ERROR(ValidateNodeQuantOverride(node, o));
  node_overrides_[node] = o;
  return absl::OkStatus();
}

absl::Status CalibrationTable::Set(const std::string& name, CalibrationEntry entry) {
  QAT_RETURN_IF_ERROR(ValidateCalibrationEntry(name, entry));
  entries_[name] = std::move(entry);
  return absl::OkStatus();
}

const CalibrationEntry* CalibrationTable::Find(absl::string_view name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

absl::Status CalibrationTable::Merge(const CalibrationTable& other, MergeRule rule) {
  auto merged = entries_;
  for (const auto& [name, theirs] : other.entries_) {
    auto it = merged.find(name);
    if (it == merged.end() || rule == MergeRule::kReplace) {
      merged[name] = theirs;
      continue;
    }
    const CalibrationEntry& ours = it->second;
    const bool same = ours.role == theirs.role && ours.type == theirs.type &&
                      ours.method == theirs.method &&
                      ours.symmetric == theirs.symmetric &&
                      ours.reduce_range == theirs.reduce_range &&
                      ours.axis == theirs.axis &&
                      ours.num_channels() == theirs.num_channels();
    if (!same) {
      return EntryError(name,
                        "cannot take the union of two entries that differ in "
                        "role, type, method, symmetric, reduce_range, axis or "
                        "channel count");
    }
    std::vector<ObservedRange> ranges(ours.scale.size());
    for (size_t c = 0; c < ranges.size(); ++c) {
      ranges[c].rmin = std::min(ours.rmin[c], theirs.rmin[c]);
      ranges[c].rmax = std::max(ours.rmax[c], theirs.rmax[c]);
    }
    auto entry = MakeCalibrationEntry(ours.role, ours.type, ours.bits(), ours.range_mode,
                                      ours.method, ours.symmetric, ours.reduce_range,
                                      ours.axis, ranges);
    if (!entry.ok()) return EntryError(name, entry.status().message());
    it->second = *std::move(entry);
  }
  entries_.swap(merged);
  for (const auto& [node, o] : other.node_overrides_) node_overrides_[node] = o;
  return absl::OkStatus();
}

absl::StatusOr<std::string> CalibrationTable::ToAimetEncodings() const {
  Struct root;
  auto& fields = *root.mutable_fields();
  fields["version"].set_string_value("0.6.1");
  auto& activations = *fields["activation_encodings"].mutable_struct_value();
  auto& params = *fields["param_encodings"].mutable_struct_value();
  for (const auto& [name, e] : entries_) {
    Struct& group = e.role == TensorRole::kWeight ? params : activations;
    ListValue* list = (*group.mutable_fields())[name].mutable_list_value();
    for (size_t c = 0; c < e.scale.size(); ++c) {
      *list->add_values() = AimetEncoding(e, c);
    }
  }
  return PrintJson(root);
}

}  // namespace qat
