#include "data/npz.h"

#include <zlib.h>

#include <cstdint>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

uint64_t Le(absl::string_view b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("not a readable .npz: ", what));
}

absl::StatusOr<std::string> Inflate(absl::string_view in, uint64_t size) {
  if (size > std::numeric_limits<uInt>::max() || in.size() > std::numeric_limits<uInt>::max()) {
    return Bad("a compressed member larger than 4 GB (save it with numpy.savez)");
  }
  std::string out(static_cast<size_t>(size), '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return Bad("zlib failed to start");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(&out[0]);
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const uint64_t produced = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END || produced != size) return Bad("a deflated member does not inflate");
  return out;
}

absl::StatusOr<std::shared_ptr<const NpzArchive>> Parse(std::shared_ptr<const MappedFile> file) {
  auto archive = std::make_shared<NpzArchive>();
  const absl::string_view b = file->bytes();
  archive->file = std::move(file);
  // The end-of-central-directory record, searched from the end (a comment
  // of up to 64 KB may follow it).
  if (b.size() < 22) return Bad("too short for a zip");
  size_t eocd = std::string::npos;
  const size_t lowest = b.size() > 22 + 65535 ? b.size() - 22 - 65535 : 0;
  for (size_t at = b.size() - 22 + 1; at-- > lowest;) {
    if (Le(b, at, 4) == 0x06054b50) {
      eocd = at;
      break;
    }
  }
  if (eocd == std::string::npos) return Bad("no zip end-of-central-directory record");
  uint64_t entries = Le(b, eocd + 10, 2), cd_offset = Le(b, eocd + 16, 4);
  if (entries == 0xffff || cd_offset == 0xffffffff) {  // zip64 (numpy.savez forces it)
    if (eocd < 20 || Le(b, eocd - 20, 4) != 0x07064b50) return Bad("no zip64 locator");
    const uint64_t z64 = Le(b, eocd - 20 + 8, 8);
    if (b.size() < 56 || z64 > b.size() - 56 || Le(b, z64, 4) != 0x06064b50) return Bad("bad zip64 record");
    entries = Le(b, z64 + 32, 8);
    cd_offset = Le(b, z64 + 48, 8);
  }
  uint64_t at = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (at > b.size() || b.size() - at < 46 || Le(b, at, 4) != 0x02014b50) {
      return Bad("a truncated central directory");
    }
    const uint64_t flags = Le(b, at + 8, 2), method = Le(b, at + 10, 2);
    uint64_t packed = Le(b, at + 20, 4), size = Le(b, at + 24, 4);
    const uint64_t name_len = Le(b, at + 28, 2), extra_len = Le(b, at + 30, 2),
                   comment_len = Le(b, at + 32, 2);
    uint64_t local = Le(b, at + 42, 4);
    if (b.size() - at - 46 < name_len + extra_len + comment_len) return Bad("a truncated entry");
    std::string name(b.substr(at + 46, name_len));
    // The zip64 extra field holds, in order, the sizes and offset that are 0xffffffff.
    for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = Le(b, x, 2), len = Le(b, x + 2, 2);
      if (x + 4 + len > at + 46 + name_len + extra_len) return Bad("a truncated extra field");
      if (id == 0x0001) {
        uint64_t f = x + 4;
        for (uint64_t* v : {&size, &packed, &local}) {
          if (*v == 0xffffffff && f + 8 <= x + 4 + len) {
            *v = Le(b, f, 8);
            f += 8;
          }
        }
      }
      x += 4 + len;
    }
    at += 46 + name_len + extra_len + comment_len;
    if (flags & 1) return Bad(absl::StrCat("member '", name, "' is encrypted"));
    if (local > b.size() || b.size() - local < 30 || Le(b, local, 4) != 0x04034b50) {
      return Bad(absl::StrCat("member '", name, "' has no local header"));
    }
    const uint64_t start = local + 30 + Le(b, local + 26, 2) + Le(b, local + 28, 2);
    if (start > b.size() || b.size() - start < packed) {
      return Bad(absl::StrCat("member '", name, "' is truncated"));
    }
    const absl::string_view data = b.substr(start, packed);
    if (!absl::EndsWith(name, ".npy")) {
      return Bad(absl::StrCat("member '", name, "' is not an .npy file"));
    }
    name.resize(name.size() - 4);
    if (method == 0) {
      if (packed != size) return Bad(absl::StrCat("member '", name, "' has two sizes"));
      archive->members.push_back({name, data});
    } else if (method == 8) {
      absl::StatusOr<std::string> inflated = Inflate(data, size);
      if (!inflated.ok()) {
        return absl::Status(inflated.status().code(),
                            absl::StrCat(inflated.status().message(), " ('", name, "')"));
      }
      archive->inflated.push_back(std::make_shared<const std::string>(*std::move(inflated)));
      archive->members.push_back({name, *archive->inflated.back()});
    } else {
      return Bad(absl::StrCat("member '", name, "' uses zip method ", method,
                              " (stored and deflate are read)"));
    }
  }
  return std::shared_ptr<const NpzArchive>(std::move(archive));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const NpzArchive>> OpenNpz(const std::string& path) {
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(path));
  absl::StatusOr<std::shared_ptr<const NpzArchive>> archive = Parse(std::move(file));
  if (!archive.ok()) {
    return absl::Status(archive.status().code(),
                        absl::StrCat("'", path, "': ", archive.status().message()));
  }
  return archive;
}

}  // namespace qat
