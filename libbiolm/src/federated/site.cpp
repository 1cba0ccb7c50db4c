// biolm/federated/site.cpp: a federation's config and its sites' local training (site.h).
#include "biolm/federated/site.h"

#include <torch/torch.h>

#include <fstream>
#include <regex>
#include <algorithm>
#include <set>

#include "biolm/core/config.h"
#include "biolm/federated/aggregate.h"
#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/recipes/finetune.h"
#include "biolm/data/loader.h"
#include "biolm/io/init_source.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/accountant.h"
#include "biolm/train/dp.h"
#include "biolm/train/trainer.h"

namespace biolm::federated {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void check_file(const std::string& path, const std::string& key) {
  BIOLM_CHECK(fs::is_regular_file(path), ConfigError, key, "no such file: " + path);
}

}  // namespace

FederateSpec federate_spec_from_json(const json& tree) {
  FederateSpec s;
  s.tree = tree;
  core::ConfigReader r(tree);
  s.task = r.choice("task", tasks::task_names(), "ner");
  s.seed = static_cast<uint64_t>(r.get<int64_t>("seed", 13));
  s.output = r.get<std::string>("output", "runs/federate");
  s.device = r.get<std::string>("device", "cpu");
  auto& dr = r.child("data");
  s.dev_path = dr.require<std::string>("dev");
  s.test_path = dr.get<std::string>("test", s.dev_path);
  s.labels = dr.get<std::vector<std::string>>("labels", {});
  s.task_options.max_length = dr.get<int64_t>("max_length", 128);
  s.task_options.doc_stride = dr.get<int64_t>("doc_stride", -1);
  s.task_options.format = dr.get<std::string>("format", "");
  auto& tr = r.child("tokenizer");
  s.tokenizer_path = tr.optional<std::string>("path");
  s.tokenizer_train_on = tr.get<std::vector<std::string>>("train_on", {});
  s.tokenizer_vocab_size = tr.get<int64_t>("vocab_size", 2000);
  auto& er = r.child("eval");
  s.n_bootstrap = er.get<int64_t>("bootstrap", 1000);
  s.task_options.batch_size = er.get<int64_t>("batch_size", 32);
  s.model = r.raw("model") ? *r.raw("model") : json::object();
  s.peft = r.raw("peft") ? *r.raw("peft") : json::object();
  json train_json = r.raw("train") ? *r.raw("train") : json::object();
  s.batch_size = train_json.value("batch_size", int64_t{16});
  train_json.erase("batch_size");
  const json* sites = r.raw("sites");
  s.federation = federation_config_from_json(r.raw("federation") ? *r.raw("federation") : json::object());
  r.finish();

  BIOLM_CHECK(s.task != "instruct" && s.task != "qa-span" && s.task != "mcqa",
              ConfigError, "task", "federate runs ner, re, nli, sts and pubmedqa (encoder classification tasks)");
  core::check_range(s.task_options.max_length > 1, "data.max_length", "> 1", std::to_string(s.task_options.max_length));
  core::check_range(s.batch_size > 0, "train.batch_size", "> 0", std::to_string(s.batch_size));
  core::check_range(s.n_bootstrap >= 0, "eval.bootstrap", ">= 0", std::to_string(s.n_bootstrap));
  s.train = train::train_config_from_json(train_json, "train");
  BIOLM_CHECK(!s.train.resume, ConfigError, "train.resume",
              "a federation resumes by rounds (rerun the same command); local training never resumes");
  BIOLM_CHECK(s.train.eval_every == 0, ConfigError, "train.eval_every",
              "the server evaluates the global model every round; leave train.eval_every unset");
  BIOLM_CHECK(!s.train.dp || s.federation.algorithm != Algorithm::FedProx, ConfigError, "train.dp",
              "FedProx's proximal term is not a per-example loss: DP-SGD at the sites runs with FedAvg or FedAdam");
  BIOLM_CHECK(s.tokenizer_path || !s.tokenizer_train_on.empty() || s.model.contains("init"), ConfigError,
              "tokenizer", "give tokenizer.path, tokenizer.train_on (a public corpus) or model.init");
  if (s.tokenizer_path) check_file(*s.tokenizer_path, "tokenizer.path");
  for (size_t i = 0; i < s.tokenizer_train_on.size(); ++i) {
    check_file(s.tokenizer_train_on[i], "tokenizer.train_on[" + std::to_string(i) + "]");
  }
  check_file(s.dev_path, "data.dev");
  check_file(s.test_path, "data.test");

  // Default adapter targets as `biolm finetune`'s (docs/cli.md): LoRA on q/v, IA3 on k/v + FFN input.
  const std::string method = s.peft.value("method", std::string("full"));
  if ((method == "lora" || method == "hybrid") && !(s.peft.contains("lora") && s.peft["lora"].contains("targets"))) {
    s.peft["lora"]["targets"] = std::vector<std::string>{"**.q_proj", "**.v_proj"};
  }
  if (method == "ia3" && !(s.peft.contains("ia3") && s.peft["ia3"].contains("targets"))) {
    s.peft["ia3"]["targets"] = std::vector<std::string>{"**.k_proj", "**.v_proj"};
    s.peft["ia3"]["input_targets"] = std::vector<std::string>{"**.mlp.down"};
  }
  BIOLM_CHECK(method != "prompt", ConfigError, "peft.method", "federate exchanges full, lora, ia3 or hybrid models");
  (void)peft::method_config_from_json(s.peft, "peft");
  BIOLM_CHECK(method != "full" || s.federation.exchange == Exchange::Full, ConfigError, "federation.exchange",
              "peft.method: full trains every parameter: exchange: full");

  BIOLM_CHECK(sites && sites->is_array() && !sites->empty(), ConfigError, "sites",
              "expected a list of sites, each {name, train}");
  std::set<std::string> names;
  const std::regex name_re("[A-Za-z0-9_.-]+");
  for (size_t i = 0; i < sites->size(); ++i) {
    const std::string key = "sites[" + std::to_string(i) + "]";
    core::ConfigReader sr((*sites)[i], key);
    SiteSpec site;
    site.name = sr.require<std::string>("name");
    site.train = sr.require<std::string>("train");
    sr.finish();
    BIOLM_CHECK(std::regex_match(site.name, name_re), ConfigError, key + ".name",
                "use letters, digits, '_', '.', '-' (it names a directory), found \"" + site.name + "\"");
    BIOLM_CHECK(names.insert(site.name).second, ConfigError, key + ".name", "duplicate site name " + site.name);
    check_file(site.train, key + ".train");
    s.sites.push_back(site);
  }
  BIOLM_CHECK(s.federation.min_clients <= static_cast<int64_t>(s.sites.size()), ConfigError,
              "federation.min_clients", "more than the " + std::to_string(s.sites.size()) + " sites listed");
  return s;
}

