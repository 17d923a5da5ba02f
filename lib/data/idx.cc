#include "qat/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/catch_exceptions.h"
#include "core/checked_size.h"

namespace qat {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// IDX data sets are far smaller; a header that declares more is refused
// before anything is read.
constexpr int64_t kMaxElements = int64_t{1} << 31;
// Data is read in pieces of this size, so that memory grows with the data
// actually present rather than with what a corrupt header claims.
constexpr size_t kChunk = size_t{16} << 20;

// Reads up to `size` bytes; returns how many were read (fewer at the end of
// the data), or -1 on a read error.
int64_t ReadUpTo(gzFile file, void* out, size_t size) {
  char* p = static_cast<char*>(out);
  size_t done = 0;
  while (done < size) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size - done, 1u << 30));
    const int got = gzread(file, p + done, chunk);
    if (got < 0) return -1;
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return static_cast<int64_t>(done);
}

bool ReadExactly(gzFile file, void* out, size_t size) {
  return ReadUpTo(file, out, size) == static_cast<int64_t>(size);
}

// The zlib error text for a failed read, or "" when there is none.
std::string ReadError(gzFile file) {
  int code = Z_OK;
  const char* text = gzerror(file, &code);
  if (code == Z_OK || code == Z_STREAM_END || text == nullptr) return "";
  return absl::StrCat(" (", text, ")");
}

absl::StatusOr<Tensor> ReadIdxImpl(const std::string& path, int64_t max_records) {
  // gzopen reads plain files as they are, so one path handles both.
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open IDX file '", path, "'"));
  }
  gzbuffer(file.get(), 1 << 16);
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
  const absl::StatusOr<int64_t> declared = CheckedElementCount(shape);
  if (!declared.ok() || *declared > kMaxElements) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' declares an implausible shape ", ShapeToString(shape)));
  }
  const bool limited = rank > 0 && max_records > 0 && max_records < shape[0];
  if (limited) shape[0] = max_records;
  const int64_t elements = NumElements(shape);  // <= *declared

  // Read everything first, in pieces, and only then allocate the tensor:
  // a truncated file costs the memory of what it holds.
  std::vector<std::string> pieces;
  int64_t read = 0;
  while (read < elements) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(kChunk, elements - read));
    pieces.emplace_back(want, '\0');
    if (!ReadExactly(file.get(), &pieces.back()[0], want)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' is truncated: shape ", ShapeToString(shape), " needs ", elements,
          " bytes of data", ReadError(file.get())));
    }
    read += static_cast<int64_t>(want);
  }
  // The data must end where the header says: one byte more is a file that
  // lies about its size (a gzip file is never inflated further).
  if (!limited) {
    char extra;
    const int64_t more = ReadUpTo(file.get(), &extra, 1);
    if (more < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is corrupt", ReadError(file.get())));
    }
    if (more > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' holds more data than its header declares: shape ",
          ShapeToString(shape), " is ", elements, " bytes"));
    }
  }
  absl::StatusOr<Tensor> created = Tensor::Create(DataType::kUInt8, shape);
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat("'", path, "': ", created.status().message()));
  }
  Tensor tensor = *std::move(created);
  char* out = static_cast<char*>(tensor.raw_data());
  for (std::string& piece : pieces) {
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
    std::string().swap(piece);  // free as we go: the peak is the data plus one piece
  }
  return tensor;
}

}  // namespace

absl::StatusOr<Tensor> ReadIdx(const std::string& path, int64_t max_records) {
  return CatchExceptions(absl::StrCat("reading IDX file '", path, "'"),
                         [&] { return ReadIdxImpl(path, max_records); });
}

}  // namespace qat
