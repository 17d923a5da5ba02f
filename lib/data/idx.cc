#include "qat/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qat {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// Reads exactly `size` bytes; false on a short read.
bool ReadExactly(gzFile file, void* out, size_t size) {
  char* p = static_cast<char*>(out);
  while (size > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
    const int got = gzread(file, p, chunk);
    if (got <= 0) return false;
    p += got;
    size -= static_cast<size_t>(got);
  }
  return true;
}

}  // namespace

absl::StatusOr<Tensor> ReadIdx(const std::string& path) {
  // gzopen reads plain files as they are, so one path handles both.
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open IDX file '", path, "'"));
  }
  uint8_t magic[4];
  if (!ReadExactly(file.get(), magic, 4) || magic[0] != 0 || magic[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not an IDX file"));
  }
  if (magic[2] != 0x08) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' holds IDX type 0x", absl::Hex(magic[2]),
        "; only unsigned bytes (0x08) are supported"));
  }
  const int rank = magic[3];
  std::vector<int64_t> shape;
  for (int d = 0; d < rank; ++d) {
    uint8_t b[4];
    if (!ReadExactly(file.get(), b, 4)) {
      return absl::InvalidArgumentError(absl::StrCat("'", path, "' has a truncated header"));
    }
    shape.push_back((int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3]);
  }
  // Refuse absurd sizes (IDX data sets are far smaller), with the product
  // checked for overflow.
  constexpr int64_t kMaxElements = int64_t{1} << 31;
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (d != 0 && elements > kMaxElements / d) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' declares an implausible shape ", ShapeToString(shape)));
    }
    elements *= d;
  }
  // Read in chunks, so that memory grows with the data actually present
  // rather than with what a corrupt header claims.
  std::string data;
  constexpr size_t kChunk = size_t{16} << 20;
  while (data.size() < static_cast<size_t>(elements)) {
    const size_t want = std::min(kChunk, static_cast<size_t>(elements) - data.size());
    const size_t at = data.size();
    data.resize(at + want);
    if (!ReadExactly(file.get(), &data[at], want)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' is truncated: shape ", ShapeToString(shape), " needs ", elements,
          " bytes of data"));
    }
  }
  Tensor tensor(DataType::kUInt8, shape);
  if (!data.empty()) std::memcpy(tensor.raw_data(), data.data(), data.size());
  return tensor;
}

}  // namespace qat