void prepare_shared(FederateSpec& spec) {
  if (!spec.tokenizer_path && !spec.model.contains("init")) {
    const fs::path vocab = spec.output / "vocab.txt";
    if (!fs::exists(vocab)) {
      fs::create_directories(spec.output);
      tokenize::WordPieceTrainOptions wo;
      wo.vocab_size = spec.tokenizer_vocab_size;
      std::vector<fs::path> files(spec.tokenizer_train_on.begin(), spec.tokenizer_train_on.end());
      tokenize::train_wordpiece(files, wo, vocab);
    }
  }
  const bool ner = spec.task == "ner";
  if (spec.labels.empty()) {
    // Each site's labels as its task reads them from its training file (ner: entity types);
    // equal lists keep their order (nli, pubmedqa are fixed and ordered), otherwise the sorted
    // union over the sites.
    const auto tok = shared_tokenizer(spec);
    std::vector<std::vector<std::string>> per_site;
    for (const auto& site : spec.sites) {
      auto t = tasks::make_task(spec.task, spec.task_options);
      (void)t->featurize_train(*tok, site.train);
      std::vector<std::string> names;
      for (const auto& n : t->labels().names()) {
        if (!ner) names.push_back(n);
        else if (n.rfind("B-", 0) == 0) names.push_back(n.substr(2));
      }
      per_site.push_back(std::move(names));
    }
    const bool same = std::all_of(per_site.begin(), per_site.end(), [&](const auto& l) { return l == per_site.front(); });
    if (same && !per_site.empty()) {
      spec.labels = per_site.front();
    } else {
      std::set<std::string> all;
      for (const auto& l : per_site) all.insert(l.begin(), l.end());
      spec.labels.assign(all.begin(), all.end());
    }
  }
  spec.label_map = ner ? data::LabelMap::from_types(spec.labels) : data::LabelMap::from_names(spec.labels);
}

