#include "biolm/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include "biolm/core/error.h"

namespace biolm::log {
namespace {

struct State {
  std::mutex mutex;
  std::atomic<int> level{static_cast<int>(Level::Info)};
  std::atomic<int> rank{0};
  std::function<void(Level, const std::string&)> sink;
  bool replace = false;
  std::shared_ptr<spdlog::logger> logger;
};

State& state() {
  static State s;
  return s;
}

spdlog::level::level_enum to_spd(Level l) {
  switch (l) {
    case Level::Trace: return spdlog::level::trace;
    case Level::Debug: return spdlog::level::debug;
    case Level::Info: return spdlog::level::info;
    case Level::Warn: return spdlog::level::warn;
    case Level::Error: return spdlog::level::err;
    case Level::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

spdlog::logger& logger() {
  State& s = state();
  if (!s.logger) {
    s.logger = std::make_shared<spdlog::logger>(
        "biolm", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    s.logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    s.logger->set_level(spdlog::level::trace);  // filtering happens in enabled()
  }
  return *s.logger;
}

}  // namespace

Level parse_level(std::string_view name) {
  if (name == "trace") return Level::Trace;
  if (name == "debug") return Level::Debug;
  if (name == "info") return Level::Info;
  if (name == "warn" || name == "warning") return Level::Warn;
  if (name == "error") return Level::Error;
  if (name == "off") return Level::Off;
  throw ConfigError("log.level", "expected trace|debug|info|warn|error|off, found \"" +
                                     std::string(name) + "\"");
}

void set_level(Level level) { state().level = static_cast<int>(level); }
Level level() { return static_cast<Level>(state().level.load()); }
void set_rank(int rank) { state().rank = rank; }

void set_sink(std::function<void(Level, const std::string&)> sink, bool replace) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.sink = std::move(sink);
  s.replace = s.sink ? replace : false;
}

bool enabled(Level l) {
  const State& s = state();
  if (static_cast<int>(l) < s.level.load()) return false;
  if (l < Level::Warn && s.rank.load() != 0) return false;
  return l != Level::Off;
}

void write(Level l, const std::string& message) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.sink) s.sink(l, message);
  if (!s.replace) logger().log(to_spd(l), "{}", message);
}

}  // namespace biolm::log
