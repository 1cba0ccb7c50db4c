// DP-SGD: Poisson sampling, per-example gradients from recorded activations, clipping and noise
// (see biolm/train/dp.h; reference: Opacus 1.6, grad_sample/linear.py, optimizers/optimizer.py).
#include "biolm/train/dp.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <random>
#include <set>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/nn/linear.h"
#include "biolm/peft/lora.h"
#include "biolm/models/trainable.h"

namespace biolm::train {

// ---------------------------------------------------------------- Poisson sampling

PoissonLoader::PoissonLoader(std::shared_ptr<const data::Dataset> dataset, data::Collator collator, PoissonOptions opts)
    : dataset_(std::move(dataset)), collator_(std::move(collator)), opts_(opts) {
  BIOLM_CHECK(dataset_ != nullptr, ConfigError, "data.loader", "no dataset");
  n_ = dataset_->size();
  BIOLM_CHECK(n_ > 0, ConfigError, "data.train", "the training set is empty");
  BIOLM_CHECK(opts_.sample_rate > 0 && opts_.sample_rate <= 1, ConfigError, "train.dp.sample_rate",
              fmt::format("must be in (0, 1], got {}", opts_.sample_rate));
  BIOLM_CHECK(opts_.micro_batches > 0, ConfigError, "train.grad_accum", "must be > 0");
  start_epoch(0);
}

int64_t PoissonLoader::steps_per_epoch() const {
  return std::max<int64_t>(1, static_cast<int64_t>(1.0 / opts_.sample_rate));  // Opacus: int(1 / sample_rate)
}

std::vector<int64_t> PoissonLoader::logical_batch(int64_t epoch, int64_t k) const {
  std::mt19937_64 rng(data::mix_seed(data::mix_seed(opts_.seed, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(k)));
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n_; ++i) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // uniform on [0, 1), 53 bits
    if (u < opts_.sample_rate) out.push_back(i);
  }
  return out;
}

void PoissonLoader::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  micro_ = 0;
  cached_k_ = -1;
}

std::optional<data::Batch> PoissonLoader::next() {
  if (micro_ >= steps_per_epoch() * opts_.micro_batches) return std::nullopt;
  const int64_t k = micro_ / opts_.micro_batches, m = micro_ % opts_.micro_batches;
  if (k != cached_k_) {
    cached_ = logical_batch(epoch_, k);
    cached_k_ = k;
  }
  const auto L = static_cast<int64_t>(cached_.size());
  const int64_t chunk = (L + opts_.micro_batches - 1) / opts_.micro_batches;
  const int64_t lo = std::min(L, m * chunk), hi = std::min(L, (m + 1) * chunk);
  micro_ += 1;
  if (lo == hi) return data::Batch{};  // an empty micro-batch: the step still adds its noise
  std::vector<data::Features> rows;
  for (int64_t i = lo; i < hi; ++i) rows.push_back(dataset_->get(cached_[static_cast<size_t>(i)]));
  const uint64_t seed = data::mix_seed(
      data::mix_seed(data::mix_seed(opts_.seed, static_cast<uint64_t>(epoch_)), static_cast<uint64_t>(k)),
      static_cast<uint64_t>(m));
  data::Batch b = collator_(std::move(rows), seed);
  b.n_examples = hi - lo;
  return b;
}

nlohmann::json PoissonLoader::state() const {
  return {{"epoch", epoch_},       {"micro", micro_},
          {"seed", opts_.seed},    {"sample_rate", opts_.sample_rate},
          {"micro_batches", opts_.micro_batches}, {"n_samples", n_}};
}

void PoissonLoader::restore(const nlohmann::json& s) {
  auto same = [&](const char* key, const nlohmann::json& mine) {
    BIOLM_CHECK(s.contains(key) && s.at(key) == mine, ConfigError, std::string("loader.") + key,
                "the checkpoint's Poisson loader had " + (s.contains(key) ? s.at(key).dump() : std::string("none")) +
                    ", this run has " + mine.dump());
  };
  same("seed", opts_.seed);
  same("sample_rate", opts_.sample_rate);
  same("micro_batches", opts_.micro_batches);
  same("n_samples", n_);
  start_epoch(s.at("epoch").get<int64_t>());
  micro_ = s.at("micro").get<int64_t>();
}

// ---------------------------------------------------------------- per-example gradients