std::unique_ptr<tasks::Task> make_site_task(const FederateSpec& spec) {
  auto task = tasks::make_task(spec.task, spec.task_options);
  task->set_labels(spec.label_map);
  return task;
}

std::shared_ptr<tokenize::Tokenizer> shared_tokenizer(const FederateSpec& spec) {
  if (spec.tokenizer_path) return tokenize::load_tokenizer(*spec.tokenizer_path);
  if (spec.model.contains("init")) {
    json m = spec.model;
    const auto init = io::take_init_source(m, /*need_tokenizer=*/true);
    return tokenize::load_tokenizer(init->tokenizer_path);
  }
  const fs::path vocab = spec.output / "vocab.txt";
  BIOLM_CHECK(fs::exists(vocab), ConfigError, "tokenizer.train_on",
              vocab.string() + " does not exist yet: call federated::prepare_shared(spec) first");
  return tokenize::WordPieceTokenizer::from_vocab_file(vocab, {});
}

LocalTrainer::LocalTrainer(const FederateSpec& spec, int64_t site) : spec_(spec), site_(site) {
  BIOLM_CHECK(site >= -1 && site < static_cast<int64_t>(spec.sites.size()), ConfigError, "sites",
              "no site " + std::to_string(site) + " (" + std::to_string(spec.sites.size()) + " listed)");
  BIOLM_CHECK(spec_.label_map.size() > 0 || spec_.task == "sts", ConfigError, "data.labels",
              "no labels: call federated::prepare_shared(spec) first");
  name_ = site >= 0 ? spec.sites[static_cast<size_t>(site)].name : "server";
  tok_ = shared_tokenizer(spec_);

  json mj = spec_.model;
  const auto init = io::take_init_source(mj, /*need_tokenizer=*/false);
  if (init) {
    json cj = models::to_json(init->config);
    for (const auto& [key, value] : mj.items()) cj[key] = value;
    mj = cj;
  } else {
    if (!mj.contains("preset")) mj["preset"] = "tiny-encoder";
    mj["vocab_size"] = tok_->vocab_size();
    mj["pad_token_id"] = tok_->special().pad.value_or(0);
    if (!mj.contains("max_positions")) mj["max_positions"] = std::max<int64_t>(512, spec_.task_options.max_length);
  }
  const auto mcfg = models::config_from_json(mj, "model");
  // Same seed everywhere: every site and the server start from the same weights.
  core::seed_all(spec_.seed);
  task_ = make_site_task(spec_);
  model_ = models::make_task_model(mcfg, task_->head_kind(), task_->n_labels());
  if (init) (void)io::load_init_weights(*model_, *init);
  json pj = spec_.peft;
  const std::string method = pj.value("method", std::string("full"));
  if (method != "full" && !pj.contains("train_patterns")) {
    const auto head = models::task_head_patterns(*model_);
    if (!head.empty()) pj["train_patterns"] = head;
  }
  const auto summary = peft::apply(*model_, peft::method_config_from_json(pj, "peft"));
  lr_scales_ = summary.lr_scales;
  model_->to(core::parse_device(spec_.device));
  if (spec_.federation.exchange == Exchange::Full) {
    for (const auto& p : model_->named_parameters(true)) exchanged_names_.push_back(p.key());
  } else {
    exchanged_names_ = summary.trainable_names;
  }
  std::sort(exchanged_names_.begin(), exchanged_names_.end());

  if (site >= 0) {
    const auto& path = spec_.sites[static_cast<size_t>(site)].train;
    auto d = task_->featurize(*tok_, path);
    n_examples_ = d->n_examples();  // examples (sentences), not the windows long ones split into
    BIOLM_CHECK(n_examples_ > 0, DataError, path, 0, "", "site " + name_ + " has no training example");
    rows_ = std::move(d->rows);
    if (spec_.train.dp) plan_privacy();
  }
}

