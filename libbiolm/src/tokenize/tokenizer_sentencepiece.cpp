// SentencePiece behind the Tokenizer interface, and the SentencePiece trainer.
#include <sentencepiece.pb.h>
#include <sentencepiece_model.pb.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/tokenize/sentencepiece.h"
#include "biolm/io/files.h"
#include "tokenize/common.h"
#include "tokenize/unicode.h"

namespace biolm::tokenize {

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  // The same model without the dummy "▁" prefix, for the text after a special token (HF's
  // Metaspace prepend_scheme "first" prefixes only the text that starts the input).
  sentencepiece::SentencePieceProcessor sp_no_prefix;
  // Pieces matched whole in the text before SentencePiece sees it, as transformers does:
  // unk, control (<s>, </s>) and user-defined pieces. Longest first on a tie.
  std::vector<AddedToken> whole;
  // Whitespace is kept (LLaMA: remove_extra_whitespaces false): a text that starts with a space
  // gets no dummy prefix either, as in HF (Metaspace prepends only when no "▁" starts the text).
  bool keeps_whitespace = false;
  std::string bytes;
  std::string source;
  SentencePieceOptions options;
  SpecialTokens special;
};

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::filesystem::path& path,
                                                                          SentencePieceOptions options) {
  return from_serialized(io::read_file(path), std::move(options), path.string());
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_serialized(std::string model_bytes,
                                                                                SentencePieceOptions options,
                                                                                std::string source) {
  auto impl = std::make_unique<Impl>();
  const auto status = impl->sp.LoadFromSerializedProto(model_bytes);
  if (!status.ok())
    throw ConfigError(source, fmt::format("not a SentencePiece model: {}", status.ToString()));
  {
    sentencepiece::ModelProto proto;
    if (!proto.ParseFromString(model_bytes)) throw ConfigError(source, "not a SentencePiece ModelProto");
    for (int i = 0; i < proto.pieces_size(); ++i) {
      const auto type = proto.pieces(i).type();
      if (type == sentencepiece::ModelProto::SentencePiece::CONTROL ||
          type == sentencepiece::ModelProto::SentencePiece::UNKNOWN ||
          type == sentencepiece::ModelProto::SentencePiece::USER_DEFINED)
        if (!proto.pieces(i).piece().empty()) impl->whole.push_back({i, proto.pieces(i).piece(), true, false, false});
    }
    impl->keeps_whitespace = !proto.normalizer_spec().remove_extra_whitespaces();
    proto.mutable_normalizer_spec()->set_add_dummy_prefix(false);
    const auto st = impl->sp_no_prefix.LoadFromSerializedProto(proto.SerializeAsString());
    if (!st.ok()) throw ConfigError(source, fmt::format("not a SentencePiece model: {}", st.ToString()));
  }
  impl->bytes = std::move(model_bytes);
  impl->source = std::move(source);
  impl->options = std::move(options);
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer(std::move(impl)));
  // The model's own special pieces, then any names given in the options.
  auto& s = t->impl_->special;
  const auto& sp = t->impl_->sp;
  auto opt = [](int id) { return id >= 0 ? std::optional<int64_t>(id) : std::nullopt; };
  s.unk = opt(sp.unk_id());
  s.bos = opt(sp.bos_id());
  s.eos = opt(sp.eos_id());
  s.pad = opt(sp.pad_id());
  const SpecialTokens named = detail::resolve_special(
      t->impl_->options.specials, [&](std::string_view tok) { return t->token_to_id(tok); }, t->impl_->source);
  for (auto f : {&SpecialTokens::pad, &SpecialTokens::unk, &SpecialTokens::bos, &SpecialTokens::eos,
                 &SpecialTokens::cls, &SpecialTokens::sep, &SpecialTokens::mask})
    if (named.*f) s.*f = named.*f;
  return t;
}

int64_t SentencePieceTokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

std::optional<int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = impl_->sp.PieceToId(token);
  // PieceToId answers unk_id for an unknown piece; only the unk piece itself maps there.
  if (id < 0 || (id == impl_->sp.unk_id() && impl_->sp.IdToPiece(id) != token)) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ConfigError("token_id", fmt::format("id {} outside the vocabulary [0, {})", id, vocab_size()));
  return impl_->sp.IdToPiece(static_cast<int>(id));
}

