// biolm launch -n N [--nnodes M --node-rank K] [--master-addr A] [--master-port P] -- <command...>:
// starts N local data-parallel processes of an M-node job with torchrun's variables (RANK = K·N +
// local rank, WORLD_SIZE = M·N, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK = K, MASTER_ADDR,
// MASTER_PORT: the same meaning as torchrun --nnodes/--node-rank/--nproc-per-node), forwards
// SIGINT/SIGTERM to them, waits, and fails when any of them fails (stopping the others).
//
// The child's arguments pass through verbatim: only the program name is a CLI11 option (a single
// string, so CLI11's "[a,b]" list syntax never applies); everything after it is taken raw from
// the subcommand's remaining arguments (prefix_command), brackets, commas and dashes included.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "biolm/core/error.h"
#include "command.h"

namespace {

volatile std::sig_atomic_t g_forward = 0;
extern "C" void on_signal(int sig) { g_forward = sig; }

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw biolm::IoError::from_errno("socket", "cannot pick a free port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw biolm::IoError::from_errno("127.0.0.1", "cannot pick a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int launch(int n, int nnodes, int node_rank, const std::string& addr, int port, const std::vector<std::string>& command) {
  if (n < 1) throw biolm::ConfigError("launch.n", "must be >= 1, got " + std::to_string(n));
  if (nnodes < 1) throw biolm::ConfigError("launch.nnodes", "must be >= 1, got " + std::to_string(nnodes));
  if (node_rank < 0 || node_rank >= nnodes) {
    throw biolm::ConfigError("launch.node_rank", "must be in [0, nnodes), got " + std::to_string(node_rank));
  }
  if (command.empty()) throw biolm::ConfigError("launch.command", "no command given after --");
  if (port == 0 && nnodes > 1) {
    throw biolm::ConfigError("launch.master_port", "several nodes must agree on a port: give --master-port");
  }
  if (port == 0) port = pick_free_port();
  struct sigaction sa {}, old_int{}, old_term{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  std::vector<pid_t> pids;
  for (int rank = 0; rank < n; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) throw biolm::IoError::from_errno(command[0], "fork failed");
    if (pid == 0) {
      sigaction(SIGINT, &old_int, nullptr);
      sigaction(SIGTERM, &old_term, nullptr);
      ::setenv("RANK", std::to_string(node_rank * n + rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nnodes * n).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(node_rank).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      const std::string msg = "biolm launch: cannot run '" + command[0] + "': " + std::strerror(errno) + "\n";
      (void)!::write(2, msg.data(), msg.size());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  std::cerr << "biolm launch: " << n << " processes, rendezvous at " << addr << ":" << port << "\n";

  int first_failure = 0;
  size_t running = pids.size();
  bool forwarded = false;
  while (running > 0) {
    if (g_forward != 0 && !forwarded) {
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, g_forward);
      }
      forwarded = true;
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, 0);
    if (done < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t local = 0; local < pids.size(); ++local) {
      auto& p = pids[local];
      if (p != done) continue;
      p = -1;
      --running;
      const int code = exit_code_of(status);
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        std::cerr << "biolm launch: rank " << node_rank * n + static_cast<int>(local) << " exited with "
                  << code << "; stopping the others\n";
        for (pid_t q : pids) {
          if (q > 0) ::kill(q, SIGTERM);
        }
      }
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return first_failure;
}

struct LaunchArgs {
  int n = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string addr = "127.0.0.1";
  int port = 0;
  std::string program;
};

const bool registered = biolm::cli::register_command(
    {"launch", "run N local data-parallel processes: biolm launch -n N -- <command...>", [](CLI::App& sub) {
       auto args = std::make_shared<LaunchArgs>();
       sub.add_option("-n,--nproc", args->n, "number of processes on this node")->required();
       sub.add_option("--nnodes", args->nnodes, "number of nodes (each runs biolm launch)")->capture_default_str();
       sub.add_option("--node-rank", args->node_rank, "this node's index in [0, nnodes)")->capture_default_str();
       sub.add_option("--master-addr", args->addr, "rendezvous address")->capture_default_str();
       sub.add_option("--master-port", args->port, "rendezvous port (0: a free one)")->capture_default_str();
       sub.add_option("command", args->program, "the command each process runs (after --), arguments verbatim")
           ->required();
       sub.prefix_command();  // stop option parsing at the command: its arguments stay untouched
       sub.callback([args, &sub] {
         std::vector<std::string> command{args->program};
         std::vector<std::string> rest = sub.remaining();
         // CLI11 keeps the "--" that preceded the program as the first remaining argument.
         const size_t skip = !rest.empty() && rest.front() == "--" ? 1 : 0;
         command.insert(command.end(), rest.begin() + static_cast<std::ptrdiff_t>(skip), rest.end());
         const int code = launch(args->n, args->nnodes, args->node_rank, args->addr, args->port, command);
         if (code != 0) throw biolm::cli::ExitRequest{code};
       });
     }});

}  // namespace
