// biolm-bench-zero: per-rank memory and communication of one data-parallel step for ZeRO stages
// 0-3 at world sizes 1, 2, 4 (Gloo over loopback, CPU). Without RANK in the environment it starts
// the workers itself (re-running this program) and prints one JSON line per (world, stage, rank):
//   {"world", "zero", "unit" (stage 3: "block" or "model"), "rank", "trainable", "param_numel"
//    (held at rest), "peak_param_numel" (most gathered at once in the step), "optimizer_numel",
//    "bytes": {"allreduce", "reduce", "allgather", "broadcast"},  (payload handed to c10d by this rank)
//    "loopback_bytes_all_ranks" (rank 0: bytes every rank sent on lo during the step, TCP/IP
//    headers included; -1 on the others),
//    "save": {...}}  (stages 1-3: writing the optimizer state, train.checkpoint_format sharded vs
//    consolidated: wall seconds barrier to barrier, bytes this rank wrote, state elements it held)
// docs/distributed.md compares them with the theory. Usage: biolm-bench-zero [--hidden C] [--layers L]
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "biolm/dist/sharded_checkpoint.h"
#include "biolm/dist/zero.h"
#include "biolm/io/tensor_file.h"
#include "biolm/nn/checkpoint.h"
#include "biolm/train/distributed.h"

using namespace biolm;

