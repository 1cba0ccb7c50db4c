// A tiny token-classification transformer-ish model for peft/ and train/ tests: every projection
// is biolm::nn::Linear under realistic names (layers.<i>.attn.q_proj / v_proj, layers.<i>.mlp.up /
// down, layers.<i>.norm, head), it honours attention_mask, segment_ids and inputs_embeds, and its
// loss is the summed token cross-entropy (labels -100 ignored).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <random>

#include "biolm/data/batch.h"
#include "biolm/nn/checkpoint.h"
#include "biolm/nn/linear.h"
#include "biolm/train/instruction.h"
#include "biolm/models/trainable.h"

namespace biolm::test {

struct TinyAttnImpl : torch::nn::Module {
  explicit TinyAttnImpl(int64_t C) {
    q_proj = register_module("q_proj", nn::Linear(nn::LinearOptions(C, C).init_std(0.3)));
    v_proj = register_module("v_proj", nn::Linear(nn::LinearOptions(C, C).init_std(0.3)));
  }
  nn::Linear q_proj{nullptr}, v_proj{nullptr};
};
TORCH_MODULE(TinyAttn);

struct TinyMlpImpl : torch::nn::Module {
  explicit TinyMlpImpl(int64_t C) {
    up = register_module("up", nn::Linear(nn::LinearOptions(C, 2 * C).init_std(0.3)));
    down = register_module("down", nn::Linear(nn::LinearOptions(2 * C, C).init_std(0.3)));
  }
  nn::Linear up{nullptr}, down{nullptr};
};
TORCH_MODULE(TinyMlp);

struct TinyBlockImpl : torch::nn::Module {
  explicit TinyBlockImpl(int64_t C) {
    attn = register_module("attn", TinyAttn(C));
    mlp = register_module("mlp", TinyMlp(C));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C})));
  }
  TinyAttn attn{nullptr};
  TinyMlp mlp{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(TinyBlock);

class TinyModel : public models::TrainableModel, public nn::BlockSequence {
 public:
  TinyModel(int64_t V, int64_t C, int64_t K, int64_t n_layers, double dropout = 0.0) : C_(C), K_(K), dropout_(dropout) {
    embed = register_module("embed", torch::nn::Embedding(V, C));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < n_layers; ++i) layers->push_back(TinyBlock(C));
    head = register_module("head", nn::Linear(nn::LinearOptions(C, K).init_std(0.3)));
  }

  torch::Tensor embed_tokens(const torch::Tensor& ids) override { return embed(ids); }

  std::vector<std::shared_ptr<torch::nn::Module>> sharding_blocks() override {
    std::vector<std::shared_ptr<torch::nn::Module>> out;
    for (const auto& m : *layers) out.push_back(m);
    return out;
  }
  void set_block_gather(std::shared_ptr<nn::BlockGather> gather) override { gather_ = std::move(gather); }

  /// (B,T,K) logits.
  torch::Tensor logits(const data::Batch& batch) {
    auto x = batch.has("inputs_embeds") ? batch.at("inputs_embeds") : embed(batch.at("input_ids"));  // (B,T,C)
    const int64_t B = x.size(0), T = x.size(1);
    auto allowed = torch::ones({B, T, T}, torch::kBool);
    if (batch.has("attention_mask")) allowed = allowed.logical_and(batch.at("attention_mask").ne(0).unsqueeze(1));
    if (batch.has("segment_ids")) {
      allowed = allowed.logical_and(train::segment_attention_mask(batch.at("segment_ids"), false).squeeze(1));
    }
    allowed = allowed.logical_or(torch::eye(T, torch::kBool).unsqueeze(0));  // padded queries see themselves
    // Each block through nn::run_block: gathered per block under ZeRO-3 (dist/zero.h).
    for (size_t l = 0; l < layers->size(); ++l) {
      auto* blk = layers[l]->as<TinyBlockImpl>();
      const bool train = is_training();
      const double C = double(C_), p = dropout_;
      auto fn = [blk, allowed, train, C, p](const std::vector<torch::Tensor>& xs) {
        auto x = xs[0];
        auto q = blk->attn->q_proj(x);                                                // (B,T,C)
        auto scores = torch::matmul(q, x.transpose(1, 2)) / std::sqrt(C);             // (B,T,T)
        scores = scores.masked_fill(allowed.logical_not(), -1e9);
        auto o = torch::matmul(torch::softmax(scores, -1), blk->attn->v_proj(x));     // (B,T,C)
        if (p > 0) o = torch::dropout(o, p, train);
        x = x + o;
        return std::vector<torch::Tensor>{x + blk->mlp->down(torch::gelu(blk->mlp->up(blk->norm(x))))};
      };
      x = nn::run_block(gather_, l, fn, {x}, layers[l]->parameters(), /*recompute=*/false)[0];
    }
    if (nan_next) {
      nan_next = false;
      x = x * std::numeric_limits<double>::quiet_NaN();
    }
    return head(x);
  }

  models::StepOutput forward_batch(const data::Batch& batch) override {
    auto lg = logits(batch);
    const auto labels = batch.at("labels");
    models::StepOutput out;
    out.loss_sum = torch::nn::functional::cross_entropy(
        lg.reshape({-1, K_}), labels.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(data::kIgnoreIndex).reduction(torch::kSum));
    out.n_target_tokens = labels.ne(data::kIgnoreIndex).sum().item<int64_t>();
    out.logits = lg;
    return out;
  }

  torch::nn::Embedding embed{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::Linear head{nullptr};
  bool nan_next = false;

 private:
  std::shared_ptr<nn::BlockGather> gather_;
  int64_t C_, K_;
  double dropout_;
};

/// Random token sequences (lengths lo..hi) with labels = f(id); batches of `per_batch` padded to
/// their longest sequence (pad id 0, label -100, attention_mask 0).
inline std::vector<data::Batch> make_batches(int64_t n_batches, int64_t per_batch, int64_t V, int64_t lo, int64_t hi,
                                             const std::function<int64_t(int64_t)>& label_of, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<data::Batch> out;
  for (int64_t b = 0; b < n_batches; ++b) {
    std::vector<std::vector<int64_t>> seqs;
    int64_t T = 0;
    for (int64_t i = 0; i < per_batch; ++i) {
      const int64_t len = lo + static_cast<int64_t>(rng() % static_cast<uint32_t>(hi - lo + 1));
      std::vector<int64_t> s;
      for (int64_t t = 0; t < len; ++t) s.push_back(1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(V - 1)));
      T = std::max(T, len);
      seqs.push_back(s);
    }
    auto ids = torch::zeros({per_batch, T}, torch::kLong);
    auto labels = torch::full({per_batch, T}, data::kIgnoreIndex, torch::kLong);
    auto mask = torch::zeros({per_batch, T}, torch::kLong);
    int64_t n = 0;
    for (int64_t i = 0; i < per_batch; ++i) {
      for (size_t t = 0; t < seqs[i].size(); ++t) {
        ids[i][static_cast<int64_t>(t)] = seqs[i][t];
        labels[i][static_cast<int64_t>(t)] = label_of(seqs[i][t]);
        mask[i][static_cast<int64_t>(t)] = 1;
        ++n;
      }
    }
    data::Batch batch;
    batch.tensors = {{"input_ids", ids}, {"labels", labels}, {"attention_mask", mask}};
    batch.n_examples = per_batch;
    batch.n_target_tokens = n;
    out.push_back(batch);
  }
  return out;
}

