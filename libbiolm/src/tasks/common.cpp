// Shared pieces of the task families (see common.h) and the Task methods every family inherits.
#include "common.h"

#include <filesystem>
#include <numeric>
#include <stdexcept>

#include "biolm/data/collate.h"
#include "biolm/peft/prompt_tuning.h"

namespace biolm::tasks {
namespace detail {

int64_t doc_stride(const TaskOptions& o) { return o.doc_stride >= 0 ? o.doc_stride : o.max_length / 4; }

DataError origin_error(const data::Origin& o, const std::string& field, const std::string& msg) {
  if (o.line > 0) return DataError(o.source, o.line, field, msg);
  return DataError::at_record(o.source, o.record, field, msg);
}

int64_t label_id(const data::LabelMap& labels, const std::string& label, const data::Origin& o,
                 const std::string& field) {
  try {
    return labels.id(label);
  } catch (const std::out_of_range&) {
    std::string valid;
    for (const auto& n : labels.names()) valid += (valid.empty() ? "" : "|") + n;
    throw origin_error(o, field, "label \"" + label + "\" is not one of the training labels (" + valid + ")");
  }
}

torch::Device model_device(models::TaskModelImpl& model) {
  for (const auto& p : model.parameters()) return p.device();
  return torch::Device(torch::kCPU);
}

void for_each_batch(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                    const std::vector<data::Features>& rows, int64_t batch_size,
                    const std::function<void(const std::vector<data::Features>&, const torch::Tensor&)>& fn,
                    bool with_labels) {
  torch::NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const auto device = model_device(model);
  data::CollateOptions co;
  co.pad_id = tok.special().pad.value_or(0);
  const auto& prompt = model.soft_prompt();
  const auto bs = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  try {
    for (size_t i = 0; i < rows.size(); i += bs) {
      const std::vector<data::Features> chunk(rows.begin() + static_cast<long>(i),
                                              rows.begin() + static_cast<long>(std::min(rows.size(), i + bs)));
      auto batch = data::collate(chunk, co).to(device);
      if (!with_labels) batch.tensors.erase("labels");
      auto logits = model.run(batch).logits;
      if (prompt && batch.has("input_ids")) {  // token-level logits: drop the P prompt positions
        const int64_t P = prompt->n_prefix_tokens(), T = batch.at("input_ids").size(1);
        if (logits.dim() >= 2 && logits.size(1) == P + T) logits = logits.narrow(1, P, T);
      }  // multiple choice (choice_ids): logits are per option (B,K), nothing to strip
      fn(chunk, logits.to(torch::kCPU));
    }
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
}

MetricWriter::MetricWriter(int64_t n_bootstrap, uint64_t seed) : n_bootstrap_(n_bootstrap) {
  options_.n_resamples = n_bootstrap;
  options_.seed = seed;
}

void MetricWriter::put(const std::string& name, int64_t n, const eval::Statistic& stat) {
  if (n_bootstrap_ > 0) {
    const auto iv = eval::bootstrap_interval(n, stat, options_);
    out_[name] = {{"value", iv.point}, {"ci", {iv.lower, iv.upper}}};
  } else {
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    out_[name] = stat(all);
  }
}

void MetricWriter::put_mean(const std::string& name, const std::vector<double>& v) {
  put(name, static_cast<int64_t>(v.size()), [&v](const std::vector<int64_t>& idx) {
    double sum = 0;
    for (auto i : idx) sum += v[static_cast<size_t>(i)];
    return idx.empty() ? 0.0 : sum / static_cast<double>(idx.size());
  });
}

std::ofstream open_output(const std::string& path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p);
  if (!f) throw IoError::from_errno(path, "cannot open for writing");
  return f;
}

void append_argmax(const torch::Tensor& logits, std::vector<int64_t>& out) {
  const auto am = logits.argmax(-1);
  for (int64_t r = 0; r < am.numel(); ++r) out.push_back(am[r].item<int64_t>());
}

}  // namespace detail

nlohmann::json Task::evaluate_file(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                   const std::string& path, int64_t n_bootstrap, uint64_t seed) const {
  const auto d = featurize(tok, path);
  return score(*d, *predict(model, tok, *d), n_bootstrap, seed);
}

double metric_value(const nlohmann::json& m) {
  return m.is_object() ? m.at("value").get<double>() : m.get<double>();
}

void throw_wrong_type(const std::string& task) {
  throw Error("task " + task + ": the data or predictions given were made by another task");
}

}  // namespace biolm::tasks