namespace {

// L blocks of Linear + tanh; a block sequence, so ZeRO-3 gathers it block by block
// (train.zero3_unit: block) unless BENCH_UNIT=model.
struct Mlp : torch::nn::Module, nn::BlockSequence {
  Mlp(int64_t C, int64_t L) {
    for (int64_t i = 0; i < L; ++i) layers.push_back(register_module("l" + std::to_string(i), torch::nn::Linear(C, C)));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (size_t l = 0; l < layers.size(); ++l) {
      auto lin = layers[l];
      x = nn::run_block(gather, l, [lin](const std::vector<torch::Tensor>& xs) mutable {
            return std::vector<torch::Tensor>{torch::tanh(lin(xs[0]))};
          }, {x}, lin->parameters(), false)[0];
    }
    return x;
  }
  std::vector<std::shared_ptr<torch::nn::Module>> sharding_blocks() override {
    std::vector<std::shared_ptr<torch::nn::Module>> out;
    for (auto& l : layers) out.push_back(l.ptr());
    return out;
  }
  void set_block_gather(std::shared_ptr<nn::BlockGather> g) override { gather = std::move(g); }
  std::vector<torch::nn::Linear> layers;
  std::shared_ptr<nn::BlockGather> gather;
};

/// Bytes sent on the loopback interface so far (every rank's TCP traffic, headers included).
long long loopback_tx_bytes() {
  std::ifstream f("/sys/class/net/lo/statistics/tx_bytes");
  long long v = -1;
  f >> v;
  return v;
}

int worker(int64_t C, int64_t L) {
  const auto env = train::DistEnv::from_env();
  auto group = train::ProcessGroup::create(env, torch::kCPU, std::chrono::seconds(120));
  torch::manual_seed(1);
  Mlp model(C, L);
  train::TrainConfig cfg;
  cfg.zero = std::stoi(std::getenv("BENCH_ZERO"));
  const char* unit = std::getenv("BENCH_UNIT");
  if (unit && std::string(unit) == "model") cfg.zero3_unit = train::Zero3Unit::Model;
  cfg.clip_grad_norm = 1.0;
  dist::DataParallel ddp(group, model, cfg);
  auto opt = ddp.build_optimizer(cfg, {});
  // The wire: every rank's bytes on the loopback between two barriers, read by rank 0 (the
  // barriers' own few hundred bytes are inside).
  group->barrier();
  const long long lo_before = loopback_tx_bytes();
  group->barrier();
  const auto before = group->traffic();
  ddp.begin_step();
  ddp.begin_micro_batch(true);  // stages 0-2: buckets reduced as the backward pass fills them
  model.forward(torch::randn({8, C})).pow(2).sum().backward();
  ddp.micro_batch_done(true, true);
  ddp.step(*opt.optimizer, 1.0 / 8, cfg.clip_grad_norm);
  const auto after = group->traffic();
  group->barrier();
  const long long wire = env.rank == 0 ? loopback_tx_bytes() - lo_before : -1;
  const auto m = ddp.memory(*opt.optimizer);
  // Saving the optimizer state both ways (dist/sharded_checkpoint.h vs optimizer.safetensors).
  std::string save = "null";
  if (cfg.zero > 0) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("biolm-bench-zero-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto timed = [&](const std::function<void()>& f) {
      group->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      f();
      group->barrier();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    uint64_t sharded_bytes = 0, consolidated_bytes = 0;
    int64_t sharded_held = 0, consolidated_held = 0;
    const double sharded_s = timed([&] {
      const auto state = ddp.local_optimizer_state(*opt.optimizer);
      for (const auto& [k, t] : state) sharded_held += t.numel();
      const auto [lo, hi] = ddp.own_range();
      sharded_bytes = dist::write_shard_file(dir, env.rank, env.world_size, lo, hi, state).bytes;
    });
    const double consolidated_s = timed([&] {
      const auto state = ddp.gather_optimizer_state(*opt.optimizer);
      for (const auto& [k, t] : state) consolidated_held += k == "step" ? 0 : t.numel();
      if (env.rank == 0) {
        io::write_tensor_file(dir / "optimizer.safetensors", state);
        consolidated_bytes = fs::file_size(dir / "optimizer.safetensors");
      }
    });
    fs::remove_all(dir);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\"sharded_s\": %.4f, \"sharded_bytes\": %llu, \"sharded_state_held\": %lld, "
                  "\"consolidated_s\": %.4f, \"consolidated_bytes\": %llu, \"consolidated_state_held\": %lld}",
                  sharded_s, static_cast<unsigned long long>(sharded_bytes), static_cast<long long>(sharded_held),
                  consolidated_s, static_cast<unsigned long long>(consolidated_bytes),
                  static_cast<long long>(consolidated_held));
    save = buf;
  }
  std::printf(
      "{\"world\": %d, \"zero\": %d, \"unit\": \"%s\", \"rank\": %d, \"trainable\": %lld, \"param_numel\": %lld, "
      "\"peak_param_numel\": %lld, \"optimizer_numel\": %lld, "
      "\"bytes\": {\"allreduce\": %lld, \"reduce\": %lld, \"allgather\": %lld, \"broadcast\": %lld}, "
      "\"loopback_bytes_all_ranks\": %lld, \"save\": %s}\n",
      env.world_size, cfg.zero, cfg.zero < 3 ? "-" : (ddp.per_block() ? "block" : "model"), env.rank,
      static_cast<long long>(m.trainable_numel), static_cast<long long>(m.parameter_numel),
      static_cast<long long>(m.peak_parameter_numel), static_cast<long long>(m.optimizer_numel),
      static_cast<long long>(after.allreduce - before.allreduce), static_cast<long long>(after.reduce - before.reduce),
      static_cast<long long>(after.allgather - before.allgather),
      static_cast<long long>(after.broadcast - before.broadcast), wire, save.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t C = 256, L = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--hidden") C = std::stoll(argv[i + 1]);
    if (a == "--layers") L = std::stoll(argv[i + 1]);
  }
  try {
    if (std::getenv("RANK")) return worker(C, L);
    int port = 29650;
    for (const int world : {1, 2, 4}) {
      for (int zero = 0; zero <= 4; ++zero) {  // 4: ZeRO-3 with train.zero3_unit: model
        std::vector<pid_t> kids;
        ++port;
        for (int r = 0; r < world; ++r) {
          const pid_t pid = ::fork();
          if (pid == 0) {
            ::setenv("RANK", std::to_string(r).c_str(), 1);
            ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
            ::setenv("MASTER_ADDR", "127.0.0.1", 1);
            ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
            ::setenv("BENCH_ZERO", std::to_string(std::min(zero, 3)).c_str(), 1);
            ::setenv("BENCH_UNIT", zero == 4 ? "model" : "block", 1);
            ::setenv("OMP_NUM_THREADS", "1", 1);
            ::execv("/proc/self/exe", argv);
            ::_exit(127);
          }
          kids.push_back(pid);
        }
        for (pid_t p : kids) {
          int st = 0;
          ::waitpid(p, &st, 0);
          if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            std::cerr << "biolm-bench-zero: a worker failed (world " << world << ", zero " << zero << ")\n";
            return 1;
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "biolm-bench-zero: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
