// biolm/core/log.h: leveled logging for library code (spdlog underneath, fmt syntax).
//
// Library code never prints to std::cout/std::cerr; it logs here, to stderr by default.
// In data-parallel runs only rank 0 logs below `warn` (set_rank).
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>

namespace biolm::log {

enum class Level { Trace = 0, Debug, Info, Warn, Error, Off };

/// Parses "trace|debug|info|warn|error|off"; throws ConfigError("log.level", ...) otherwise.
Level parse_level(std::string_view name);
void set_level(Level level);
Level level();
/// Ranks other than 0 only log warnings and errors.
void set_rank(int rank);
/// Sends every emitted line also (or, with replace=true, only) to `sink`; nullptr removes it.
void set_sink(std::function<void(Level, const std::string&)> sink, bool replace = false);

void write(Level level, const std::string& message);
bool enabled(Level level);

template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Trace)) write(Level::Trace, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Debug)) write(Level::Debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Info)) write(Level::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Warn)) write(Level::Warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Error)) write(Level::Error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace biolm::log
