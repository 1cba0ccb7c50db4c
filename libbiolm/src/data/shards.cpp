// Parallel tokenization into shards and packing (no HDF5 here; see shards_hdf5.cpp).
#include "biolm/data/shards.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <thread>

#include "biolm/core/error.h"

namespace biolm::data {

void TokenShard::validate(const std::string& source) const {
  const auto bad = [&](const std::string& field, const std::string& msg) {
    return DataError::at_record(source, meta.shard_index, field, msg);
  };
  if (doc_offsets.empty() || doc_offsets.front() != 0) throw bad("doc_offsets", "must start with 0");
  if (doc_offsets.back() != static_cast<int64_t>(tokens.size())) {
    throw bad("doc_offsets", "last offset " + std::to_string(doc_offsets.back()) + " != " + std::to_string(tokens.size()) + " tokens");
  }
  for (size_t i = 1; i < doc_offsets.size(); ++i) {
    if (doc_offsets[i] < doc_offsets[i - 1]) throw bad("doc_offsets", "decreases at document " + std::to_string(i));
  }
  if (meta.n_tokens != static_cast<int64_t>(tokens.size())) throw bad("n_tokens", "attribute disagrees with the tokens dataset");
  if (meta.n_documents + 1 != static_cast<int64_t>(doc_offsets.size())) throw bad("n_documents", "attribute disagrees with doc_offsets");
  if (!word_starts.empty() && word_starts.size() != tokens.size()) throw bad("word_starts", "length differs from tokens");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= meta.vocab_size) {
      throw bad("tokens", "id " + std::to_string(tokens[i]) + " at " + std::to_string(i) + " outside vocabulary of " +
                              std::to_string(meta.vocab_size));
    }
  }
}

namespace {
struct Task {
  int64_t seq = 0;
  std::vector<TextRecord> records;
};
struct Encoded {
  std::vector<std::vector<int32_t>> docs;
  std::vector<std::vector<uint8_t>> starts;
  std::vector<int64_t> text_bytes;
};
}  // namespace

ShardingReport tokenize_to_shards(const std::function<bool(TextRecord&)>& next, const tokenize::Tokenizer& tok,
                                  const ShardingOptions& opts, const std::function<void(TokenShard&&)>& on_shard) {
  BIOLM_CHECK(opts.tokens_per_shard > 0, ConfigError, "data.tokens_per_shard", "must be > 0");
  BIOLM_CHECK(tok.vocab_size() <= INT32_MAX, ConfigError, "tokenizer", "vocabulary too large for int32 shards");
  const int64_t n_workers = opts.n_workers > 0 ? opts.n_workers : std::max<int64_t>(1, std::thread::hardware_concurrency());
  ShardingReport report;
  TokenShard cur;
  const auto new_shard = [&] {
    cur = TokenShard{};
    cur.meta.tokenizer_fingerprint = tok.fingerprint();
    cur.meta.tokenizer_kind = tok.kind();
    cur.meta.vocab_size = tok.vocab_size();
    cur.meta.shard_index = report.n_shards;
    cur.meta.has_word_starts = opts.word_starts;
    cur.doc_offsets = {0};
  };
  new_shard();
  const auto emit = [&] {
    if (cur.meta.n_documents == 0) return;
    ++report.n_shards;
    on_shard(std::move(cur));
    new_shard();
  };
  const auto append = [&](Encoded&& e) {
    for (size_t d = 0; d < e.docs.size(); ++d) {
      auto& doc = e.docs[d];
      if (static_cast<int64_t>(doc.size()) < opts.min_tokens) {
        ++report.n_too_short;
        continue;
      }
      if (cur.meta.n_tokens > 0 && cur.meta.n_tokens + static_cast<int64_t>(doc.size()) > opts.tokens_per_shard) emit();
      cur.tokens.insert(cur.tokens.end(), doc.begin(), doc.end());
      if (opts.word_starts) cur.word_starts.insert(cur.word_starts.end(), e.starts[d].begin(), e.starts[d].end());
      cur.meta.n_tokens += static_cast<int64_t>(doc.size());
      cur.meta.n_documents += 1;
      cur.meta.n_text_bytes += e.text_bytes[d];
      cur.doc_offsets.push_back(cur.meta.n_tokens);
      report.n_documents += 1;
      report.n_tokens += static_cast<int64_t>(doc.size());
      report.n_text_bytes += e.text_bytes[d];
    }
  };
  const auto encode = [&](const Task& t) {
    Encoded e;
    for (const auto& r : t.records) {
      const auto enc = tok.encode(r.text, opts.add_special);
      e.docs.emplace_back(enc.ids.begin(), enc.ids.end());
      e.text_bytes.push_back(static_cast<int64_t>(r.text.size()));
      if (opts.word_starts) {
        std::vector<uint8_t> ws(enc.ids.size(), 1);
        for (size_t i = 1; i < enc.ids.size() && i < enc.word_ids.size(); ++i) {
          ws[i] = enc.word_ids[i] < 0 || enc.word_ids[i] != enc.word_ids[i - 1];
        }
        e.starts.push_back(std::move(ws));
      }
    }
    return e;
  };

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Task> tasks;
  std::map<int64_t, Encoded> done;
  std::exception_ptr error;
  bool finished = false;
  std::vector<std::thread> workers;
  for (int64_t w = 0; w < n_workers; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        Task t;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return !tasks.empty() || finished || error; });
          if (tasks.empty() || error) return;
          t = std::move(tasks.front());
          tasks.pop_front();
        }
        try {
          Encoded e = encode(t);
          std::lock_guard<std::mutex> lock(mu);
          done.emplace(t.seq, std::move(e));
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!error) error = std::current_exception();
        }
        cv.notify_all();
      }
    });
  }
  int64_t submitted = 0, consumed = 0;
  // Appends finished results in order; with `all`, waits until every submitted task is in.
  const auto drain = [&](bool all) {
    for (;;) {
      Encoded e;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (all) cv.wait(lock, [&] { return done.count(consumed) != 0 || error || consumed == submitted; });
        if (error || consumed == submitted || done.count(consumed) == 0) return;
        e = std::move(done[consumed]);
        done.erase(consumed);
      }
      ++consumed;
      append(std::move(e));
    }
  };
  const auto finish = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      finished = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
  };
  try {
    Task t;
    TextRecord rec;
    bool more = true;
    while (more) {
      more = next(rec);
      if (more) t.records.push_back(std::move(rec));
      if (t.records.empty() || (more && static_cast<int64_t>(t.records.size()) < opts.docs_per_task)) continue;
      // Bounded memory: at most 2 tasks per worker between submission and consumption; while
      // waiting, consume results that are ready in order.
      bool queued = false;
      while (!queued) {
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return submitted - consumed < 2 * n_workers || done.count(consumed) != 0 || error; });
          if (error) break;
          if (submitted - consumed < 2 * n_workers) {
            t.seq = submitted++;
            tasks.push_back(std::move(t));
            queued = true;
          }
        }
        cv.notify_all();
        drain(false);
      }
      if (!queued) break;
      t = Task{};
    }
    drain(true);
  } catch (...) {
    finish();
    throw;
  }
  finish();
  if (error) std::rethrow_exception(error);
  emit();
  return report;
}

