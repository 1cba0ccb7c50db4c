#include "biolm/data/loader.h"

#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"

namespace biolm::data {

Loader::Loader(std::shared_ptr<const Dataset> dataset, Collator collator, LoaderOptions opts)
    : dataset_(std::move(dataset)), collator_(std::move(collator)), opts_(opts) {
  BIOLM_CHECK(dataset_ != nullptr, ConfigError, "data.loader", "no dataset");
  BIOLM_CHECK(opts_.batch_size > 0, ConfigError, "data.batch_size", "must be > 0, got " + std::to_string(opts_.batch_size));
  BIOLM_CHECK(opts_.world_size > 0 && opts_.rank >= 0 && opts_.rank < opts_.world_size, ConfigError, "data.rank",
              "need 0 <= rank < world_size, got rank " + std::to_string(opts_.rank) + " of " + std::to_string(opts_.world_size));
  start_epoch(0);
}

Loader::~Loader() { stop(); }

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  const int64_t n = dataset_->size();
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  if (opts_.shuffle) {
    std::mt19937_64 rng(mix_seed(opts_.seed, static_cast<uint64_t>(epoch)));
    for (int64_t i = n - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(rng()) * static_cast<uint64_t>(i + 1)) >> 64);
      std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
    }
  }
  return perm;
}

std::pair<int64_t, int64_t> Loader::slice(int64_t k, int64_t n) const {
  const int64_t begin = k * opts_.batch_size, size = std::min(n, begin + opts_.batch_size) - begin;
  // Contiguous, balanced: rank r takes rows [r·size/W, (r+1)·size/W) of the global batch.
  return {begin + opts_.rank * size / opts_.world_size, begin + (opts_.rank + 1) * size / opts_.world_size};
}

std::vector<int64_t> Loader::epoch_indices(int64_t epoch) const {
  const auto perm = epoch_order(epoch);
  const auto n = static_cast<int64_t>(perm.size());
  const int64_t batches = opts_.drop_last ? n / opts_.batch_size : (n + opts_.batch_size - 1) / opts_.batch_size;
  std::vector<int64_t> mine;
  for (int64_t k = 0; k < batches; ++k) {
    const auto [lo, hi] = slice(k, n);
    for (int64_t i = lo; i < hi; ++i) mine.push_back(perm[static_cast<size_t>(i)]);
  }
  return mine;
}

void Loader::start_epoch(int64_t epoch) {
  stop();
  epoch_ = epoch;
  next_batch_ = 0;
  order_ = epoch_order(epoch);
  const auto n = static_cast<int64_t>(order_.size());
  n_batches_ = opts_.drop_last ? n / opts_.batch_size : (n + opts_.batch_size - 1) / opts_.batch_size;
}

std::optional<int64_t> Loader::batches_per_epoch() const { return n_batches_; }

Batch Loader::make_batch(int64_t k) const {
  std::vector<Features> rows;
  const auto [lo, hi] = slice(k, static_cast<int64_t>(order_.size()));
  // A global batch with fewer rows than ranks leaves some ranks without any: they contribute no
  // tokens (the trainer skips the forward) but still join every collective.
  if (lo == hi) return Batch{};
  for (int64_t i = lo; i < hi; ++i) rows.push_back(dataset_->get(order_[static_cast<size_t>(i)]));
  const uint64_t seed = mix_seed(mix_seed(mix_seed(opts_.seed, static_cast<uint64_t>(epoch_)), static_cast<uint64_t>(k)),
                                 static_cast<uint64_t>(opts_.rank));
  return collator_(std::move(rows), seed);
}

void Loader::launch() {
  running_ = true;
  stopping_ = false;
  error_ = nullptr;
  ready_.clear();
  const int64_t first = next_batch_;
  worker_ = std::thread([this, first] {
    for (int64_t k = first; k < n_batches_; ++k) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || static_cast<int64_t>(ready_.size()) < opts_.prefetch; });
        if (stopping_) return;
      }
      try {
        Batch b = make_batch(k);
        std::lock_guard<std::mutex> lock(mu_);
        ready_.push_back(std::move(b));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      cv_.notify_all();
    }
  });
}

void Loader::stop() {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  ready_.clear();
  running_ = false;
}

std::optional<Batch> Loader::next() {
  if (next_batch_ >= n_batches_) return std::nullopt;
  if (opts_.prefetch <= 0) return make_batch(next_batch_++);
  if (!running_) launch();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty() || error_ != nullptr; });
  if (ready_.empty() && error_ != nullptr) {
    auto e = error_;
    lock.unlock();
    stop();
    std::rethrow_exception(e);
  }
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  ++next_batch_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

nlohmann::json Loader::state() const {
  return {{"epoch", epoch_},           {"batch", next_batch_},   {"seed", opts_.seed},
          {"rank", opts_.rank},        {"world_size", opts_.world_size},
          {"batch_size", opts_.batch_size}, {"n_samples", dataset_->size()}, {"shuffle", opts_.shuffle}};
}

void Loader::restore(const nlohmann::json& s) {
  const auto expect = [&](const char* key, const nlohmann::json& mine) {
    if (!s.contains(key)) throw ConfigError(std::string("data.state.") + key, "missing from the saved loader state");
    if (s.at(key) != mine) {
      throw ConfigError(std::string("data.state.") + key, "saved " + s.at(key).dump() + ", this run has " + mine.dump() +
                                                              ": resuming would not see the same batches");
    }
  };
  expect("seed", opts_.seed);
  expect("batch_size", opts_.batch_size);
  expect("n_samples", dataset_->size());
  expect("shuffle", opts_.shuffle);
  start_epoch(s.at("epoch").get<int64_t>());
  const auto k = s.at("batch").get<int64_t>();
  BIOLM_CHECK(k >= 0 && k <= n_batches_, ConfigError, "data.state.batch",
              "batch " + std::to_string(k) + " outside the epoch's " + std::to_string(n_batches_));
  next_batch_ = k;
}

}  // namespace biolm::data
