#include "biolm/train/progress.h"

#include <fmt/format.h>

#include <cmath>

namespace biolm::train {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  return fmt::format("{:02d}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

std::string format_progress(const ProgressEvent& e, bool tty) {
  std::string line = fmt::format("step {}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | ETA {}", e.step, e.max_steps,
                                 e.loss, e.lr, e.tokens_per_s, format_duration(e.eta_s));
  if (e.grad_norm) line += fmt::format(" | gnorm {:.3f}", *e.grad_norm);
  if (e.nonfinite_steps > 0) line += fmt::format(" | skipped {}", e.nonfinite_steps);
  if (tty) return "\r\x1b[2K" + line;  // carriage return + clear line: the line overwrites itself
  return fmt::format("[{}] ", format_duration(e.elapsed_s)) + line;
}

}  // namespace biolm::train
