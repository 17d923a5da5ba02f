#include "qat/npy.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/catch_exceptions.h"
#include "core/checked_size.h"
#include "core/file_util.h"
#include "data/npy_header.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

struct Descr {
  const char* text;
  DataType type;
};
constexpr Descr kDescrs[] = {
    {"<f4", DataType::kFloat32}, {"<f8", DataType::kFloat64},
    {"<i8", DataType::kInt64},   {"<i4", DataType::kInt32},
    {"|i1", DataType::kInt8},    {"|u1", DataType::kUInt8},
    {"|b1", DataType::kBool},
};

// The value that follows 'key': in the header dictionary, up to the next
// top-level comma (a shape tuple keeps its commas).
absl::StatusOr<absl::string_view> DictValue(absl::string_view header,
                                            absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t pos = header.find(quoted);
  if (pos == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("header has no ", quoted));
  }
  pos = header.find(':', pos + quoted.size());
  if (pos == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("header: ", quoted, " has no value"));
  }
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(header.substr(pos + 1));
  if (rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("header: ", quoted, " has no value"));
  }
  size_t end = rest.front() == '(' ? rest.find(')') + 1 : rest.find_first_of(",}");
  if (end == absl::string_view::npos || end == 0) end = rest.size();
  return absl::StripAsciiWhitespace(rest.substr(0, end));
}

absl::StatusOr<NpyHeader> ParseHeaderImpl(absl::string_view bytes) {
  if (bytes.size() < kMagicSize + 4 ||
      std::memcmp(bytes.data(), kMagic, kMagicSize) != 0) {
    return absl::InvalidArgumentError("not an .npy file (bad magic)");
  }
  const uint8_t major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) |
                 (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return absl::InvalidArgumentError("truncated header");
    for (int i = 3; i >= 0; --i) {
      header_len = (header_len << 8) | static_cast<uint8_t>(bytes[8 + i]);
    }
    offset = 12;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported .npy format version ", major));
  }
  if (bytes.size() < offset + header_len) {
    return absl::InvalidArgumentError("truncated header");
  }
  const absl::string_view header = bytes.substr(offset, header_len);

  absl::StatusOr<absl::string_view> descr = DictValue(header, "descr");
  if (!descr.ok()) return descr.status();
  DataType type = DataType::kUndefined;
  for (const Descr& d : kDescrs) {
    if (*descr == absl::StrCat("'", d.text, "'")) type = d.type;
  }
  if (type == DataType::kUndefined) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported dtype ", *descr,
        " (float32, float64, int64, int32, int8, uint8 and bool are)"));
  }
  absl::StatusOr<absl::string_view> fortran = DictValue(header, "fortran_order");
  if (!fortran.ok()) return fortran.status();
  if (*fortran != "False") {
    return absl::InvalidArgumentError("Fortran-order arrays are not supported");
  }
  absl::StatusOr<absl::string_view> shape_text = DictValue(header, "shape");
  if (!shape_text.ok()) return shape_text.status();
  absl::string_view inner = *shape_text;
  if (!absl::ConsumePrefix(&inner, "(") || !absl::ConsumeSuffix(&inner, ")")) {
    return absl::InvalidArgumentError(absl::StrCat("bad shape ", *shape_text));
  }
  std::vector<int64_t> shape;
  for (absl::string_view part : absl::StrSplit(inner, ',', absl::SkipWhitespace())) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad shape ", *shape_text));
    }
    shape.push_back(d);
  }
  const absl::string_view data = bytes.substr(offset + header_len);
  // Check the size before allocating, so a lying header cannot exhaust
  // memory, and with checked arithmetic, so that it cannot wrap to 0.
  QAT_ASSIGN_OR_RETURN(const int64_t needed, CheckedByteCount(type, shape));
  if (static_cast<int64_t>(data.size()) != needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data holds ", data.size(), " bytes but ", DataTypeName(type), " shape ",
        ShapeToString(shape), " needs ", needed));
  }
  NpyHeader out;
  out.dtype = type;
  out.shape = std::move(shape);
  out.data_offset = offset + header_len;
  out.data_bytes = static_cast<size_t>(needed);
  return out;
}

absl::StatusOr<Tensor> ParseNpyImpl(absl::string_view bytes) {
  QAT_ASSIGN_OR_RETURN(NpyHeader h, ParseHeaderImpl(bytes));
  QAT_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Create(h.dtype, h.shape));
  if (h.data_bytes > 0) std::memcpy(tensor.raw_data(), bytes.data() + h.data_offset, h.data_bytes);
  return tensor;
}

}  // namespace

absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes) { return ParseHeaderImpl(bytes); }

absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes, const std::string& source) {
  absl::StatusOr<Tensor> tensor = ParseNpyImpl(bytes);
  if (!tensor.ok()) {
    return absl::Status(tensor.status().code(),
                        absl::StrCat("'", source, "': ", tensor.status().message()));
  }
  return tensor;
}

std::string SerializeNpy(const Tensor& tensor) {
  const char* descr = "<f4";
  for (const Descr& d : kDescrs) {
    if (d.type == tensor.dtype()) descr = d.text;
  }
  std::string shape = absl::StrJoin(tensor.shape(), ", ");
  if (tensor.rank() == 1) shape += ",";
  std::string header = absl::StrCat("{'descr': '", descr,
                                    "', 'fortran_order': False, 'shape': (",
                                    shape, "), }");
  // Pad with spaces and end with a newline so the data starts 64-aligned.
  const size_t total = kMagicSize + 4 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic, kMagicSize);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(tensor.raw_data()), tensor.num_bytes());
  return out;
}

absl::StatusOr<Tensor> ReadNpy(const std::string& path) {
  // The file's bytes and its tensor are both in memory for a moment.
  return CatchExceptions(absl::StrCat("reading '", path, "'"), [&]() -> absl::StatusOr<Tensor> {
    QAT_ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
    return ParseNpy(bytes, path);
  });
}

absl::Status WriteNpy(const std::string& path, const Tensor& tensor) {
  return WriteFileAtomically(path, SerializeNpy(tensor));
}

}  // namespace qat
