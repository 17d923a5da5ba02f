// The atomic-write helper (qat/file_io.h) and the writers that use it: a
// planted symlink is never followed, concurrent writers never mix, a SIGKILL
// at any point leaves one complete version and no pile of temporary files, a
// full disk is RESOURCE_EXHAUSTED with the previous file intact.
#include "qat/file_io.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/calibration_table.h"
#include "qat/checkpoint.h"
#include "qat/npy.h"
#include "qat/tensor.h"

namespace qat {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("atomic_write_", name, "_",
                                                                     getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WritePlain(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The names in `dir` that look like the helper's temporary files, or like
// the old fixed ones ("x.tmp", "x.tmp.XXXXXX").
std::vector<std::string> Temps(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".qat-tmp.") != std::string::npos || name.find(".tmp") != std::string::npos) {
      out.push_back(name);
    }
  }
  return out;
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Version `v` of a file: a header that gives its size and version, then
// that many copies of one letter.  Complete() tells a whole version from a
// torn or mixed one.
std::string Version(int v, size_t size) {
  std::string header = absl::StrCat(v, ":", size, ":");
  return header + std::string(size, static_cast<char>('a' + v % 26));
}

bool Complete(const std::string& bytes) {
  const size_t a = bytes.find(':');
  const size_t b = bytes.find(':', a + 1);
  if (a == std::string::npos || b == std::string::npos) return false;
  const int v = std::stoi(bytes.substr(0, a));
  const size_t size = std::stoul(bytes.substr(a + 1, b - a - 1));
  return bytes == Version(v, size);
}

// A pid that no longer exists: a child that has exited and been reaped.
pid_t DeadPid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

// ---- The symlink case ---------------------------------------------------------------

// Symlinks planted where the old writers put their temporary file (PATH.tmp,
// DIR/checkpoint.tmp) and at the helper's own name pattern with guessable
// parts (our pid, a dead pid, zero and small random parts): none is
// followed, the victim is untouched, the output is a regular file.
class PlantedSymlinks {
 public:
  PlantedSymlinks(const std::string& dir, const std::string& target) : dir_(dir) {
    victim_ = dir + "/victim";
    WritePlain(victim_, "precious");
    const std::string name = fs::path(target).filename().string();
    const std::vector<std::string> names = {
        name + ".tmp",
        absl::StrCat(".", name, ".qat-tmp.", getpid(), ".0000000000000000"),
        absl::StrCat(".", name, ".qat-tmp.", getpid(), ".0000000000000001"),
        absl::StrCat(".", name, ".qat-tmp.", DeadPid(), ".0000000000000000"),
        absl::StrCat(".", name, ".qat-tmp.1.ffffffffffffffff")};
    for (const std::string& n : names) {
      links_.push_back(dir + "/" + n);
      EXPECT_EQ(symlink(victim_.c_str(), links_.back().c_str()), 0) << n;
    }
  }

  // The victim still says what it said, and every link is still a link to it.
  void ExpectUntouched() const {
    EXPECT_EQ(Read(victim_), "precious");
    for (const std::string& link : links_) {
      EXPECT_EQ(fs::read_symlink(link).string(), victim_) << link;
    }
  }

