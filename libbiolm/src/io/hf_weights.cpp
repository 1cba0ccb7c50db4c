// Hugging Face weight names <-> ours (the one table), loading and saving HF model directories.
#include "biolm/io/hf_weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/io/safetensors.h"
#include "biolm/io/torch_pickle.h"
#include "biolm/models/task_model.h"
#include "biolm/nn/linear.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"

namespace biolm::io {
namespace {

using models::ModelConfig;
using models::TaskKind;

// Architecture bits of a table row.
constexpr unsigned kBert = 1u << static_cast<int>(HfArch::Bert);
constexpr unsigned kMegatron = 1u << static_cast<int>(HfArch::MegatronBert);
constexpr unsigned kGpt2 = 1u << static_cast<int>(HfArch::Gpt2);
constexpr unsigned kLlama = (1u << static_cast<int>(HfArch::Llama)) | (1u << static_cast<int>(HfArch::Mistral));
constexpr unsigned kEncoders = kBert | kMegatron;
constexpr unsigned kAll = kEncoders | kGpt2 | kLlama;

// Task bits of a table row: which transformers classes hold the tensor.
constexpr unsigned task_bit(TaskKind t) { return 1u << static_cast<int>(t); }
constexpr unsigned kMlm = task_bit(TaskKind::MaskedLM);
constexpr unsigned kCausal = task_bit(TaskKind::CausalLM);
constexpr unsigned kTok = task_bit(TaskKind::TokenClassification);
constexpr unsigned kSeq = task_bit(TaskKind::SequenceClassification) | task_bit(TaskKind::Regression);
constexpr unsigned kQa = task_bit(TaskKind::SpanQA);
constexpr unsigned kMc = task_bit(TaskKind::MultipleChoice);
constexpr unsigned kAnyTask = ~0u;

struct WeightRule {
  unsigned archs;
  unsigned tasks;
  const char* ours;  // {b} = our body prefix, {i} = layer index
  const char* hf;    // {B} = HF body prefix ("bert.", "transformer.", "model." or ""), {i} = layer
  HfTransform transform;
  int part;
};
constexpr HfTransform kCopy = HfTransform::Copy;
constexpr HfTransform kConv = HfTransform::Conv1D;
constexpr HfTransform kQkv = HfTransform::FusedQkv;

// Every weight name we know, both directions. Names of transformers' modules:
// modeling_bert.py (BertEmbeddings, BertSelfAttention, BertSelfOutput, BertIntermediate,
// BertOutput, BertPooler, BertLMPredictionHead), modeling_megatron_bert.py (attention.ln, ln,
// encoder.ln), modeling_gpt2.py (wte, wpe, h.i.ln_1/attn.c_attn/attn.c_proj/ln_2/mlp.c_fc/mlp.c_proj,
// ln_f), modeling_llama.py / modeling_mistral.py (embed_tokens, self_attn.*_proj, mlp.*_proj,
// input_layernorm, post_attention_layernorm, norm).
// clang-format off
const WeightRule kWeightTable[] = {
  // ---- embeddings
  {kEncoders, kAnyTask, "{b}embeddings.tok.weight",  "{B}embeddings.word_embeddings.weight",       kCopy, 0},
  {kEncoders, kAnyTask, "{b}embeddings.pos.weight",  "{B}embeddings.position_embeddings.weight",   kCopy, 0},
  {kEncoders, kAnyTask, "{b}embeddings.type.weight", "{B}embeddings.token_type_embeddings.weight", kCopy, 0},
  {kBert, kAnyTask,     "{b}embeddings.norm.weight", "{B}embeddings.LayerNorm.weight",             kCopy, 0},
  {kBert, kAnyTask,     "{b}embeddings.norm.bias",   "{B}embeddings.LayerNorm.bias",               kCopy, 0},
  {kGpt2, kAnyTask,     "{b}embeddings.tok.weight",  "{B}wte.weight",                              kCopy, 0},
  {kGpt2, kAnyTask,     "{b}embeddings.pos.weight",  "{B}wpe.weight",                              kCopy, 0},
  {kLlama, kAnyTask,    "{b}embeddings.tok.weight",  "{B}embed_tokens.weight",                     kCopy, 0},
  // ---- attention
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.q_proj.weight", "{B}encoder.layer.{i}.attention.self.query.weight", kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.q_proj.bias",   "{B}encoder.layer.{i}.attention.self.query.bias",   kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.k_proj.weight", "{B}encoder.layer.{i}.attention.self.key.weight",   kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.k_proj.bias",   "{B}encoder.layer.{i}.attention.self.key.bias",     kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.v_proj.weight", "{B}encoder.layer.{i}.attention.self.value.weight", kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.v_proj.bias",   "{B}encoder.layer.{i}.attention.self.value.bias",   kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.o_proj.weight", "{B}encoder.layer.{i}.attention.output.dense.weight", kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.attn.o_proj.bias",   "{B}encoder.layer.{i}.attention.output.dense.bias",   kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.q_proj.weight", "{B}h.{i}.attn.c_attn.weight", kQkv, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.k_proj.weight", "{B}h.{i}.attn.c_attn.weight", kQkv, 1},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.v_proj.weight", "{B}h.{i}.attn.c_attn.weight", kQkv, 2},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.q_proj.bias",   "{B}h.{i}.attn.c_attn.bias",   kQkv, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.k_proj.bias",   "{B}h.{i}.attn.c_attn.bias",   kQkv, 1},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.v_proj.bias",   "{B}h.{i}.attn.c_attn.bias",   kQkv, 2},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.o_proj.weight", "{B}h.{i}.attn.c_proj.weight", kConv, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn.o_proj.bias",   "{B}h.{i}.attn.c_proj.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.q_proj.weight", "{B}layers.{i}.self_attn.q_proj.weight", kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.q_proj.bias",   "{B}layers.{i}.self_attn.q_proj.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.k_proj.weight", "{B}layers.{i}.self_attn.k_proj.weight", kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.k_proj.bias",   "{B}layers.{i}.self_attn.k_proj.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.v_proj.weight", "{B}layers.{i}.self_attn.v_proj.weight", kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.v_proj.bias",   "{B}layers.{i}.self_attn.v_proj.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.o_proj.weight", "{B}layers.{i}.self_attn.o_proj.weight", kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn.o_proj.bias",   "{B}layers.{i}.self_attn.o_proj.bias",   kCopy, 0},
  // ---- norms (BERT post-LN: attn_norm follows attention, mlp_norm follows the FFN)
  {kBert, kAnyTask,     "{b}layers.{i}.attn_norm.weight", "{B}encoder.layer.{i}.attention.output.LayerNorm.weight", kCopy, 0},
  {kBert, kAnyTask,     "{b}layers.{i}.attn_norm.bias",   "{B}encoder.layer.{i}.attention.output.LayerNorm.bias",   kCopy, 0},
  {kBert, kAnyTask,     "{b}layers.{i}.mlp_norm.weight",  "{B}encoder.layer.{i}.output.LayerNorm.weight",           kCopy, 0},
  {kBert, kAnyTask,     "{b}layers.{i}.mlp_norm.bias",    "{B}encoder.layer.{i}.output.LayerNorm.bias",             kCopy, 0},
  {kMegatron, kAnyTask, "{b}layers.{i}.attn_norm.weight", "{B}encoder.layer.{i}.attention.ln.weight", kCopy, 0},
  {kMegatron, kAnyTask, "{b}layers.{i}.attn_norm.bias",   "{B}encoder.layer.{i}.attention.ln.bias",   kCopy, 0},
  {kMegatron, kAnyTask, "{b}layers.{i}.mlp_norm.weight",  "{B}encoder.layer.{i}.ln.weight",           kCopy, 0},
  {kMegatron, kAnyTask, "{b}layers.{i}.mlp_norm.bias",    "{B}encoder.layer.{i}.ln.bias",             kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn_norm.weight", "{B}h.{i}.ln_1.weight", kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.attn_norm.bias",   "{B}h.{i}.ln_1.bias",   kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.mlp_norm.weight",  "{B}h.{i}.ln_2.weight", kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.mlp_norm.bias",    "{B}h.{i}.ln_2.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.attn_norm.weight", "{B}layers.{i}.input_layernorm.weight",          kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp_norm.weight",  "{B}layers.{i}.post_attention_layernorm.weight", kCopy, 0},
  // ---- feed-forward
  {kEncoders, kAnyTask, "{b}layers.{i}.mlp.up.weight",   "{B}encoder.layer.{i}.intermediate.dense.weight", kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.mlp.up.bias",     "{B}encoder.layer.{i}.intermediate.dense.bias",   kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.mlp.down.weight", "{B}encoder.layer.{i}.output.dense.weight",       kCopy, 0},
  {kEncoders, kAnyTask, "{b}layers.{i}.mlp.down.bias",   "{B}encoder.layer.{i}.output.dense.bias",         kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.mlp.up.weight",   "{B}h.{i}.mlp.c_fc.weight",   kConv, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.mlp.up.bias",     "{B}h.{i}.mlp.c_fc.bias",     kCopy, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.mlp.down.weight", "{B}h.{i}.mlp.c_proj.weight", kConv, 0},
  {kGpt2, kAnyTask,     "{b}layers.{i}.mlp.down.bias",   "{B}h.{i}.mlp.c_proj.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp.gate.weight", "{B}layers.{i}.mlp.gate_proj.weight", kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp.gate.bias",   "{B}layers.{i}.mlp.gate_proj.bias",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp.up.weight",   "{B}layers.{i}.mlp.up_proj.weight",   kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp.up.bias",     "{B}layers.{i}.mlp.up_proj.bias",     kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp.down.weight", "{B}layers.{i}.mlp.down_proj.weight", kCopy, 0},
  {kLlama, kAnyTask,    "{b}layers.{i}.mlp.down.bias",   "{B}layers.{i}.mlp.down_proj.bias",   kCopy, 0},
  // ---- final norm, pooler
  {kMegatron, kAnyTask, "{b}final_norm.weight", "{B}encoder.ln.weight", kCopy, 0},
  {kMegatron, kAnyTask, "{b}final_norm.bias",   "{B}encoder.ln.bias",   kCopy, 0},
  {kGpt2, kAnyTask,     "{b}final_norm.weight", "{B}ln_f.weight",       kCopy, 0},
  {kGpt2, kAnyTask,     "{b}final_norm.bias",   "{B}ln_f.bias",         kCopy, 0},
  {kLlama, kAnyTask,    "{b}final_norm.weight", "{B}norm.weight",       kCopy, 0},
  {kEncoders, kAnyTask, "{b}pooler.dense.weight", "{B}pooler.dense.weight", kCopy, 0},
  {kEncoders, kAnyTask, "{b}pooler.dense.bias",   "{B}pooler.dense.bias",   kCopy, 0},
  // ---- heads (outside the HF body), per transformers class
  // BertForMaskedLM / MegatronBertForMaskedLM: cls.predictions = BertLMPredictionHead (transform
  // dense + act + LayerNorm, decoder without its own bias, the vocab bias `bias`).
  {kEncoders, kMlm, "mlm_head.dense.weight", "cls.predictions.transform.dense.weight",     kCopy, 0},
  {kEncoders, kMlm, "mlm_head.dense.bias",   "cls.predictions.transform.dense.bias",       kCopy, 0},
  {kEncoders, kMlm, "mlm_head.norm.weight",  "cls.predictions.transform.LayerNorm.weight", kCopy, 0},
  {kEncoders, kMlm, "mlm_head.norm.bias",    "cls.predictions.transform.LayerNorm.bias",   kCopy, 0},
  {kEncoders, kMlm, "lm_head.weight",        "cls.predictions.decoder.weight",             kCopy, 0},
  {kEncoders, kMlm, "lm_head.bias",          "cls.predictions.bias",                       kCopy, 0},
  // GPT2LMHeadModel / LlamaForCausalLM / MistralForCausalLM: lm_head (no bias).
  {kGpt2 | kLlama, kCausal, "lm_head.weight", "lm_head.weight", kCopy, 0},
  // Bert*/MegatronBert* token, sequence and multiple-choice classes and GPT2ForTokenClassification
  // name the head `classifier` (with bias).
  {kEncoders | kGpt2, kTok, "classifier.weight", "classifier.weight", kCopy, 0},
  {kEncoders | kGpt2, kTok, "classifier.bias",   "classifier.bias",   kCopy, 0},
  {kEncoders, kSeq | kMc,   "classifier.weight", "classifier.weight", kCopy, 0},
  {kEncoders, kSeq | kMc,   "classifier.bias",   "classifier.bias",   kCopy, 0},
  // GPT2ForSequenceClassification / LlamaForSequenceClassification: score = Linear(C, n, bias=False).
  {kGpt2 | kLlama, kSeq, "classifier.weight", "score.weight", kCopy, 0},
  // LlamaForTokenClassification / MistralForTokenClassification: score = Linear(C, n) (with bias).
  {kLlama, kTok, "classifier.weight", "score.weight", kCopy, 0},
  {kLlama, kTok, "classifier.bias",   "score.bias",   kCopy, 0},
  // *ForQuestionAnswering: qa_outputs = Linear(C, 2).
  {kAll, kQa, "qa_outputs.weight", "qa_outputs.weight", kCopy, 0},
  {kAll, kQa, "qa_outputs.bias",   "qa_outputs.bias",   kCopy, 0},
};
// clang-format on

// HF tensors that carry nothing a model needs: causal-mask and rotary buffers older transformers
// saved, BERT's position_ids buffer, and copies of tied weights.
bool is_ignorable(const std::string& hf) {
  auto ends_with = [&](const std::string& s) {
    return hf.size() >= s.size() && hf.compare(hf.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with("rotary_emb.inv_freq") ||
         ends_with("embeddings.position_ids") || hf == "cls.predictions.decoder.bias";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

bool applies(const WeightRule& rule, HfArch arch, TaskKind task) {
  return ((rule.archs >> static_cast<int>(arch)) & 1u) && (rule.tasks & task_bit(task));
}

std::string shape_str(const at::Tensor& t) { return fmt::format("({})", fmt::join(t.sizes(), ", ")); }

std::string list_some(const std::vector<std::string>& names, size_t n = 8) {
  std::vector<std::string> head(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(std::min(n, names.size())));
  std::string s = fmt::format("{}", fmt::join(head, ", "));
  if (names.size() > n) s += fmt::format(", ... ({} more)", names.size() - n);
  return s;
}

/// Sizes of the q, k, v parts of a fused c_attn along its output dimension.
std::array<int64_t, 3> qkv_sizes(const ModelConfig& c) {
  const int64_t D = c.head_dim();
  return {c.n_heads * D, c.n_kv_heads * D, c.n_kv_heads * D};
}

/// Our tensor from the HF one (and back, for export, in to_hf_state).
at::Tensor hf_to_ours(const HfNamePair& pair, const at::Tensor& hf, const ModelConfig& c, const std::string& origin) {
  switch (pair.transform) {
    case HfTransform::Copy: return hf;
    case HfTransform::Conv1D:
      BIOLM_CHECK(hf.dim() == 2, CheckpointError, origin, pair.hf,
                  fmt::format("a Conv1D weight must be 2-D, found {}", shape_str(hf)));
      return hf.t().contiguous();
    case HfTransform::FusedQkv: {
      const auto sizes = qkv_sizes(c);
      const int64_t total = sizes[0] + sizes[1] + sizes[2];
      const int64_t begin = pair.part == 0 ? 0 : (pair.part == 1 ? sizes[0] : sizes[0] + sizes[1]);
      const int64_t dim = hf.dim() == 2 ? 1 : 0;  // weight (C, 3C) Conv1D layout, bias (3C)
      BIOLM_CHECK(hf.dim() >= 1 && hf.dim() <= 2 && hf.size(dim) == total, CheckpointError, origin, pair.hf,
                  fmt::format("fused q,k,v needs {} outputs along dim {}, found {}", total, dim, shape_str(hf)));
      at::Tensor part = hf.narrow(dim, begin, sizes[static_cast<size_t>(pair.part)]);
      return (hf.dim() == 2 ? part.t() : part).contiguous();
    }
  }
  return hf;
}

int64_t count_our_layers(const std::vector<std::string>& names, const std::string& body) {
  int64_t n = 0;
  const std::string marker = body + "layers.";
  for (const auto& name : names) {
    if (name.compare(0, marker.size(), marker) != 0) continue;
    const size_t dot = name.find('.', marker.size());
    try {
      n = std::max<int64_t>(n, std::stoll(name.substr(marker.size(), dot - marker.size())) + 1);
    } catch (const std::exception&) {
    }
  }
  return n;
}

bool is_adapter_param(const std::string& name) {
  return name.find(".adapter.") != std::string::npos || name.rfind("soft_prompt.", 0) == 0;
}

}  // namespace

std::string hf_body_prefix(HfArch arch) {
  switch (arch) {
    case HfArch::Bert:
    case HfArch::MegatronBert: return "bert.";
    case HfArch::Gpt2: return "transformer.";
    case HfArch::Llama:
    case HfArch::Mistral: return "model.";
  }
  return "";
}

std::string hf_body_prefix(HfArch arch, TaskKind task) {
  if (task == TaskKind::Base) return "";  // BertModel, GPT2Model, LlamaModel: the body is the model
  // LlamaForQuestionAnswering keeps `self.transformer = LlamaModel(config)` (base_model_prefix
  // "transformer", kept for backward compatibility in modeling_llama.py); Mistral's uses `model`.
  if (arch == HfArch::Llama && task == TaskKind::SpanQA) return "transformer.";
  return hf_body_prefix(arch);
}

std::vector<HfNamePair> hf_name_pairs(HfArch arch, TaskKind task, int64_t n_layers, const std::string& our_body,
                                      const std::string& hf_body) {
  std::vector<HfNamePair> out;
  for (const auto& rule : kWeightTable) {
    if (!applies(rule, arch, task)) continue;
    const std::string ours = replace_all(rule.ours, "{b}", our_body);
    const std::string hf = replace_all(rule.hf, "{B}", hf_body);
    const bool per_layer = ours.find("{i}") != std::string::npos;
    for (int64_t i = 0; i < (per_layer ? n_layers : 1); ++i) {
      const std::string idx = std::to_string(i);
      out.push_back({replace_all(ours, "{i}", idx), replace_all(hf, "{i}", idx), rule.transform, rule.part});
    }
  }
  return out;
}

TaskKind hf_task_of(torch::nn::Module& model) {
  const auto* task_model = dynamic_cast<const models::TaskModelImpl*>(&model);
  return task_model ? task_model->task() : TaskKind::Base;
}

std::string our_body_prefix(torch::nn::Module& model) {
  static const std::string kTok = "embeddings.tok.weight";
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    if (name.size() >= kTok.size() && name.compare(name.size() - kTok.size(), kTok.size(), kTok) == 0 &&
        (name.size() == kTok.size() || name[name.size() - kTok.size() - 1] == '.')) {
      return name.substr(0, name.size() - kTok.size());
    }
  }
  throw CheckpointError("", "embeddings.tok.weight", "the model has no token embedding; it is not a libbiolm model");
}

at::Tensor permute_qk_interleaved_to_half(const at::Tensor& w, int64_t n_heads) {
  // Rows of one head: interleaved (x0,x1),(x2,x3),... -> halves [x0,x2,...,x1,x3,...].
  const int64_t rows = w.size(0);
  BIOLM_CHECK(n_heads > 0 && rows % (2 * n_heads) == 0, ShapeError, "permute_qk",
              fmt::format("{} rows do not split into {} heads of even size", rows, n_heads));
  auto sizes = w.sizes().vec();
  std::vector<int64_t> view{n_heads, rows / n_heads / 2, 2};
  view.insert(view.end(), sizes.begin() + 1, sizes.end());
  return w.reshape(view).transpose(1, 2).reshape(sizes).contiguous();
}

at::Tensor permute_qk_half_to_interleaved(const at::Tensor& w, int64_t n_heads) {
  const int64_t rows = w.size(0);
  BIOLM_CHECK(n_heads > 0 && rows % (2 * n_heads) == 0, ShapeError, "permute_qk",
              fmt::format("{} rows do not split into {} heads of even size", rows, n_heads));
  auto sizes = w.sizes().vec();
  std::vector<int64_t> view{n_heads, 2, rows / n_heads / 2};
  view.insert(view.end(), sizes.begin() + 1, sizes.end());
  return w.reshape(view).transpose(1, 2).reshape(sizes).contiguous();
}

std::string HfLoadReport::to_string() const {
  std::string s = fmt::format("loaded {}", loaded.size());
  s += fmt::format(", missing {}", missing.size());
  if (!missing.empty()) s += " [" + list_some(missing) + "]";
  s += fmt::format(", unexpected {}", unexpected.size());
  if (!unexpected.empty()) s += " [" + list_some(unexpected) + "]";
  if (!ignored.empty()) s += fmt::format(", ignored {} redundant", ignored.size());
  return s;
}

HfTensorSource HfTensorSource::open_pytorch_bin(const std::vector<std::filesystem::path>& files,
                                                const std::filesystem::path& origin) {
  std::map<std::string, at::Tensor> all;
  for (const auto& file : files) {
    for (auto& [name, tensor] : read_torch_state_dict(file)) {
      BIOLM_CHECK(!all.count(name), CheckpointError, file.string(), name, "tensor found in two shards");
      all[name] = std::move(tensor);
    }
  }
  log::info("{}: read {} tensors from PyTorch pickle(s)", origin.string(), all.size());
  return from_map(all, origin.string());
}

HfTensorSource HfTensorSource::open_pytorch_bin_index(const std::filesystem::path& index) {
  std::ifstream in(index);
  BIOLM_CHECK(in.good(), CheckpointError, index.string(), "", "cannot open the index");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw CheckpointError(index.string(), "", fmt::format("malformed JSON: {}", e.what()));
  }
  BIOLM_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), CheckpointError, index.string(),
              "weight_map", "expected {\"weight_map\": {tensor: shard file}}");
  std::set<std::string> shards;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    BIOLM_CHECK(shard.is_string(), CheckpointError, index.string(), name, "expected a shard file name");
    shards.insert(shard.get<std::string>());
  }
  std::vector<std::filesystem::path> files;
  for (const auto& shard : shards) files.push_back(index.parent_path() / shard);
  return open_pytorch_bin(files, index);
}