int64_t LocalTrainer::local_steps() const {
  const auto& fed = spec_.federation;
  const auto n_rows = static_cast<int64_t>(rows_.size());
  const int64_t per_epoch = (n_rows + spec_.batch_size - 1) / spec_.batch_size;
  return fed.local_steps ? *fed.local_steps : *fed.local_epochs * per_epoch;
}

// DP-SGD at a site protects each of the site's own training examples over the whole federation:
// the site's RDP accountant composes every local step of every round the site is sampled in.
// sample_clients is a pure function of (seed, round), so the rounds are known before the first
// one and again after a resume, without any stored state. σ is train.dp.noise_multiplier, or
// the one whose total over this site's rounds spends at most train.dp.target_epsilon. What the
// server does with the updates (averaging, FedAdam) is post-processing and spends nothing.
void LocalTrainer::plan_privacy() {
  const auto& fed = spec_.federation;
  const auto& dp = *spec_.train.dp;
  dp_q_ = std::min(1.0, static_cast<double>(spec_.batch_size * spec_.train.grad_accum) /
                            static_cast<double>(rows_.size()));
  dp_rounds_.clear();
  for (int64_t r = 1; r <= fed.rounds; ++r) {
    const auto chosen = sample_clients(static_cast<int64_t>(spec_.sites.size()), fed.fraction, fed.min_clients,
                                       spec_.seed, r);
    if (std::find(chosen.begin(), chosen.end(), site_) != chosen.end()) dp_rounds_.push_back(r);
  }
  const int64_t total = local_steps() * static_cast<int64_t>(dp_rounds_.size());
  dp_sigma_ = dp.noise_multiplier ? *dp.noise_multiplier
                                  : train::rdp_noise_multiplier(*dp.target_epsilon, dp.delta, dp_q_, std::max<int64_t>(1, total));
  log::info("federation: site {} trains with DP-SGD: sigma {:.4g}, q {:.4g}, {} rounds x {} steps", name_, dp_sigma_,
            dp_q_, dp_rounds_.size(), local_steps());
}

nlohmann::json LocalTrainer::privacy_after(int64_t round, int64_t steps_this_round) const {
  train::RdpAccountant acc;
  int64_t rounds = 0;
  for (const auto r : dp_rounds_) {
    if (r > round) break;
    acc.step(dp_sigma_, dp_q_, r == round ? steps_this_round : local_steps());
    ++rounds;
  }
  const double delta = spec_.train.dp->delta;
  return {{"epsilon", acc.epsilon(delta)}, {"delta", delta}, {"noise_multiplier", dp_sigma_}, {"sample_rate", dp_q_},
          {"steps", acc.steps()}, {"rounds", rounds}, {"accountant", "rdp"}};
}

TensorMap LocalTrainer::exchanged() const {
  TensorMap out;
  const auto named = model_->named_parameters(true);
  for (const auto& name : exchanged_names_) out[name] = named[name].detach().to(torch::kCPU).clone();
  return out;
}

void LocalTrainer::set_exchanged(const TensorMap& tensors) {
  auto named = model_->named_parameters(true);
  for (const auto& name : exchanged_names_) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw CheckpointError("", name, "the exchanged tensors lack this " + to_string(spec_.federation.exchange) + " tensor");
    auto& p = named[name];
    if (!it->second.sizes().equals(p.sizes())) {
      throw CheckpointError("", name, "shape " + c10::str(it->second.sizes()) + ", the model's is " + c10::str(p.sizes()));
    }
    torch::NoGradGuard no_grad;
    p.copy_(it->second);
  }
  if (tensors.size() != exchanged_names_.size()) {
    for (const auto& [name, t] : tensors) {
      if (!std::binary_search(exchanged_names_.begin(), exchanged_names_.end(), name)) {
        throw CheckpointError("", name, "not an exchanged tensor of this model (federation.exchange: " +
                                            to_string(spec_.federation.exchange) + ")");
      }
    }
  }
}

