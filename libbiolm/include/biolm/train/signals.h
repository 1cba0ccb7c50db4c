// biolm/train/signals.h: SIGINT/SIGTERM turn into a "stop after this step" request.
//
// The handler only sets a flag (async-signal-safe); the trainer reads it after each optimizer
// step, writes a checkpoint and returns Status::Interrupted, which tools map to exit code 130.
// The flag is process-wide state by necessity: a signal handler has no other place to write.
#pragma once

namespace biolm::train {

/// Installs the handlers for its lifetime and restores the previous ones on destruction.
class SignalGuard {
 public:
  SignalGuard();
  ~SignalGuard();
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  struct Saved;
  Saved* saved_;
};

/// True once SIGINT or SIGTERM arrived (or request_stop was called) since the last clear.
bool stop_requested();
/// The signal number that requested the stop (0 for request_stop or none).
int stop_signal();
void request_stop();
void clear_stop_request();

}  // namespace biolm::train
