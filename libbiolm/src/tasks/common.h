// Internal to libbiolm/src/tasks: what several task families share (errors naming the record,
// batched prediction through model.run, bootstrap-interval metrics, predictions files).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "biolm/core/error.h"
#include "biolm/data/examples.h"
#include "biolm/eval/bootstrap.h"
#include "biolm/models/task_model.h"
#include "biolm/tasks/task.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::tasks::detail {

int64_t doc_stride(const TaskOptions& o);

DataError origin_error(const data::Origin& o, const std::string& field, const std::string& msg);

/// A label's id, as a DataError naming where the example came from.
int64_t label_id(const data::LabelMap& labels, const std::string& label, const data::Origin& o,
                 const std::string& field);

torch::Device model_device(models::TaskModelImpl& model);

/// Runs model.run over `rows` in batches of `batch_size` (collated with the tokenizer's pad id,
/// on the model's device) in eval mode without gradients, and calls fn(batch_rows, logits) with
/// the logits on the CPU. Token-level logits lose the soft prompt's P leading positions, so fn
/// sees (B,T,...) as without one. with_labels false: the batch goes without "labels" (a causal LM
/// then returns logits at every position, (B,T,V)).
void for_each_batch(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                    const std::vector<data::Features>& rows, int64_t batch_size,
                    const std::function<void(const std::vector<data::Features>&, const torch::Tensor&)>& fn,
                    bool with_labels = true);

/// Fills metric entries: with n_bootstrap > 0 {"value", "ci"} (percentile bootstrap over n
/// examples), otherwise the plain value.
class MetricWriter {
 public:
  MetricWriter(int64_t n_bootstrap, uint64_t seed);
  void put(const std::string& name, int64_t n, const eval::Statistic& stat);
  /// The mean of v over the resampled indices.
  void put_mean(const std::string& name, const std::vector<double>& v);
  nlohmann::json take() { return std::move(out_); }

 private:
  nlohmann::json out_ = nlohmann::json::object();
  int64_t n_bootstrap_;
  eval::BootstrapOptions options_;
};

/// Opens `path` for writing (parent folders created); IoError naming it otherwise.
std::ofstream open_output(const std::string& path);

/// Argmax class per row of (B, n_classes) logits, appended to `out`.
void append_argmax(const torch::Tensor& logits, std::vector<int64_t>& out);

}  // namespace biolm::tasks::detail