/// One nn::Linear whose weight, bias or LoRA adapter is trained. Indices point into the
/// engine's trainable list (-1: frozen). One entry per forward call of the layer in the
/// micro-batch (a layer may be called more than once).
struct DpEngine::Site {
  std::string name;
  nn::LinearImpl* linear = nullptr;
  peft::LoraAdapterImpl* lora = nullptr;
  int weight = -1, bias = -1, lora_a = -1, lora_b = -1;
  std::vector<torch::Tensor> x, h, u, dy;
  torch::Tensor pending_h, pending_u;  // from the adapter's tap, claimed by the Linear's tap of the same call
};

namespace {

const torch::TensorImpl* key(const torch::Tensor& t) { return t.unsafeGetTensorImpl(); }

/// (B*k, ..., C) -> (B, rows, C), refusing rows that are not whole examples.
torch::Tensor per_example_rows(const torch::Tensor& t, int64_t B, const std::string& site) {
  BIOLM_CHECK(t.dim() >= 2 && B > 0 && t.size(0) % B == 0, Error,
              fmt::format("train.dp: layer '{}' saw an input with leading size {} for a micro-batch of {} examples: "
                          "its rows do not follow the examples (rows gathered across the batch?), so per-example "
                          "gradients cannot be formed",
                          site, t.dim() ? t.size(0) : 0, B));
  return t.reshape({B, -1, t.size(-1)});
}

void add_into(torch::Tensor& acc, const torch::Tensor& g) { acc = acc.defined() ? acc + g : g; }

}  // namespace

DpEngine::DpEngine(torch::nn::Module& model, std::vector<torch::Tensor> trainable) : trainable_(std::move(trainable)) {
  BIOLM_CHECK(!trainable_.empty(), ConfigError, "train.dp", "the model has no trainable tensor");
  if (const auto* tm = dynamic_cast<const models::TrainableModel*>(&model)) {
    if (auto why = tm->dp_refusal()) throw ConfigError("train.dp", "this model cannot train with DP-SGD: " + *why);
  }
  std::map<const torch::TensorImpl*, int> index;
  for (size_t i = 0; i < trainable_.size(); ++i) index[key(trainable_[i])] = static_cast<int>(i);
  names_.assign(trainable_.size(), "");
  for (const auto& item : model.named_parameters(true)) {
    const auto it = index.find(key(item.value()));
    if (it != index.end() && names_[static_cast<size_t>(it->second)].empty()) names_[static_cast<size_t>(it->second)] = item.key();
  }
  std::set<int> covered;
  auto slot = [&](const torch::Tensor& t) {
    if (!t.defined()) return -1;
    const auto it = index.find(key(t));
    if (it == index.end()) return -1;
    covered.insert(it->second);
    return it->second;
  };
  // The model itself (a bare Linear) and its submodules; include_self would need the model in a
  // shared_ptr.
  std::vector<std::pair<std::string, torch::nn::Module*>> modules{{"", &model}};
  for (const auto& item : model.named_modules("", /*include_self=*/false)) modules.emplace_back(item.key(), item.value().get());
  for (const auto& [module_name, module] : modules) {
    auto* lin = dynamic_cast<nn::LinearImpl*>(module);
    if (!lin) continue;
    auto site = std::make_shared<Site>();
    site->name = module_name;
    site->linear = lin;
    site->weight = slot(lin->weight);
    site->bias = slot(lin->bias);
    if (lin->adapter() && !lin->merged()) {
      if (auto* lora = dynamic_cast<peft::LoraAdapterImpl*>(lin->adapter().get())) {
        site->lora = lora;
        site->lora_a = slot(lora->lora_a);
        site->lora_b = slot(lora->lora_b);
      }
    }
    if (site->weight < 0 && site->bias < 0 && site->lora_a < 0 && site->lora_b < 0) continue;
    sites_.push_back(site);
  }
  std::string missing;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    if (!covered.count(static_cast<int>(i))) missing += (missing.empty() ? "" : ", ") + names_[i];
  }
  BIOLM_CHECK(missing.empty(), ConfigError, "train.dp",
              "per-example gradients are computed for nn::Linear weights and biases and LoRA adapters only; these "
              "trainable tensors are neither: " + missing +
                  " (freeze them: peft.method lora, or peft.train_patterns naming Linear heads only)");
  for (auto& site : sites_) {
    Site* s = site.get();
    if (s->lora) {
      s->lora->forward_tap = [s](const torch::Tensor& h, const torch::Tensor& u) {
        if (!torch::GradMode::is_enabled()) return;
        s->pending_h = s->lora_a >= 0 ? h.detach() : torch::Tensor();
        s->pending_u = s->lora_b >= 0 ? u.detach() : torch::Tensor();
      };
    }
    std::weak_ptr<Site> weak = site;
    s->linear->forward_tap = [s, weak](const torch::Tensor& x, const torch::Tensor& y) {
      if (!torch::GradMode::is_enabled() || !y.requires_grad()) {
        s->pending_h = s->pending_u = torch::Tensor();
        return;
      }
      s->x.push_back(s->weight >= 0 ? x.detach() : torch::Tensor());
      s->h.push_back(s->pending_h);
      s->u.push_back(s->pending_u);
      s->pending_h = s->pending_u = torch::Tensor();
      const size_t call = s->dy.size();
      s->dy.emplace_back();
      y.register_hook([weak, call](const torch::Tensor& grad) {
        if (auto site = weak.lock()) {
          if (call < site->dy.size()) site->dy[call] = grad.detach();
        }
      });
    };
  }
  reset_step();
}