HfTensorSource HfTensorSource::from_map(const std::map<std::string, at::Tensor>& tensors, std::string origin) {
  HfTensorSource s;
  s.origin = std::move(origin);
  for (const auto& kv : tensors) s.names.push_back(kv.first);
  auto shared = std::make_shared<std::map<std::string, at::Tensor>>(tensors);
  s.get = [shared](const std::string& name) { return shared->at(name); };
  return s;
}

HfTensorSource HfTensorSource::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path) && !fs::exists(path / kSafetensorsSingleName) && !fs::exists(path / kSafetensorsIndexName)) {
    if (fs::exists(path / kPytorchBinName)) return open_pytorch_bin({path / kPytorchBinName}, path / kPytorchBinName);
    if (fs::exists(path / kPytorchBinIndexName)) return open_pytorch_bin_index(path / kPytorchBinIndexName);
    throw CheckpointError(path.string(), "",
                          fmt::format("no {}, {}, {} or {} in the directory", kSafetensorsSingleName,
                                      kSafetensorsIndexName, kPytorchBinName, kPytorchBinIndexName));
  }
  if (path.extension() == ".bin") return open_pytorch_bin({path}, path);
  if (path.filename() == kPytorchBinIndexName) return open_pytorch_bin_index(path);
  auto ckpt = std::make_shared<SafetensorsCheckpoint>(path);
  HfTensorSource s;
  s.origin = path.string();
  s.names = ckpt->names();
  s.get = [ckpt](const std::string& name) { return ckpt->tensor(name); };
  return s;
}