 private:
  std::string dir_, victim_;
  std::vector<std::string> links_;
};

TEST(AtomicWrite, PlantedSymlinksAreNeverFollowed) {
  const std::string dir = FreshDir("symlink");
  const std::string out = dir + "/out.onnx";
  PlantedSymlinks planted(dir, out);
  ASSERT_TRUE(WriteFileAtomically(out, "model bytes").ok());
  planted.ExpectUntouched();
  EXPECT_TRUE(IsRegularFile(out));
  EXPECT_EQ(Read(out), "model bytes");
}

TEST(AtomicWrite, EveryWriterIgnoresPlantedSymlinks) {
  Checkpoint checkpoint;
  checkpoint.parameters.emplace_back("w", Tensor(DataType::kFloat32, {4}));
  struct Writer {
    std::string file;
    std::function<absl::Status(const std::string&)> write, load;
  };
  const std::vector<Writer> writers = {
      {"checkpoint", [&](const std::string& p) { return SaveCheckpoint(p, checkpoint); },
       [](const std::string& p) { return LoadCheckpoint(p).status(); }},
      {"y.npy", [](const std::string& p) { return WriteNpy(p, Tensor(DataType::kFloat32, {2, 3})); },
       [](const std::string& p) { return ReadNpy(p).status(); }},
      {"table.json", [](const std::string& p) { return CalibrationTable().Save(p); },
       [](const std::string& p) { return CalibrationTable::Load(p).status(); }}};
  for (const Writer& w : writers) {
    SCOPED_TRACE(w.file);
    const std::string dir = FreshDir("writer_" + w.file);
    const std::string path = dir + "/" + w.file;
    PlantedSymlinks planted(dir, path);
    ASSERT_TRUE(w.write(path).ok());
    planted.ExpectUntouched();
    EXPECT_TRUE(IsRegularFile(path));
    EXPECT_TRUE(w.load(path).ok());
  }
}

// A symlink at the target itself is replaced by the new file; the file it
// pointed to keeps its content.
TEST(AtomicWrite, ASymlinkAtTheTargetIsReplacedNotFollowed) {
  const std::string dir = FreshDir("target_link");
  const std::string victim = dir + "/victim";
  const std::string out = dir + "/out.npy";
  WritePlain(victim, "precious");
  ASSERT_EQ(symlink(victim.c_str(), out.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(out, "new").ok());
  EXPECT_TRUE(IsRegularFile(out));
  EXPECT_EQ(Read(out), "new");
  EXPECT_EQ(Read(victim), "precious");
}

// ---- Stale temporary files ----------------------------------------------------------

TEST(AtomicWrite, RemovesOnlyItsOwnStaleTemporaries) {
  const std::string dir = FreshDir("stale");
  const pid_t dead = DeadPid();
  const std::string stale = absl::StrCat(".t.onnx.qat-tmp.", dead, ".0123456789abcdef");
  const std::vector<std::string> kept = {
      absl::StrCat(".t.onnx.qat-tmp.", getpid(), ".0123456789abcdef"),  // a live writer
      absl::StrCat(".t.onnx.qat-tmp.", dead, ".0123456789abcde"),       // not our pattern
      absl::StrCat(".t.onnx.qat-tmp.", dead, ".0123456789ABCDEF"),
      absl::StrCat(".t.onnx.qat-tmp.0", dead, ".0123456789abcdef"),
      absl::StrCat(".u.onnx.qat-tmp.", dead, ".0123456789abcdef"),      // another target
      absl::StrCat("t.onnx.qat-tmp.", dead, ".0123456789abcdef"),
      "t.onnx.tmp"};
  WritePlain(dir + "/" + stale, "half");
  for (const std::string& name : kept) WritePlain(dir + "/" + name, "not ours");
  // A symlink of the stale form is not a file we made: it stays, unfollowed.
  const std::string link = absl::StrCat(dir, "/.t.onnx.qat-tmp.", dead, ".fedcba9876543210");
  WritePlain(dir + "/victim", "precious");
  ASSERT_EQ(symlink((dir + "/victim").c_str(), link.c_str()), 0);

  ASSERT_TRUE(WriteFileAtomically(dir + "/t.onnx", "x").ok());
  EXPECT_FALSE(fs::exists(dir + "/" + stale));
  for (const std::string& name : kept) {
    EXPECT_EQ(Read(dir + "/" + name), "not ours") << name;
  }
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(Read(dir + "/victim"), "precious");
}

// ---- Errors ---------------------------------------------------------------------------

TEST(AtomicWrite, ErrorsNameTheFileAndTheReason) {
  const std::string dir = FreshDir("errors");
  const std::string missing = dir + "/no/such/folder/out.onnx";
  absl::Status s = WriteFileAtomically(missing, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(missing));
  EXPECT_THAT(std::string(s.message()), HasSubstr(std::strerror(ENOENT)));

  s = WriteFileAtomically(dir + "/", "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // A folder where the file should go: rename cannot replace it.
  fs::create_directories(dir + "/sub");
  s = WriteFileAtomically(dir + "/sub", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir + "/sub"));
  EXPECT_THAT(Temps(dir), IsEmpty());
}

// ---- Concurrent writers ---------------------------------------------------------------

TEST(AtomicWrite, ConcurrentThreadsNeverMixVersions) {
  const std::string dir = FreshDir("threads");
  const std::string out = dir + "/out.bin";
  constexpr int kThreads = 8, kWrites = 25;
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    while (!done) {
      const std::string bytes = Read(out);
      if (!bytes.empty()) {
        ++reads;
        if (!Complete(bytes)) ++torn;
      }
    }
  });
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        const absl::Status s = WriteFileAtomically(out, Version(t, 20000 + 997 * t));
        if (!s.ok()) {
          ++failures;
          ADD_FAILURE() << s;
        }
      }
    });
  }
  for (std::thread& w : writers) w.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(torn, 0) << "of " << reads << " reads";
  EXPECT_TRUE(Complete(Read(out)));
  EXPECT_THAT(Temps(dir), IsEmpty());
}