DpEngine::~DpEngine() {
  for (auto& s : sites_) {
    s->linear->forward_tap = nullptr;
    if (s->lora) s->lora->forward_tap = nullptr;
  }
}

void DpEngine::begin_micro_batch(int64_t n_examples) {
  for (auto& s : sites_) {
    s->x.clear();
    s->h.clear();
    s->u.clear();
    s->dy.clear();
  }
  n_examples_ = n_examples;
}

namespace {
std::vector<torch::Tensor> compute_grads(const std::vector<std::shared_ptr<DpEngine::Site>>& sites,
                                         const std::vector<torch::Tensor>& trainable, int64_t B) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> g(trainable.size());
  for (const auto& sp : sites) {
    const auto& s = *sp;
    for (size_t c = 0; c < s.dy.size(); ++c) {
      if (!s.dy[c].defined()) continue;  // no gradient flowed through this call
      // Per-example gradients in at least float32 (bf16 autocast activations are upcast).
      const auto& like = trainable[static_cast<size_t>(
          s.weight >= 0 ? s.weight : s.bias >= 0 ? s.bias : s.lora_a >= 0 ? s.lora_a : s.lora_b)];
      const auto dtype = torch::promote_types(like.scalar_type(), torch::kFloat32);
      const auto dy = per_example_rows(s.dy[c].to(dtype), B, s.name);  // (B,R,out)
      if (s.weight >= 0) {
        const auto x = per_example_rows(s.x[c].to(dtype), B, s.name);  // (B,R,in)
        add_into(g[static_cast<size_t>(s.weight)], torch::bmm(dy.transpose(1, 2), x));  // (B,out,in)
      }
      if (s.bias >= 0) add_into(g[static_cast<size_t>(s.bias)], dy.sum(1));  // (B,out)
      if (s.lora) {
        const double scale = s.lora->scaling();
        if (s.lora_b >= 0) {
          const auto u = per_example_rows(s.u[c].to(dtype), B, s.name);  // (B,R,r)
          add_into(g[static_cast<size_t>(s.lora_b)], torch::bmm(dy.transpose(1, 2), u).mul_(scale));  // (B,out,r)
        }
        if (s.lora_a >= 0) {
          const auto h = per_example_rows(s.h[c].to(dtype), B, s.name);  // (B,R,in)
          const auto dyb = torch::matmul(dy, s.lora->lora_b.detach().to(dtype));  // (B,R,r)
          add_into(g[static_cast<size_t>(s.lora_a)], torch::bmm(dyb.transpose(1, 2), h).mul_(scale));  // (B,r,in)
        }
      }
    }
  }
  return g;
}

}  // namespace

std::map<std::string, torch::Tensor> DpEngine::per_example_grads() const {
  const auto g = compute_grads(sites_, trainable_, n_examples_);
  std::map<std::string, torch::Tensor> out;
  for (size_t i = 0; i < g.size(); ++i) {
    std::vector<int64_t> shape{n_examples_};
    for (auto d : trainable_[i].sizes()) shape.push_back(d);
    out[names_[i]] = g[i].defined() ? g[i] : torch::zeros(shape, trainable_[i].options());
  }
  return out;
}

