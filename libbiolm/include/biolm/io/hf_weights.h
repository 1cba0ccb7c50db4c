// biolm/io/hf_weights.h: Hugging Face weight names <-> our parameter names, in one table, and
// loading / saving model directories.
//
// The table (hf_weights.cpp, kWeightTable) is read in both directions, as llama.cpp's
// src/llama-arch.cpp maps tensor enums to GGUF names. Three transforms exist:
//   Copy     same shape, same layout.
//   Conv1D   GPT-2 stores c_attn / c_proj / c_fc as transformers' Conv1D, weight (in, out): the
//            transpose of our Linear's (out, in).
//   FusedQkv GPT-2's c_attn holds q, k and v side by side: weight (C, 3C) = [Wq^T | Wk^T | Wv^T],
//            bias (3C) = [bq, bk, bv]; each of our q_proj/k_proj/v_proj is one part.
// LLaMA/Mistral q_proj/k_proj: HF's LlamaForCausalLM files already hold the rows permuted for its
// rotate_half RoPE (transformers' convert_llama_weights_to_hf.py permutes Meta's interleaved
// layout once, at conversion). Our rotary (nn/rotary.h) is rotate_half as well, so HF files map
// by identity. Files whose q/k rows are still in Meta's interleaved pair order can be read with
// HfLoadOptions::qk_layout = Interleaved.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "biolm/io/hf_config.h"

