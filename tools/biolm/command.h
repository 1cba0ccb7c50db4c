// The subcommand registry of the `biolm` tool. A command file does
//   static const bool registered = biolm::cli::register_command({"name", "help", setup});
// where setup(sub) adds options to the CLI11 subcommand and sets its callback.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace biolm::cli {

/// Exit codes of `biolm` (documented in docs/cli.md).
enum ExitCode : int {
  kOk = 0,
  kFailure = 1,      // any other error
  kUsage = 2,        // bad command line, bad or unknown config key
  kDataError = 3,    // malformed input file
  kCheckpoint = 4,   // malformed or mismatched checkpoint
  kInterrupted = 130 // SIGINT/SIGTERM: a checkpoint was written, resume with --resume
};

struct Command {
  std::string name;
  std::string help;
  std::function<void(CLI::App& sub)> setup;
};

bool register_command(Command command);
const std::vector<Command>& commands();

/// Runs a config-driven command: (config path, key.path=value overrides, print_config) -> exit code.
using ConfigCommandFn = std::function<int(const std::string& config, const std::vector<std::string>& overrides,
                                          bool print_config)>;
/// Registers a command of the form `biolm NAME --config FILE [key.path=value ...] [--print-config]`.
/// `footer` is printed under --help (the config sections and the keys people use most).
bool register_config_command(const std::string& name, const std::string& help, const std::string& config_help,
                             ConfigCommandFn run, const std::string& footer = "");

/// Thrown by a command callback to exit with a given code after printing nothing more.
struct ExitRequest {
  int code;
};

}  // namespace biolm::cli
