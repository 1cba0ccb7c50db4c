// biolm: the command line of libbiolm. Catches every error and maps it to an exit code.
#include <iostream>
#include <memory>

#include "biolm/core/error.h"
#include "biolm/core/host_memory.h"
#include "biolm/core/log.h"
#include "biolm/core/version.h"
#include "command.h"

namespace biolm::cli {

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
bool register_command(Command command) {
  registry().push_back(std::move(command));
  return true;
}
const std::vector<Command>& commands() { return registry(); }

bool register_config_command(const std::string& name, const std::string& help, const std::string& config_help,
                             ConfigCommandFn run, const std::string& footer) {
  return register_command({name, help, [config_help, run, footer](CLI::App& sub) {
                             if (!footer.empty()) sub.footer(footer);
                             auto config = std::make_shared<std::string>();
                             auto overrides = std::make_shared<std::vector<std::string>>();
                             auto print = std::make_shared<bool>(false);
                             sub.add_option("--config", *config, config_help)->required()->check(CLI::ExistingFile);
                             sub.add_option("overrides", *overrides, "key.path=value overrides, ~key.path removes");
                             sub.add_flag("--print-config", *print, "print the resolved configuration and exit");
                             sub.callback([=] {
                               const int rc = run(*config, *overrides, *print);
                               if (rc != kOk) throw ExitRequest{rc};
                             });
                           }});
}

}  // namespace biolm::cli

int main(int argc, char** argv) {
  using namespace biolm::cli;
  // Freed activations stay in the heap for the next step (biolm/core/host_memory.h).
  const biolm::core::HostAllocatorTuning host_memory = biolm::core::tune_host_allocator();
  CLI::App app{"biolm: train and adapt transformer language models for biomedicine"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  std::string log_level = "info";
  app.add_flag("--version", show_version, "print libbiolm, LibTorch and CUDA versions");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")->capture_default_str();
  for (const auto& cmd : commands()) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.help);
    cmd.setup(*sub);
  }
  // The log level applies before any subcommand callback runs.
  app.parse_complete_callback([&] {
    biolm::log::set_level(biolm::log::parse_level(log_level));
    biolm::log::debug("host memory: {}", host_memory.detail);
  });
  try {
    app.parse(argc, argv);  // subcommand callbacks run in here
    if (show_version) {
      std::cout << biolm::version_banner();
      return kOk;
    }
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
      return kUsage;
    }
    return kOk;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  } catch (const ExitRequest& e) {
    return e.code;
  } catch (const biolm::ConfigError& e) {
    std::cerr << "biolm: error: " << e.what() << "\n";
    return kUsage;
  } catch (const biolm::DataError& e) {
    std::cerr << "biolm: error: " << e.what() << "\n";
    return kDataError;
  } catch (const biolm::CheckpointError& e) {
    std::cerr << "biolm: error: " << e.what() << "\n";
    return kCheckpoint;
  } catch (const std::exception& e) {
    std::cerr << "biolm: error: " << e.what() << "\n";
    return kFailure;
  }
}
