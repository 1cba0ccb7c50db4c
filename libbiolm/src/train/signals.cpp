#include "biolm/train/signals.h"

#include <csignal>

namespace biolm::train {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;  // 0 none, -1 requested by code, else the signal
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

struct SignalGuard::Saved {
  struct sigaction int_action {};
  struct sigaction term_action {};
};

SignalGuard::SignalGuard() : saved_(new Saved) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &saved_->int_action);
  sigaction(SIGTERM, &sa, &saved_->term_action);
}

SignalGuard::~SignalGuard() {
  sigaction(SIGINT, &saved_->int_action, nullptr);
  sigaction(SIGTERM, &saved_->term_action, nullptr);
  delete saved_;
}

bool stop_requested() { return g_stop_signal != 0; }
int stop_signal() { return g_stop_signal > 0 ? static_cast<int>(g_stop_signal) : 0; }
void request_stop() { g_stop_signal = -1; }
void clear_stop_request() { g_stop_signal = 0; }

}  // namespace biolm::train