const SpecialTokens& SentencePieceTokenizer::special() const { return impl_->special; }
const std::string& SentencePieceTokenizer::model_bytes() const { return impl_->bytes; }
const SentencePieceOptions& SentencePieceTokenizer::options() const { return impl_->options; }
bool SentencePieceTokenizer::is_byte_piece(int64_t id) const { return impl_->sp.IsByte(static_cast<int>(id)); }

namespace {
constexpr std::string_view kWordStart = "\xE2\x96\x81";  // U+2581, SentencePiece's space mark

// Offsets as HF reports them: SentencePieceText gives the first pieces of a byte-fallback
// character empty spans and the last one the character; HF gives every one of them the
// character's span. A dummy-prefix "▁" piece of its own (empty span at the start) gets the span
// of the first character, where HF's Metaspace aligns the "▁" it prepends.
void encode_plain_into(const sentencepiece::SentencePieceProcessor& sp, std::string_view text, int64_t base,
                       const std::string& source, int64_t& word, Encoding& out) {
  if (text.empty()) return;
  sentencepiece::SentencePieceText spt;
  const auto status = sp.Encode(text, &spt);
  if (!status.ok()) throw ConfigError(source, fmt::format("SentencePiece encode failed: {}", status.ToString()));
  const auto& pieces = spt.pieces();
  const int n = pieces.size();
  for (int i = 0; i < n; ++i) {
    const auto& p = pieces[i];
    if (word < 0 || p.piece().compare(0, kWordStart.size(), kWordStart) == 0) ++word;
    int64_t b = p.begin(), e = p.end();
    if (b == e && sp.IsByte(static_cast<int>(p.id()))) {
      for (int k = i + 1; k < n && sp.IsByte(static_cast<int>(pieces[k].id())) && pieces[k].begin() == p.begin(); ++k)
        if (pieces[k].end() > pieces[k].begin()) {
          e = pieces[k].end();
          break;
        }
    } else if (b == 0 && e == 0 && p.piece() == kWordStart) {
      const auto first = unicode::decode(text.substr(0, std::min<size_t>(4, text.size())));
      if (!first.empty()) e = first[0].end;
    }
    out.ids.push_back(p.id());
    out.offsets.emplace_back(base + b, base + e);
    out.word_ids.push_back(word);
  }
}

Encoding encode_plain(const sentencepiece::SentencePieceProcessor& sp, std::string_view text, int64_t base,
                      const std::string& source) {
  Encoding out;
  int64_t word = -1;
  encode_plain_into(sp, text, base, source, word, out);
  return out;
}
}  // namespace

Encoding SentencePieceTokenizer::encode(std::string_view text, bool add_special) const {
  // Special pieces written in the text (<s>, </s>, <unk>, user-defined ones) stay whole, the
  // earliest first (the longest on a tie); the text after one gets no dummy prefix.
  Encoding out;
  int64_t word = -1;
  detail::split_on_added(
      text, impl_->whole,
      [&](std::string_view seg, size_t at) {
        const bool prefix = at == 0 && !(impl_->keeps_whitespace && !text.empty() && text.front() == ' ');
        encode_plain_into(prefix ? impl_->sp : impl_->sp_no_prefix, seg, static_cast<int64_t>(at), impl_->source, word,
                          out);
      },
      [&](const AddedToken& a, size_t b, size_t e) {
        out.ids.push_back(a.id);
        out.offsets.emplace_back(static_cast<int64_t>(b), static_cast<int64_t>(e));
        out.word_ids.push_back(++word);
      });
  if (add_special) {
    std::vector<int64_t> pre, post;
    if (impl_->options.add_bos && impl_->special.bos) pre.push_back(*impl_->special.bos);
    if (impl_->options.add_eos && impl_->special.eos) post.push_back(*impl_->special.eos);
    detail::add_specials(out, pre, post);
  }
  return out;
}

