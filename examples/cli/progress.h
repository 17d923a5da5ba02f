// Progress of long runs: a redrawn bar on a terminal, plain log lines
// otherwise (CI logs, pipes).
#ifndef QAT_EXAMPLES_CLI_PROGRESS_H_
#define QAT_EXAMPLES_CLI_PROGRESS_H_

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qat_cli {

class Progress {
 public:
  // `label` prefixes every line, e.g. "epoch 2/4"; `unit` names what is
  // counted.
  Progress(std::string label, int64_t total, std::string unit = "steps")
      : label_(std::move(label)), total_(total), unit_(std::move(unit)),
        tty_(::isatty(::fileno(stderr)) != 0), start_(Clock::now()), last_(start_) {}

  // `done` of `total` steps; `detail` is appended, e.g. "loss 0.4123".
  void Update(int64_t done, const std::string& detail) {
    const auto now = Clock::now();
    const double elapsed = Seconds(now - start_);
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    const double eta = rate > 0 ? (total_ - done) / rate : 0.0;
    if (tty_) {
      if (Seconds(now - last_) < 0.1 && done < total_) return;
      constexpr int kWidth = 28;
      const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
      std::string bar(static_cast<size_t>(filled), '=');
      bar.resize(kWidth, ' ');
      std::fprintf(stderr, "\r%s [%s] %lld/%lld %.1f %s/s %s ETA %s   ", label_.c_str(),
                   bar.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                   rate, unit_.c_str(), detail.c_str(), Duration(eta).c_str());
      if (done >= total_) std::fprintf(stderr, "\n");
    } else {
      // A line every 10 seconds, and at the end.
      if (Seconds(now - last_) < 10.0 && done < total_) return;
      std::fprintf(stderr, "%s: %lld/%lld %s, %.1f %s/s, %s, ETA %s\n", label_.c_str(),
                   static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(),
                   rate, unit_.c_str(), detail.c_str(), Duration(eta).c_str());
    }
    std::fflush(stderr);
    last_ = now;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
  static std::string Duration(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
    return buf;
  }

  std::string label_;
  int64_t total_;
  std::string unit_;
  bool tty_;
  Clock::time_point start_, last_;
};

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_PROGRESS_H_