Update LocalTrainer::train(int64_t round, const TensorMap& global, std::optional<int64_t> max_steps,
                           std::optional<double> proximal_mu) {
  BIOLM_CHECK(site_ >= 0, Error, "LocalTrainer: the server's model has no training data");
  set_exchanged(global);
  const auto& fed = spec_.federation;
  auto tcfg = spec_.train;
  const uint64_t seed = data::mix_seed(data::mix_seed(spec_.seed, static_cast<uint64_t>(site_)), static_cast<uint64_t>(round));
  tcfg.max_steps = max_steps ? *max_steps : local_steps();
  if (tcfg.dp) {
    BIOLM_CHECK(std::find(dp_rounds_.begin(), dp_rounds_.end(), round) != dp_rounds_.end(), ConfigError,
                "federation", fmt::format("site {} is not sampled in round {} of this federation: its privacy "
                                          "accounting covers the rounds sample_clients gives it", name_, round));
    tcfg.dp->noise_multiplier = dp_sigma_;  // planned over all of this site's rounds
    tcfg.dp->target_epsilon.reset();
  }
  tcfg.seed = seed;
  tcfg.run_dir = (spec_.output / "sites" / name_).string();
  tcfg.device = spec_.device;
  tcfg.log_every = std::max<int64_t>(1, tcfg.max_steps);
  tcfg.checkpoint_every = 0;
  tcfg.keep_last = 1;
  tcfg.save_adapter_only = fed.exchange == Exchange::Adapters;
  tcfg.handle_signals = false;

  // The fine-tuning recipe's loader (recipes/finetune.h): its collate, shuffling and DP-SGD sampling.
  recipes::TrainLoaderOptions lo;
  lo.pad_id = tok_->special().pad.value_or(0);
  lo.batch_size = spec_.batch_size;
  lo.seed = seed;
  lo.dp = tcfg.dp.has_value();
  lo.grad_accum = tcfg.grad_accum;
  lo.prefetch = 0;
  const auto loader = recipes::make_train_loader(rows_, lo);

  train::TrainResult result;
  const double mu = proximal_mu ? *proximal_mu : fed.algorithm == Algorithm::FedProx ? fed.mu : 0.0;
  BIOLM_CHECK(mu >= 0.0, ConfigError, "federation.mu", "must be >= 0, got " + std::to_string(mu));
  BIOLM_CHECK(mu == 0.0 || !tcfg.dp, ConfigError, "federation.mu",
              "FedProx's proximal term is not a per-example loss: DP-SGD (train.dp) runs with mu = 0");
  if (mu > 0.0) {
    ProximalModel prox(model_, mu, global);
    std::map<std::string, double> scales;
    for (const auto& [name, v] : lr_scales_) scales["model." + name] = v;
    train::Trainer trainer(prox, tcfg);
    trainer.set_lr_scales(scales);
    trainer.set_run_info({{"site", name_}, {"round", round}});
    result = trainer.fit(*loader);
  } else {
    train::Trainer trainer(*model_, tcfg);
    trainer.set_lr_scales(lr_scales_);
    trainer.set_run_info({{"site", name_}, {"round", round}});
    result = trainer.fit(*loader);
  }
  Update u;
  u.tensors = exchanged();
  u.n_examples = n_examples_;
  u.steps = result.step;
  u.train_loss = result.history.empty() ? 0.0 : result.history.back().loss;
  if (tcfg.dp) u.privacy = privacy_after(round, result.step);
  return u;
}

json LocalTrainer::evaluate(const std::string& path, int64_t n_bootstrap) const {
  return task_->evaluate_file(*model_, *tok_, path, n_bootstrap, spec_.seed);
}

}  // namespace biolm::federated