TEST(AtomicWrite, ConcurrentProcessesNeverMixVersions) {
  const std::string dir = FreshDir("processes");
  const std::string out = dir + "/out.bin";
  constexpr int kProcesses = 6, kWrites = 25;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int failed = 0;
      for (int i = 0; i < kWrites; ++i) {
        if (!WriteFileAtomically(out, Version(p, 30000 + 1009 * p)).ok()) ++failed;
        if (!Complete(Read(out))) ++failed;
      }
      _exit(failed == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid;
  }
  EXPECT_TRUE(Complete(Read(out)));
  EXPECT_THAT(Temps(dir), IsEmpty());
}

// ---- SIGKILL at random points ---------------------------------------------------------

TEST(AtomicWrite, SigkillAtRandomPointsLeavesOneVersionAndNoPileOfTemps) {
  const std::string dir = FreshDir("sigkill");
  const std::string out = dir + "/out.bin";
  ASSERT_TRUE(WriteFileAtomically(out, Version(0, 1000)).ok());
  std::mt19937 random(13);
  constexpr int kKills = 50;
  size_t most_temps = 0;
  for (int kill_count = 0; kill_count < kKills; ++kill_count) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Large enough that a kill often lands inside a write.
      for (int v = 1;; ++v) (void)WriteFileAtomically(out, Version(v, 1 << 20));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 20000));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    ASSERT_EQ(waitpid(pid, nullptr, 0), pid);
    const std::string bytes = Read(out);
    EXPECT_TRUE(Complete(bytes)) << "after kill " << kill_count << ": " << bytes.size()
                                 << " bytes";
    // Each child removes the ones its dead predecessors left: never more
    // than the one the last kill interrupted.
    const size_t temps = Temps(dir).size();
    most_temps = std::max(most_temps, temps);
    EXPECT_LE(temps, 1u) << "after kill " << kill_count;
  }
  ASSERT_TRUE(WriteFileAtomically(out, Version(99, 10)).ok());
  EXPECT_EQ(Read(out), Version(99, 10));
  EXPECT_THAT(Temps(dir), IsEmpty());
  RecordProperty("most_temps_after_a_kill", static_cast<int>(most_temps));
}

// ---- A full disk ----------------------------------------------------------------------

// On a 256 KB tmpfs: a small file written by `small`, then `large` (too big
// for the disk) written over it.  Each returns its status; `skipped` says
// why the tmpfs could not be mounted.
struct FullDiskRun {
  std::string skipped, out;
  absl::Status small, large;
  std::string before, after;  // the file after `small`, and after `large`
  std::vector<std::string> temps;
};
template <typename Small, typename Large>
FullDiskRun OnAFullDisk(const std::string& name, Small small, Large large) {
  FullDiskRun run;
  const std::string dir = FreshDir(name);
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=256k") != 0) {
    run.skipped = absl::StrCat("cannot mount a 256 KB tmpfs at ", dir, ": ",
                               std::strerror(errno), " (the test needs root or CAP_SYS_ADMIN)");
    return run;
  }
  run.out = dir + "/file";
  run.small = small(run.out);
  run.before = Read(run.out);
  run.large = large(run.out);
  run.after = Read(run.out);
  run.temps = Temps(dir);
  umount2(dir.c_str(), MNT_DETACH);
  return run;
}