Encoding SentencePieceTokenizer::encode_words(const std::vector<std::string>& words, bool add_special) const {
  std::vector<int64_t> pre, post;
  if (add_special && impl_->options.add_bos && impl_->special.bos) pre.push_back(*impl_->special.bos);
  if (add_special && impl_->options.add_eos && impl_->special.eos) post.push_back(*impl_->special.eos);
  return detail::encode_words_joined(
      words, [this](const std::string& w, int64_t offset, size_t) { return encode_plain(impl_->sp, w, offset, impl_->source); },
      pre, post);
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  // SentencePiece drops control pieces (<s>, </s>) itself; to keep them, decode the runs between
  // them and put their text back.
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string text;
    const auto status = impl_->sp.Decode(run, &text);
    if (!status.ok()) throw ConfigError(impl_->source, fmt::format("SentencePiece decode failed: {}", status.ToString()));
    out += text;
    run.clear();
  };
  for (int64_t id : ids) {
    id_to_token(id);  // range check
    const bool control = impl_->sp.IsControl(static_cast<int>(id));
    if (skip_special && (control || detail::is_skippable_special(impl_->special, id))) continue;
    if (control) {
      flush();
      out += impl_->sp.IdToPiece(static_cast<int>(id));
    } else {
      run.push_back(static_cast<int>(id));
    }
  }
  flush();
  return out;
}

std::string SentencePieceTokenizer::fingerprint() const {
  return detail::hex64(unicode::fnv1a(
      impl_->bytes, unicode::fnv1a(fmt::format("sentencepiece|bos={}|eos={}|", impl_->options.add_bos,
                                               impl_->options.add_eos))));
}

void SentencePieceTokenizer::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  io::write_file_atomic(dir / "tokenizer.model", impl_->bytes);
  SpecialTokenNames names = impl_->options.specials;
  const auto& s = impl_->special;
  if (!names.unk && s.unk) names.unk = id_to_token(*s.unk);
  if (!names.bos && s.bos) names.bos = id_to_token(*s.bos);
  if (!names.eos && s.eos) names.eos = id_to_token(*s.eos);
  if (!names.pad && s.pad) names.pad = id_to_token(*s.pad);
  nlohmann::json cfg = {{"tokenizer_class", "LlamaTokenizer"},
                        {"add_bos_token", impl_->options.add_bos},
                        {"add_eos_token", impl_->options.add_eos}};
  detail::write_hf_config(dir, names, cfg);
}

std::filesystem::path train_sentencepiece(const std::vector<std::filesystem::path>& files,
                                          const SentencePieceTrainOptions& options,
                                          const std::filesystem::path& out_prefix) {
  if (files.empty()) throw ConfigError("input", "no corpus files given");
  if (options.vocab_size <= 3) throw ConfigError("vocab_size", fmt::format("must be > 3, got {}", options.vocab_size));
  std::string input;
  for (const auto& f : files) {
    if (!std::filesystem::exists(f)) throw IoError(f.string(), "corpus file does not exist");
    if (f.string().find(',') != std::string::npos)
      throw ConfigError("input", fmt::format("SentencePiece cannot read a path with a comma: {}", f.string()));
    input += (input.empty() ? "" : ",") + f.string();
  }
  if (out_prefix.has_parent_path()) std::filesystem::create_directories(out_prefix.parent_path());
  std::unordered_map<std::string, std::string> kw = {
      {"input", input},
      {"model_prefix", out_prefix.string()},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"model_type", options.model_type == SentencePieceModelType::Unigram ? "unigram" : "bpe"},
      {"character_coverage", fmt::format("{}", options.character_coverage)},
      {"byte_fallback", options.byte_fallback ? "true" : "false"},
      {"num_threads", std::to_string(options.num_threads)},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      {"minloglevel", log::enabled(log::Level::Debug) ? "0" : "2"},  // keep the trainer quiet unless debugging
  };
  if (!options.user_defined_symbols.empty()) {
    std::string s;
    for (const auto& u : options.user_defined_symbols) s += (s.empty() ? "" : ",") + u;
    kw["user_defined_symbols"] = s;
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(kw);
  if (!status.ok()) throw ConfigError("tokenizer.train", fmt::format("SentencePiece training failed: {}", status.ToString()));
  log::info("train_sentencepiece: wrote {}.model ({} pieces)", out_prefix.string(), options.vocab_size);
  return std::filesystem::path(out_prefix.string() + ".model");
}

}  // namespace biolm::tokenize