HfLoadReport load_hf_weights(torch::nn::Module& model, const ModelConfig& config, HfArch arch,
                             const HfTensorSource& source, const HfLoadOptions& options) {
  const std::string& origin = source.origin;
  auto params = model.named_parameters(/*recurse=*/true);
  std::vector<std::string> our_names;
  for (const auto& p : params) {
    if (!is_adapter_param(p.key())) our_names.push_back(p.key());
  }
  const std::string our_body = our_body_prefix(model);
  const std::set<std::string> hf_names(source.names.begin(), source.names.end());
  const TaskKind task = options.task ? *options.task : hf_task_of(model);
  const int64_t n_layers = std::max(config.n_layers, count_our_layers(our_names, our_body));
  // Where the body sits in the file: task classes put it under "bert." / "transformer." /
  // "model.", bare bodies (BertModel, GPT2Model, LlamaModel) at the top. The token embedding
  // tells which; a body saved by another class than ours (a GPT2Model file for a causal LM, a
  // BertForMaskedLM file for a classifier) loads as well.
  std::string hf_body = hf_body_prefix(arch, task);
  {
    std::string embedding;  // the HF name of the token embedding without a prefix
    for (const auto& pair : hf_name_pairs(arch, TaskKind::Base, 0, our_body, "")) {
      if (pair.ours == our_body + "embeddings.tok.weight") embedding = pair.hf;
    }
    for (const std::string& candidate : {hf_body_prefix(arch, task), hf_body_prefix(arch), std::string("transformer."),
                                         std::string("model."), std::string()}) {
      if (hf_names.count(candidate + embedding)) {
        hf_body = candidate;
        break;
      }
    }
  }
  const auto pairs = hf_name_pairs(arch, task, n_layers, our_body, hf_body);
  std::map<std::string, const HfNamePair*> by_ours;
  for (const auto& pair : pairs) by_ours.emplace(pair.ours, &pair);

  // Linears by their weight's name: a quantized one takes its weight through quant::load_weight.
  const auto linears = nn::linears_by_weight(model);
  const auto has = [&](const std::string& n) { return hf_names.count(n) > 0; };

  // Names first (nothing read yet): what is missing, what is unused, and strictness.
  HfLoadReport report;
  std::set<std::string> used;
  struct ToLoad {
    std::string name;
    const HfNamePair* pair;
    bool stored_quantized;  // a bitsandbytes quant_state / SCB beside the tensor
  };
  std::vector<ToLoad> to_load;
  for (const auto& name : our_names) {
    const auto it = by_ours.find(name);
    if (it == by_ours.end() || !hf_names.count(it->second->hf)) {
      report.missing.push_back(name);
      continue;
    }
    const auto stored = quant::stored_quantized_names(has, it->second->hf);
    to_load.push_back({name, it->second, !stored.empty()});
    used.insert(it->second->hf);
    used.insert(stored.begin(), stored.end());
  }
  // A tied lm_head / MLM decoder has no parameter of its own: its copy in the file is redundant.
  const bool tied_here = config.tie_embeddings;
  for (const auto& hf : source.names) {
    if (used.count(hf)) continue;
    const bool tied_copy = tied_here && (hf == "lm_head.weight" || hf == "cls.predictions.decoder.weight");
    (is_ignorable(hf) || tied_copy ? report.ignored : report.unexpected).push_back(hf);
  }
  if (options.strict && (!report.missing.empty() || !report.unexpected.empty())) {
    throw CheckpointError(origin, "",
                          fmt::format("strict load into a {} model failed: {}", to_string(arch), report.to_string()));
  }

  // Then tensor by tensor, each read, converted and put in place before the next is read, so the
  // peak is the model plus one tensor (a quantized model: plus one tensor in full precision). A
  // shape that does not fit stops the load with a CheckpointError (the model is then unusable).
  torch::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> fused_cache;  // GPT-2's c_attn, read once for q, k and v
  for (const auto& [name, pair_ptr, stored_quantized] : to_load) {
    const HfNamePair& pair = *pair_ptr;
    const auto lin = linears.find(name);
    if (stored_quantized) {
      // A transformers + bitsandbytes checkpoint (4-bit quant_state or int8 SCB beside the weight).
      BIOLM_CHECK(lin != linears.end() && pair.transform == HfTransform::Copy &&
                      options.qk_layout == QkLayout::RotateHalf,
                  CheckpointError, origin, pair.hf,
                  "stored quantized, which only a Linear weight in the file's own layout can take");
      quant::load_stored_weight(*lin->second, has, source.get, pair.hf, origin);
      report.loaded.push_back(name);
      continue;
    }
    at::Tensor hf;
    if (pair.transform == HfTransform::FusedQkv) {
      auto& cached = fused_cache[pair.hf];
      if (!cached.defined()) cached = source.get(pair.hf);
      hf = cached;
    } else {
      hf = source.get(pair.hf);
    }
    at::Tensor value = hf_to_ours(pair, hf, config, origin);
    if (options.qk_layout == QkLayout::Interleaved && (arch == HfArch::Llama || arch == HfArch::Mistral)) {
      const auto ends = [&](const char* s) { return name.find(s) != std::string::npos; };
      if (ends(".attn.q_proj.")) value = permute_qk_interleaved_to_half(value, config.n_heads);
      if (ends(".attn.k_proj.")) value = permute_qk_interleaved_to_half(value, config.n_kv_heads);
    }
    if (lin != linears.end() && lin->second->quantized_weight()) {
      try {
        quant::load_weight(*lin->second, value, name);
      } catch (const ShapeError&) {
        throw CheckpointError(origin, pair.hf,
                              fmt::format("shape {} does not fit parameter {} of shape ({}, {})", shape_str(hf), name,
                                          lin->second->options.out_features(), lin->second->options.in_features()));
      }
    } else {
      at::Tensor param = params[name];
      if (value.sizes() != param.sizes()) {
        throw CheckpointError(origin, pair.hf,
                              fmt::format("shape {} does not fit parameter {} of shape {}", shape_str(hf), name,
                                          shape_str(param)));
      }
      param.copy_(value.to(param.device(), param.scalar_type()));
    }
    report.loaded.push_back(name);
  }
  log::info("{}: {}", origin, report.to_string());
  return report;
}