void ExpectResourceExhaustedAndThePreviousFile(const FullDiskRun& run) {
  ASSERT_TRUE(run.small.ok()) << run.small;
  EXPECT_EQ(run.large.code(), absl::StatusCode::kResourceExhausted) << run.large;
  EXPECT_THAT(std::string(run.large.message()), HasSubstr(run.out));
  EXPECT_THAT(std::string(run.large.message()), HasSubstr(std::strerror(ENOSPC)));
  EXPECT_EQ(run.after, run.before);
  EXPECT_THAT(run.temps, IsEmpty());
}

TEST(AtomicWrite, AFullDiskIsResourceExhaustedAndKeepsThePreviousFile) {
  const std::string before = Version(1, 100 * 1024);
  const FullDiskRun run = OnAFullDisk(
      "full_disk", [&](const std::string& out) { return WriteFileAtomically(out, before); },
      [](const std::string& out) { return WriteFileAtomically(out, Version(2, 1 << 20)); });
  if (!run.skipped.empty()) GTEST_SKIP() << run.skipped;
  EXPECT_EQ(run.before, before);
  ExpectResourceExhaustedAndThePreviousFile(run);
}

// ---- Files written in pieces, and whole-file reads ---------------------------------------

TEST(AtomicWrite, PiecesMakeOneFileAndAProducersErrorKeepsThePreviousOne) {
  const std::string dir = FreshDir("pieces");
  const std::string out = dir + "/f";
  ASSERT_TRUE(WriteFileAtomicallyInPieces(out, [](WritePiece write) -> absl::Status {
                for (absl::string_view piece : {"ab", "", "cde"}) {
                  if (absl::Status s = write(piece); !s.ok()) return s;
                }
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(Read(out), "abcde");
  const absl::Status s = WriteFileAtomicallyInPieces(out, [](WritePiece write) {
    EXPECT_TRUE(write("half of a new version").ok());
    return absl::CancelledError("the producer stopped");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(Read(out), "abcde");
  EXPECT_THAT(Temps(dir), IsEmpty());
}

TEST(AtomicWrite, ACheckpointOnAFullDiskIsResourceExhaustedAndKeepsThePreviousFile) {
  Checkpoint small, large;
  small.parameters.emplace_back("w", Tensor::FromValues<float>({4}, {1, 2, 3, 4}));
  large.parameters.emplace_back("w", Tensor(DataType::kFloat32, {512, 1024}));  // 2 MB
  const FullDiskRun run = OnAFullDisk(
      "full_disk_checkpoint", [&](const std::string& out) { return SaveCheckpoint(out, small); },
      [&](const std::string& out) { return SaveCheckpoint(out, large); });
  if (!run.skipped.empty()) GTEST_SKIP() << run.skipped;
  ExpectResourceExhaustedAndThePreviousFile(run);
}

TEST(ReadFileToString, ReadsRegularEmptyAndSizelessFiles) {
  const std::string dir = FreshDir("read");
  std::string bytes(3 * 1000 * 1000 + 7, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 % 251);
  WritePlain(dir + "/big", bytes);
  WritePlain(dir + "/empty", "");
  auto big = ReadFileToString(dir + "/big");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(*big, bytes);
  auto empty = ReadFileToString(dir + "/empty");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");
  // /proc files report a size of 0 and still have contents.
  auto status = ReadFileToString("/proc/self/status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_THAT(*status, HasSubstr("VmRSS"));
  auto missing = ReadFileToString(dir + "/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr(dir + "/missing"));
  auto folder = ReadFileToString(dir);
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kDataLoss) << folder.status();
}

}  // namespace
}  // namespace qat
