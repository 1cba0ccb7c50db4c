// `biolm tokenizer train|encode`: learn a SentencePiece model or a WordPiece vocabulary, and
// show how a tokenizer splits a text (ids, tokens, byte offsets, word ids as one JSON object).
#include <nlohmann/json.hpp>

#include <iostream>

#include "biolm/config.h"
#include "biolm/core/error.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/tokenize/wordpiece.h"
#if BIOLM_HAS_SENTENCEPIECE
#include "biolm/tokenize/sentencepiece.h"
#endif
#include "command.h"

namespace {

struct TrainArgs {
  std::string kind = "sentencepiece";
  int64_t vocab_size = 8000;
  std::vector<std::string> inputs;
  std::string out;
  std::string model_type = "unigram";
  bool cased = false;
  double character_coverage = 0.9995;
  bool byte_fallback = false;
  int64_t min_frequency = 2;
};

struct EncodeArgs {
  std::string tokenizer;
  std::string text;
  bool no_special = false;
};

void run_train(const TrainArgs& a) {
  using namespace biolm::tokenize;
  std::vector<std::filesystem::path> files(a.inputs.begin(), a.inputs.end());
  nlohmann::json report = {{"kind", a.kind}, {"vocab_size", a.vocab_size}};
  if (a.kind == "wordpiece") {
    WordPieceTrainOptions o;
    o.vocab_size = a.vocab_size;
    o.lowercase = !a.cased;
    o.min_frequency = a.min_frequency;
    // --out is a directory (vocab.txt + HF config files) unless it names a .txt file.
    std::filesystem::path out(a.out);
    if (out.extension() == ".txt") {
      train_wordpiece(files, o, out);
      report["vocab"] = out.string();
    } else {
      WordPieceOptions wo;
      wo.lowercase = o.lowercase;
      WordPieceTokenizer t(train_wordpiece(files, o), wo, out.string());
      t.save(out);
      report["vocab"] = (out / "vocab.txt").string();
      report["vocab_size"] = t.vocab_size();
    }
  } else if (a.kind == "sentencepiece") {
#if BIOLM_HAS_SENTENCEPIECE
    SentencePieceTrainOptions o;
    o.vocab_size = a.vocab_size;
    if (a.model_type == "unigram") o.model_type = SentencePieceModelType::Unigram;
    else if (a.model_type == "bpe") o.model_type = SentencePieceModelType::Bpe;
    else throw biolm::ConfigError("--model-type", "expected unigram or bpe, got \"" + a.model_type + "\"");
    o.character_coverage = a.character_coverage;
    o.byte_fallback = a.byte_fallback;
    report["model"] = train_sentencepiece(files, o, a.out).string();
#else
    throw biolm::ConfigError("--kind", "this biolm was built without SentencePiece");
#endif
  } else {
    throw biolm::ConfigError("--kind", "expected sentencepiece or wordpiece, got \"" + a.kind + "\"");
  }
  std::cout << report.dump() << "\n";
}

void run_encode(const EncodeArgs& a) {
  auto t = biolm::tokenize::load_tokenizer(a.tokenizer);
  const auto e = t->encode(a.text, !a.no_special);
  nlohmann::json out = {{"kind", t->kind()},
                        {"ids", e.ids},
                        {"tokens", biolm::tokenize::id_tokens(*t, e.ids)},
                        {"offsets", e.offsets},
                        {"word_ids", e.word_ids}};
  // Invalid UTF-8 in a token (a byte piece) is written as U+FFFD rather than failing.
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

const bool registered = biolm::cli::register_command(
    {"tokenizer", "train a tokenizer or show how one encodes a text", [](CLI::App& sub) {
       sub.require_subcommand(1);
       auto train = std::make_shared<TrainArgs>();
       CLI::App* tr = sub.add_subcommand("train", "learn a SentencePiece model or a WordPiece vocabulary");
       tr->add_option("--kind", train->kind, "sentencepiece|wordpiece")->capture_default_str();
       tr->add_option("--vocab-size", train->vocab_size, "vocabulary size")->capture_default_str();
       tr->add_option("--input", train->inputs, "plain-text corpus files, one sentence per line")->required();
       tr->add_option("--out", train->out,
                      "sentencepiece: model prefix (writes PREFIX.model, PREFIX.vocab); "
                      "wordpiece: a directory (vocab.txt + HF config) or a .txt file")
           ->required();
       tr->add_option("--model-type", train->model_type, "sentencepiece: unigram|bpe")->capture_default_str();
       tr->add_option("--character-coverage", train->character_coverage, "sentencepiece")->capture_default_str();
       tr->add_flag("--byte-fallback", train->byte_fallback, "sentencepiece: byte pieces for unseen characters");
       tr->add_flag("--cased", train->cased, "wordpiece: keep case and accents");
       tr->add_option("--min-frequency", train->min_frequency, "wordpiece: least count of a merged pair")
           ->capture_default_str();
       tr->callback([train] { run_train(*train); });

       auto enc = std::make_shared<EncodeArgs>();
       CLI::App* en = sub.add_subcommand("encode", "print ids, tokens, offsets and word ids as JSON");
       en->add_option("--tokenizer", enc->tokenizer, "HF directory, tokenizer.json, tokenizer.model or vocab.txt")
           ->required();
       en->add_option("text", enc->text, "the text to encode")->required();
       en->add_flag("--no-special", enc->no_special, "do not add [CLS]/[SEP], <s> ...");
       en->callback([enc] { run_encode(*enc); });
     }});

}  // namespace