std::vector<PackedRef> pack_shard(int64_t shard, int64_t n_tokens, const PackOptions& opts) {
  BIOLM_CHECK(opts.seq_len > 0, ConfigError, "data.seq_len", "must be > 0");
  std::vector<PackedRef> out;
  for (int64_t b = 0; b < n_tokens; b += opts.seq_len) {
    const int64_t e = std::min(b + opts.seq_len, n_tokens);
    if (e - b < opts.seq_len && opts.drop_remainder) break;
    out.push_back({shard, b, e});
  }
  return out;
}

PackedDataset::PackedDataset(std::vector<int64_t> n_tokens, ShardLoader load, PackOptions opts)
    : load_(std::move(load)), opts_(opts) {
  for (size_t s = 0; s < n_tokens.size(); ++s) {
    const auto refs = pack_shard(static_cast<int64_t>(s), n_tokens[s], opts_);
    refs_.insert(refs_.end(), refs.begin(), refs.end());
  }
}

std::shared_ptr<PackedDataset> PackedDataset::from_shards(std::vector<std::shared_ptr<const TokenShard>> shards,
                                                          PackOptions opts) {
  std::vector<int64_t> n;
  for (const auto& s : shards) n.push_back(static_cast<int64_t>(s->tokens.size()));
  return std::make_shared<PackedDataset>(std::move(n), [shards](int64_t i) { return shards.at(static_cast<size_t>(i)); },
                                         opts);
}

std::shared_ptr<const TokenShard> PackedDataset::shard(int64_t s) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(s);
  if (it != cache_.end()) {
    lru_.erase(std::find(lru_.begin(), lru_.end(), s));
    lru_.push_back(s);
    return it->second;
  }
  auto loaded = load_(s);
  if (opts_.max_cached_shards > 0 && static_cast<int64_t>(cache_.size()) >= opts_.max_cached_shards) {
    cache_.erase(lru_.front());
    lru_.erase(lru_.begin());
  }
  cache_[s] = loaded;
  lru_.push_back(s);
  return loaded;
}

Features PackedDataset::get(int64_t i) const {
  const PackedRef& r = ref(i);
  const auto sh = shard(r.shard);
  Features f;
  f.input_ids.assign(sh->tokens.begin() + r.begin, sh->tokens.begin() + r.end);
  if (!sh->word_starts.empty()) f.word_starts.assign(sh->word_starts.begin() + r.begin, sh->word_starts.begin() + r.end);
  // Document of each token, relative to the first document in this sequence.
  auto doc = std::upper_bound(sh->doc_offsets.begin(), sh->doc_offsets.end(), r.begin) - sh->doc_offsets.begin() - 1;
  const auto first_doc = doc;
  f.segment_ids.resize(static_cast<size_t>(r.end - r.begin));
  for (int64_t t = r.begin; t < r.end; ++t) {
    while (sh->doc_offsets[static_cast<size_t>(doc + 1)] <= t) ++doc;
    f.segment_ids[static_cast<size_t>(t - r.begin)] = doc - first_doc;
  }
  f.example_index = i;
  return f;
}

}  // namespace biolm::data
