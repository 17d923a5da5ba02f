// Atomic file writes: the one way libqat (and the qat program) writes a file.
//
// WriteFileAtomically(path, bytes) replaces `path` with `bytes` so that a
// reader, or a run after a crash or a SIGKILL, sees either the previous file
// or the new one, complete, and never a mix:
//   1. it creates a new temporary file in path's folder, named
//      ".<file name>.qat-tmp.<pid>.<random>", with O_CREAT | O_EXCL |
//      O_NOFOLLOW | O_CLOEXEC: nothing that already exists under that name
//      (a file, or a symlink planted there) is opened, let alone followed;
//   2. writes all of `bytes` (retrying short writes and EINTR) and fsyncs it;
//   3. renames it over `path`;
//   4. fsyncs the folder, so that the rename survives a power cut.
//
// A symlink at `path` itself is replaced by the new regular file; the file it
// pointed to is left untouched.
//
// Temporary files of killed runs do not pile up: before writing, it removes
// the temporaries of the same target in that folder whose process no longer
// exists (the <pid> in the name), and only regular files whose name is
// exactly of that form; it never follows a symlink.  (A writer in another
// PID namespace, e.g. another container sharing the folder, looks dead: its
// temporary file may be removed under it, and its write then fails cleanly.)
//
// Errors (the temporary file is removed, the previous `path` is intact): the
// message names `path` and gives the OS error text.  A full disk or an
// exceeded quota is RESOURCE_EXHAUSTED, a refused permission
// PERMISSION_DENIED, a missing folder NOT_FOUND, an empty path or one that
// names a folder INVALID_ARGUMENT; other OS errors map as absl::ErrnoToStatus
// maps them.
//
// Thread-safety: any number of threads and processes may write the same path
// at once; each write succeeds or fails on its own, and `path` always holds
// one complete version.
#ifndef QAT_FILE_IO_H_
#define QAT_FILE_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"

namespace qat {

QAT_API absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

}  // namespace qat

#endif  // QAT_FILE_IO_H_
