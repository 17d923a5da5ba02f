// A read-only memory mapping of a whole file, so that a dataset reads the
// rows a batch needs and never loads a large array whole.
#ifndef QAT_LIB_DATA_MAPPED_FILE_H_
#define QAT_LIB_DATA_MAPPED_FILE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qat {

class MappedFile {
 public:
  // NotFound when the file cannot be opened; Internal when it cannot be
  // mapped.  An empty file maps to an empty view.
  static absl::StatusOr<std::shared_ptr<const MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  absl::string_view bytes() const {
    return absl::string_view(static_cast<const char*>(data_), size_);
  }

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_;
  size_t size_;
};

}  // namespace qat

#endif  // QAT_LIB_DATA_MAPPED_FILE_H_