namespace biolm::io {

enum class HfTransform { Copy, Conv1D, FusedQkv };

/// One expanded row of the table: our full parameter name <-> the HF tensor name.
struct HfNamePair {
  std::string ours;
  std::string hf;
  HfTransform transform = HfTransform::Copy;
  int part = 0;  ///< FusedQkv: 0 = q, 1 = k, 2 = v
};

/// The prefix transformers puts before the body in task models: "bert.", "transformer.", "model.".
std::string hf_body_prefix(HfArch arch);
/// The body prefix of the transformers class for `task` on `arch`: "" for Base (BertModel,
/// GPT2Model, LlamaModel, ...), "transformer." for LlamaForQuestionAnswering (its
/// base_model_prefix), hf_body_prefix(arch) otherwise.
std::string hf_body_prefix(HfArch arch, models::TaskKind task);

/// The table expanded for `n_layers` layers and the head of the transformers class for `task`
/// (e.g. Llama + SequenceClassification: classifier.weight <-> score.weight). `our_body` is the
/// prefix of our body's parameters ("" for task models, which register the body's children at
/// the top), `hf_body` the prefix of the HF body (usually hf_body_prefix(arch, task)).
std::vector<HfNamePair> hf_name_pairs(HfArch arch, models::TaskKind task, int64_t n_layers,
                                      const std::string& our_body, const std::string& hf_body);

/// The task of `model`: TaskModelImpl::task() for task models, Base for a bare body.
models::TaskKind hf_task_of(torch::nn::Module& model);

/// The prefix of our body inside `model`: what precedes "embeddings.tok.weight". CheckpointError
/// when the model has no token embedding.
std::string our_body_prefix(torch::nn::Module& model);

/// Meta's original LLaMA checkpoints rotate interleaved pairs (x0,x1),(x2,x3)...; HF and we rotate
/// halves (x_i, x_{i+D/2}). The row permutation of a q/k weight (H*D, C) or bias (H*D) from the
/// former to the latter, per head (transformers' convert_llama_weights_to_hf.py `permute`), and its
/// inverse.
at::Tensor permute_qk_interleaved_to_half(const at::Tensor& w, int64_t n_heads);
at::Tensor permute_qk_half_to_interleaved(const at::Tensor& w, int64_t n_heads);

enum class QkLayout { RotateHalf, Interleaved };

struct HfLoadOptions {
  /// Refuse (CheckpointError listing them) when a parameter of the model has no tensor in the
  /// file or a tensor of the file is used by nothing. Otherwise both are reported and missing
  /// parameters keep their current (initial) values.
  bool strict = false;
  QkLayout qk_layout = QkLayout::RotateHalf;
  /// The head names to read; default hf_task_of(model).
  std::optional<models::TaskKind> task;
};

struct HfLoadReport {
  std::vector<std::string> loaded;      ///< our parameter names that received a tensor
  std::vector<std::string> missing;     ///< our parameter names without a tensor in the file
  std::vector<std::string> unexpected;  ///< HF tensor names nothing used
  std::vector<std::string> ignored;     ///< HF tensors known to be redundant (buffers, tied copies)
  /// "loaded 38, missing 2 [classifier.weight, classifier.bias], unexpected 1 [cls.seq_relationship.weight]"
  std::string to_string() const;
};

/// Where HF tensors come from: their names and a way to read one (a safetensors checkpoint, a map).
inline constexpr const char* kPytorchBinName = "pytorch_model.bin";
inline constexpr const char* kPytorchBinIndexName = "pytorch_model.bin.index.json";

struct HfTensorSource {
  std::string origin;  ///< path for error messages
  std::vector<std::string> names;
  std::function<at::Tensor(const std::string&)> get;
  static HfTensorSource from_map(const std::map<std::string, at::Tensor>& tensors, std::string origin = "<memory>");
  /// A .safetensors file, an index file, a .bin file or a directory: model.safetensors[.index.json]
  /// first, else pytorch_model.bin[.index.json] (PyTorch state dicts in torch.save's zip format,
  /// read by io/torch_pickle.h's restricted unpickler; tensors are read whole into memory). Legacy
  /// (pre-1.6) pickles and dicts holding anything but tensors are refused with a CheckpointError
  /// saying how to convert them.
  static HfTensorSource open(const std::filesystem::path& path);
  /// PyTorch state-dict files (one per shard) as one source named `origin`.
  static HfTensorSource open_pytorch_bin(const std::vector<std::filesystem::path>& files,
                                         const std::filesystem::path& origin);
  /// pytorch_model.bin.index.json: its weight_map's shards.
  static HfTensorSource open_pytorch_bin_index(const std::filesystem::path& index);
};

/// Copies the HF tensors into `model`'s parameters (dtype converted to the parameter's), one tensor
/// at a time: each is read, converted and put in place before the next is read, so a sharded 7B
/// checkpoint loads with one tensor in flight. Names are checked first (strict refuses before any
/// parameter changes); a tensor whose shape does not fit stops the load with a CheckpointError
/// naming it. Quantized Linears (ModelConfig::quantize) quantize their weight as it arrives, and a
/// weight the file stores quantized (transformers + bitsandbytes 4-bit quant_state or int8 SCB) is
/// installed as stored, or dequantized into a dense Linear (quant::load_weight).
/// `config` is the model's configuration (for head counts and layers).
/// LoRA/IA3 adapter parameters ("*.adapter.*") and a soft prompt are not part of an HF model and
/// are neither loaded nor reported missing.
HfLoadReport load_hf_weights(torch::nn::Module& model, const models::ModelConfig& config, HfArch arch,
                             const HfTensorSource& source, const HfLoadOptions& options = {});

/// Reads `<dir>/config.json` and the weights of `dir` into `model` (see load_hf_weights).
HfLoadReport load_hf_directory(torch::nn::Module& model, const std::filesystem::path& dir,
                               const HfLoadOptions& options = {});

/// Our parameters under HF names for a transformers `task` class of `arch` (Conv1D transposes
/// and fused c_attn built). Every parameter must have an HF name (CheckpointError otherwise);
/// Linears with an unmerged adapter are refused (merge first, or export the adapter with
/// peft_export.h). `dtype` converts floating tensors (nullopt keeps them).
std::map<std::string, at::Tensor> to_hf_state(torch::nn::Module& model, const models::ModelConfig& config,
                                              HfArch arch, models::TaskKind task,
                                              std::optional<c10::ScalarType> dtype = std::nullopt);

struct HfSaveOptions {
  std::optional<HfArch> arch;             ///< default infer_hf_arch(config)
  std::optional<models::TaskKind> task;  ///< default hf_task_of(model)
  /// id2label for classification heads; default LABEL_0..LABEL_{n-1} from the classifier's rows.
  std::vector<std::string> labels;
  std::optional<c10::ScalarType> dtype;   ///< e.g. at::kBFloat16; default keeps float32
  /// Tokenizer files (vocab.txt, tokenizer.json, tokenizer.model, tokenizer_config.json,
  /// special_tokens_map.json, vocab.json, merges.txt, added_tokens.json) are copied from here.
  std::optional<std::filesystem::path> tokenizer_dir;
  uint64_t max_shard_bytes = 5'000'000'000ULL;
};

/// Writes an HF model directory: config.json, model.safetensors (or shards + index) with
/// {"format": "pt"} metadata, and the tokenizer files. Returns the files written.
std::vector<std::filesystem::path> save_hf_directory(torch::nn::Module& model, const models::ModelConfig& config,
                                                     const std::filesystem::path& dir,
                                                     const HfSaveOptions& options = {});

/// The tokenizer file names copied by save_hf_directory.
const std::vector<std::string>& hf_tokenizer_files();

}  // namespace biolm::io