HfLoadReport load_hf_directory(torch::nn::Module& model, const std::filesystem::path& dir, const HfLoadOptions& options) {
  const HfModelInfo info = load_hf_config(dir);
  return load_hf_weights(model, info.config, info.arch, HfTensorSource::open(dir), options);
}

std::map<std::string, at::Tensor> to_hf_state(torch::nn::Module& model, const ModelConfig& config, HfArch arch,
                                              TaskKind task, std::optional<c10::ScalarType> dtype) {
  check_hf_compatible(config, arch);
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto* linear = item.value()->as<nn::LinearImpl>()) {
      BIOLM_CHECK(!linear->adapter() || linear->merged(), ConfigError, "export",
                  fmt::format("{} carries an unmerged adapter: merge it (peft::merge_adapters) or export the adapter "
                              "as a PEFT directory (io::export_peft_adapter)",
                              item.key()));
    }
  }
  auto params = model.named_parameters(/*recurse=*/true);
  const auto linears = nn::linears_by_weight(model);
  std::vector<std::string> our_names;
  for (const auto& p : params) {
    if (!is_adapter_param(p.key())) our_names.push_back(p.key());
  }
  const std::string our_body = our_body_prefix(model);
  const auto pairs = hf_name_pairs(arch, task, config.n_layers, our_body, hf_body_prefix(arch, task));
  std::map<std::string, const HfNamePair*> by_ours;
  for (const auto& pair : pairs) by_ours.emplace(pair.ours, &pair);

  std::map<std::string, at::Tensor> out;
  std::map<std::string, std::array<at::Tensor, 3>> fused;
  for (const auto& name : our_names) {
    const auto it = by_ours.find(name);
    BIOLM_CHECK(it != by_ours.end(), CheckpointError, "", name,
                fmt::format("no {} name for this parameter (the HF table in io/hf_weights.cpp has none)", to_string(arch)));
    const HfNamePair& pair = *it->second;
    // A quantized base weight is exported dequantized (HF directories hold dense weights).
    const auto lin = linears.find(name);
    const bool quantized = lin != linears.end() && lin->second->quantized_weight();
    at::Tensor value = (quantized ? lin->second->dense_weight() : params[name]).detach().to(at::kCPU);
    switch (pair.transform) {
      case HfTransform::Copy: out[pair.hf] = value.contiguous(); break;
      case HfTransform::Conv1D: out[pair.hf] = value.t().contiguous(); break;
      case HfTransform::FusedQkv: fused[pair.hf][static_cast<size_t>(pair.part)] = value; break;
    }
  }
  for (auto& [hf, parts] : fused) {
    for (size_t p = 0; p < 3; ++p) {
      BIOLM_CHECK(parts[p].defined(), CheckpointError, "", hf,
                  fmt::format("fused q,k,v needs all three projections; part {} is missing", "qkv"[p]));
    }
    out[hf] = parts[0].dim() == 2 ? at::cat({parts[0].t(), parts[1].t(), parts[2].t()}, 1).contiguous()
                                  : at::cat({parts[0], parts[1], parts[2]}, 0).contiguous();
  }
  if (dtype) {
    for (auto& kv : out) {
      if (kv.second.is_floating_point()) kv.second = kv.second.to(*dtype);
    }
  }
  return out;
}

