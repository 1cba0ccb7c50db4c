// biolm/train/progress.h: what the trainer reports while it runs, and how tools show it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace biolm::train {

struct ProgressEvent {
  int64_t step = 0;       ///< optimizer steps done
  int64_t max_steps = 0;
  double loss = 0.0;      ///< mean loss per target token of the last step
  double lr = 0.0;        ///< lr of the first parameter group for the last step
  /// Target tokens per second of training-step time since the run (or resume) started, all
  /// ranks: evaluations and checkpoints are not counted (they are in elapsed_s and eta_s).
  double tokens_per_s = 0.0;
  double elapsed_s = 0.0;  ///< wall seconds since the run (or resume) started, evaluations included
  double eta_s = 0.0;      ///< remaining steps at the wall-time rate so far (evaluations included)
  std::optional<double> grad_norm;  ///< before clipping
  int64_t nonfinite_steps = 0;
};

/// One line: on a TTY "\r" + a compact overwriting line, otherwise a plain log line:
///   step 120/1000 | loss 2.3456 | lr 1.00e-04 | 5,230 tok/s | ETA 00:02:51
std::string format_progress(const ProgressEvent& event, bool tty);
/// "01:02:03" (hours may exceed 24).
std::string format_duration(double seconds);

}  // namespace biolm::train