torch::Tensor DpEngine::clip_and_accumulate(double max_grad_norm) {
  const int64_t B = n_examples_;
  auto g = compute_grads(sites_, trainable_, B);
  torch::NoGradGuard no_grad;
  if (!checked_) {
    // Once: the per-example gradients must add up to what autograd computed. They do not when a
    // tensor is also used outside the layer that records it (tied embeddings, shared weights).
    bool any = false;
    for (size_t i = 0; i < g.size(); ++i) {
      const auto& grad = trainable_[i].grad();
      if (!grad.defined() && !g[i].defined()) continue;
      any = true;
      const auto ref = grad.defined() ? grad.to(torch::kFloat64) : torch::zeros(trainable_[i].sizes(), torch::kFloat64);
      const auto sum = g[i].defined() ? g[i].sum(0).to(torch::kFloat64) : torch::zeros_like(ref);
      const double diff = (sum - ref).abs().max().item<double>();
      const double scale = std::max(ref.abs().max().item<double>(), 1e-12);
      BIOLM_CHECK(diff <= 1e-3 * scale, Error,
                  fmt::format("train.dp: the per-example gradients of '{}' do not add up to its gradient (max "
                              "|sum_b g_b - grad| = {:.3g}, max |grad| = {:.3g}): the tensor is used outside the "
                              "layer that records it (tied or shared weights?); DP-SGD cannot bound its "
                              "per-example contribution",
                              names_[i], diff, scale));
    }
    checked_ = any;
  }
  torch::Tensor norms;
  if (B > 0) {
    // Norms in the per-example gradients' dtype (float32 at least; float64 models keep float64).
    auto dtype = torch::kFloat32;
    for (const auto& gi : g) {
      if (gi.defined()) dtype = torch::promote_types(dtype, gi.scalar_type());
    }
    auto sq = torch::zeros({B}, torch::TensorOptions().dtype(dtype).device(trainable_.front().device()));
    for (const auto& gi : g) {
      if (gi.defined()) sq = sq + gi.reshape({B, -1}).pow(2).sum(1).to(sq.scalar_type());
    }
    norms = sq.sqrt();
    // Opacus: per_sample_clip_factor = (max_grad_norm / (per_sample_norms + 1e-6)).clamp(max=1.0)
    const auto factor = (max_grad_norm / (norms + 1e-6)).clamp_max(1.0);
    for (size_t i = 0; i < g.size(); ++i) {
      if (!g[i].defined()) continue;
      sum_[i].add_(torch::tensordot(factor.to(g[i].scalar_type()), g[i], {0}, {0}).to(sum_[i].scalar_type()));
    }
  }
  for (auto& p : trainable_) p.mutable_grad().reset();
  begin_micro_batch(0);
  return norms;
}

void DpEngine::finish_step(double noise_multiplier, double max_grad_norm, double expected_batch_size) {
  BIOLM_CHECK(expected_batch_size > 0, Error, "train.dp: expected batch size must be > 0");
  const double std = noise_multiplier == 0 ? 0.0 : noise_multiplier * max_grad_norm;
  BIOLM_CHECK(std::isfinite(std), ConfigError, "train.dp.max_grad_norm",
              "noise needs a finite max_grad_norm (noise std = noise_multiplier * max_grad_norm)");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    auto g = sum_[i];
    if (std > 0) g = g + torch::randn(g.sizes(), g.options()) * std;  // global generator: seeded, checkpointed
    trainable_[i].mutable_grad() = g / expected_batch_size;
  }
  reset_step();
}

void DpEngine::reset_step() {
  sum_.clear();
  for (const auto& p : trainable_) sum_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous).detach());
  begin_micro_batch(0);
}

nlohmann::json privacy_report(const DpConfig& c, double noise_multiplier, double sample_rate, int64_t dataset_size,
                              const RdpAccountant& accountant) {
  const double eps = accountant.epsilon(c.delta);
  return {{"mechanism", "DP-SGD (Poisson-sampled Gaussian)"},
          {"accountant", "rdp"},
          {"epsilon", std::isfinite(eps) ? nlohmann::json(eps) : nlohmann::json("inf")},
          {"delta", c.delta},
          {"noise_multiplier", noise_multiplier},
          {"max_grad_norm", c.max_grad_norm},
          {"sample_rate", sample_rate},
          {"dataset_size", dataset_size},
          {"expected_batch_size", sample_rate * static_cast<double>(dataset_size)},
          {"steps", accountant.steps()},
          {"target_epsilon", c.target_epsilon ? nlohmann::json(*c.target_epsilon) : nlohmann::json(nullptr)},
          {"unit", "example (one row of the training set)"}};
}

}  // namespace biolm::train
