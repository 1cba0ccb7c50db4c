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

/// Thrown by a command callback to exit with a given code after printing nothing more.
struct ExitRequest {
  int code;
};

}  // namespace biolm::cli