const std::vector<std::string>& hf_tokenizer_files() {
  static const std::vector<std::string> files = {"vocab.txt",       "tokenizer.json",          "tokenizer.model",
                                                 "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                                                 "merges.txt",      "added_tokens.json"};
  return files;
}

std::vector<std::filesystem::path> save_hf_directory(torch::nn::Module& model, const ModelConfig& config,
                                                     const std::filesystem::path& dir, const HfSaveOptions& options) {
  namespace fs = std::filesystem;
  HfExportConfig e;
  e.arch = options.arch ? *options.arch : infer_hf_arch(config);
  e.task = options.task ? *options.task : hf_task_of(model);
  e.labels = options.labels;
  if (e.labels.empty() &&
      (e.task == TaskKind::TokenClassification || e.task == TaskKind::SequenceClassification)) {
    // transformers sizes the head from id2label (num_labels defaults to 2).
    for (const auto& p : model.named_parameters(/*recurse=*/true)) {
      if (p.key() != "classifier.weight") continue;
      for (int64_t i = 0; i < p.value().size(0); ++i) e.labels.push_back(fmt::format("LABEL_{}", i));
    }
  }
  e.torch_dtype = !options.dtype || *options.dtype == at::kFloat ? "float32"
                  : *options.dtype == at::kBFloat16             ? "bfloat16"
                  : *options.dtype == at::kHalf                 ? "float16"
                                                                : "float32";
  const nlohmann::json hf_config = hf_config_to_json(config, e);
  const auto tensors = to_hf_state(model, config, e.arch, e.task, options.dtype);
  std::error_code ec;
  fs::create_directories(dir, ec);
  BIOLM_CHECK(!ec, IoError, dir.string(), fmt::format("cannot create directory: {}", ec.message()));
  std::vector<fs::path> written;
  {
    const fs::path path = dir / "config.json";
    std::ofstream out(path);
    out << hf_config.dump(2) << "\n";
    BIOLM_CHECK(out.good(), IoError, path.string(), "cannot write config.json");
    written.push_back(path);
  }
  ShardOptions shard;
  shard.max_shard_bytes = options.max_shard_bytes;
  for (auto& p : save_sharded(dir, tensors, {{"format", "pt"}}, shard)) written.push_back(p);
  if (options.tokenizer_dir) {
    size_t copied = 0;
    for (const auto& name : hf_tokenizer_files()) {
      const fs::path from = *options.tokenizer_dir / name;
      if (!fs::exists(from)) continue;
      fs::copy_file(from, dir / name, fs::copy_options::overwrite_existing, ec);
      BIOLM_CHECK(!ec, IoError, from.string(), fmt::format("cannot copy tokenizer file: {}", ec.message()));
      written.push_back(dir / name);
      ++copied;
    }
    BIOLM_CHECK(copied > 0, ConfigError, "export.tokenizer_dir",
                fmt::format("{} holds none of the tokenizer files ({})", options.tokenizer_dir->string(),
                            fmt::join(hf_tokenizer_files(), ", ")));
  }
  log::info("wrote {} ({} {} with {} tensors)", dir.string(), to_string(e.arch), hf_config["architectures"][0].get<std::string>(),
            tensors.size());
  return written;
}

}  // namespace biolm::io
