#include "core/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace qat {
namespace {

// A temporary file is ".<stem>.qat-tmp.<pid>.<16 hex digits>", where <stem> is
// the target's name cut to 200 bytes so that the whole name stays within
// NAME_MAX (255).  The pid says whether its writer may still be running.
constexpr absl::string_view kTempTag = ".qat-tmp.";
constexpr size_t kMaxStem = 200;
constexpr size_t kRandomDigits = 16;

std::string TempPrefix(absl::string_view target_name) {
  return absl::StrCat(".", target_name.substr(0, kMaxStem), kTempTag);
}

// The writer's pid when `name` is exactly "<prefix><pid>.<16 hex digits>"
// (lower case, the pid without leading zeros); otherwise 0: not ours.
pid_t TempOwner(absl::string_view name, absl::string_view prefix) {
  if (!absl::ConsumePrefix(&name, prefix)) return 0;
  const size_t dot = name.find('.');
  if (dot == absl::string_view::npos || dot == 0 || dot > 10 || name[0] == '0') return 0;
  const absl::string_view pid_text = name.substr(0, dot);
  const absl::string_view random = name.substr(dot + 1);
  if (random.size() != kRandomDigits) return 0;
  for (char c : random) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return 0;
  }
  for (char c : pid_text) {
    if (!absl::ascii_isdigit(c)) return 0;
  }
  int64_t pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid) || pid <= 0 || pid > INT32_MAX) return 0;
  return static_cast<pid_t>(pid);
}

// Removes the temporary files of this target left by processes that no longer
// exist (killed mid-write).  Best effort: a file that cannot be removed stays,
// and the write goes on.  Only regular files owned by this user whose name is
// exactly of our form; unlinkat never follows a symlink.
void RemoveStaleTemps(int dir_fd, absl::string_view prefix) {
  const int list_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list_fd < 0) return;
  DIR* dir = fdopendir(list_fd);
  if (dir == nullptr) {
    close(list_fd);
    return;
  }
  const pid_t self = getpid();
  while (const dirent* entry = readdir(dir)) {
    const pid_t owner = TempOwner(entry->d_name, prefix);
    if (owner <= 0 || owner == self) continue;
    if (kill(owner, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    struct stat st;
    if (fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
      continue;
    }
    unlinkat(dir_fd, entry->d_name, 0);
  }
  closedir(dir);
}

uint64_t RandomBits() {
  uint64_t bits = 0;
  if (getrandom(&bits, sizeof(bits), GRND_NONBLOCK) == static_cast<ssize_t>(sizeof(bits))) {
    return bits;
  }
  // No entropy yet (early boot): unique enough with O_EXCL and retries.
  static std::atomic<uint64_t> counter{0};
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  return now ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull) ^
         reinterpret_cast<uintptr_t>(&bits);
}

// absl::ErrnoToStatus gives ENOSPC and EDQUOT RESOURCE_EXHAUSTED, EACCES and
// EPERM PERMISSION_DENIED, ENOENT NOT_FOUND, and appends the OS text.  EFBIG
// (a file-size limit) is a resource running out too.
absl::Status WriteError(int error, const std::string& path, absl::string_view what) {
  const absl::Status status =
      absl::ErrnoToStatus(error, absl::StrCat("cannot write '", path, "': ", what));
  if (error == EFBIG) return absl::ResourceExhaustedError(status.message());
  return status;
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { close(fd_); }

 private:
  int fd_;
};

}  // namespace

// Reads straight into a string of the file's size, growing it only for a
// file that is not regular or grows while being read: a stream buffer that
// doubles and is then copied out held about three times a 100 MB checkpoint
// at once (issue 16).
absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ",
                                            std::strerror(errno)));
  }
  FdCloser close_fd(fd);
  struct stat st;
  size_t expected = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    expected = static_cast<size_t>(st.st_size);
  }
  std::string bytes;
  try {
    bytes.resize(std::max<size_t>(expected, 1) + 1);  // room to see the end
    size_t done = 0;
    while (true) {
      if (done == bytes.size()) bytes.resize(bytes.size() + std::max<size_t>(bytes.size() / 2, 4096));
      const ssize_t n = read(fd, &bytes[done], bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return absl::DataLossError(absl::StrCat("cannot read '", path, "': ",
                                                std::strerror(errno)));
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    bytes.resize(done);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot read '", path, "': out of memory for its ", expected, " bytes"));
  }
  return bytes;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes) {
  return WriteFileAtomicallyInPieces(path, [&](WritePiece write) { return write(bytes); });
}

absl::Status WriteFileAtomicallyInPieces(const std::string& path,
                                         absl::FunctionRef<absl::Status(WritePiece)> produce) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the path names no file"));
  }
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    return WriteError(errno, path, absl::StrCat("cannot open its folder '", dir, "'"));
  }
  FdCloser close_dir(dir_fd);
  const std::string prefix = TempPrefix(name);
  RemoveStaleTemps(dir_fd, prefix);

  // O_EXCL | O_NOFOLLOW: whatever already has the name, a symlink included,
  // makes the open fail instead of being written through; a new random name
  // is tried then.
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = absl::StrCat(prefix, getpid(), ".",
                       absl::Hex(RandomBits(), absl::kZeroPad16));
    fd = openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    return WriteError(errno, path, "cannot create a temporary file in its folder");
  }
  auto fail = [&](absl::string_view what) {
    const int error = errno;
    if (fd >= 0) close(fd);
    fd = -1;
    unlinkat(dir_fd, tmp.c_str(), 0);
    return WriteError(error, path, what);
  };
  absl::Status write_error;  // the first; the file is gone after it
  auto write_piece = [&](absl::string_view bytes) -> absl::Status {
    size_t done = 0;
    while (write_error.ok() && done < bytes.size()) {
      const size_t chunk = std::min<size_t>(bytes.size() - done, size_t{1} << 30);
      const ssize_t n = write(fd, bytes.data() + done, chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = EIO;
      if (n <= 0) {
        write_error = fail(n < 0 ? "write failed" : "write made no progress");
      } else {
        done += static_cast<size_t>(n);
      }
    }
    return write_error;
  };
  const absl::Status produced = produce(write_piece);
  if (!write_error.ok()) return write_error;
  if (!produced.ok()) {  // the producer's own error: the file goes too
    close(fd);
    unlinkat(dir_fd, tmp.c_str(), 0);
    return produced;
  }
  if (fsync(fd) != 0) return fail("fsync failed");
  const int closed = close(fd);
  fd = -1;
  if (closed != 0) return fail("close failed");
  if (renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) {
    return fail(absl::StrCat("cannot rename '", tmp, "' over it"));
  }
  // Makes the rename durable.  EINVAL: the file system cannot sync a folder.
  if (fsync(dir_fd) != 0 && errno != EINVAL) {
    return WriteError(errno, path, "written, but its folder could not be synced");
  }
  return absl::OkStatus();
}

}  // namespace qat