/// Batches in a per-epoch shuffled order (seeded by epoch), resumable from {epoch, pos}.
class VectorSource : public data::BatchSource {
 public:
  explicit VectorSource(std::vector<data::Batch> batches, bool shuffle = true)
      : batches_(std::move(batches)), shuffle_(shuffle) {
    start_epoch(0);
  }
  std::optional<data::Batch> next() override {
    if (pos_ >= static_cast<int64_t>(order_.size())) return std::nullopt;
    return batches_[static_cast<size_t>(order_[static_cast<size_t>(pos_++)])];
  }
  void start_epoch(int64_t epoch) override {
    epoch_ = epoch;
    pos_ = 0;
    order_.resize(batches_.size());
    std::iota(order_.begin(), order_.end(), 0);
    if (shuffle_) std::shuffle(order_.begin(), order_.end(), std::mt19937(static_cast<uint32_t>(1000 + epoch)));
  }
  nlohmann::json state() const override { return {{"epoch", epoch_}, {"pos", pos_}}; }
  void restore(const nlohmann::json& s) override {
    start_epoch(s.at("epoch").get<int64_t>());
    pos_ = s.at("pos").get<int64_t>();
  }
  std::optional<int64_t> batches_per_epoch() const override { return static_cast<int64_t>(batches_.size()); }

 private:
  std::vector<data::Batch> batches_;
  bool shuffle_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0, pos_ = 0;
};

/// Token accuracy over batches.
inline double token_accuracy(TinyModel& model, const std::vector<data::Batch>& batches) {
  torch::NoGradGuard no_grad;
  int64_t right = 0, total = 0;
  for (const auto& b : batches) {
    auto out = model.run(b);
    auto lg = out.logits;
    auto labels = b.at("labels");
    if (lg.size(1) != labels.size(1)) lg = lg.narrow(1, lg.size(1) - labels.size(1), labels.size(1));  // soft prompt
    const auto valid = labels.ne(data::kIgnoreIndex);
    right += lg.argmax(-1).eq(labels).logical_and(valid).sum().item<int64_t>();
    total += valid.sum().item<int64_t>();
  }
  return static_cast<double>(right) / static_cast<double>(total);
}

}  // namespace biolm::test
