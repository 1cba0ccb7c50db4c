// `biolm tokenizer train|encode|decode`: learn a SentencePiece model, a WordPiece vocabulary or a
// byte-level BPE; encode many texts (arguments, a file of lines, a JSONL field or stdin) to one
// JSON line each (ids, tokens, offsets, word ids); decode id lists back to text.
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "biolm/config.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/tokenize/bpe.h"
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
  std::vector<std::string> special_tokens;
  bool add_prefix_space = false;
};

struct EncodeArgs {
  std::string tokenizer;
  std::vector<std::string> texts;
  std::string input;
  std::string jsonl;
  std::string field = "text";
  std::string offsets = "bytes";
  bool no_special = false;
  bool cased = false;
  bool uncased = false;
};

struct DecodeArgs {
  std::string tokenizer;
  std::vector<int64_t> ids;
  std::string input;
  bool keep_special = false;
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
  } else if (a.kind == "bpe") {
    BpeTrainOptions o;
    o.vocab_size = a.vocab_size;
    o.min_frequency = a.min_frequency;
    if (!a.special_tokens.empty()) o.special_tokens = a.special_tokens;
    o.add_prefix_space = a.add_prefix_space;
    const auto t = train_bpe(files, o);
    t->save(a.out);
    t->save_vocab_merges(a.out);
    report["out"] = a.out;
    report["vocab_size"] = t->vocab_size();
    report["merges"] = t->merges().size();
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
    throw biolm::ConfigError("--kind", "expected sentencepiece, wordpiece or bpe, got \"" + a.kind + "\"");
  }
  std::cout << report.dump() << "\n";
}

// Calls fn(line, line_number) for each line of `path` ("-": stdin) without its "\n" (and "\r").
template <typename Fn>
void for_each_line(const std::string& path, Fn fn) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw biolm::IoError::from_errno(path, "cannot open input");
    in = &file;
  }
  std::string line;
  int64_t n = 0;
  while (std::getline(*in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    fn(line, n);
  }
}

biolm::tokenize::LoadOptions load_options(bool cased, bool uncased) {
  biolm::tokenize::LoadOptions o;
  if (cased) o.lowercase = false;
  if (uncased) o.lowercase = true;
  return o;
}

void run_encode(const EncodeArgs& a) {
  if (a.offsets != "bytes" && a.offsets != "chars")
    throw biolm::ConfigError("--offsets", "expected bytes or chars, got \"" + a.offsets + "\"");
  const auto t = biolm::tokenize::load_tokenizer(a.tokenizer, load_options(a.cased, a.uncased));
  const bool chars = a.offsets == "chars";
  const std::string kind = t->kind();
  auto emit = [&](const std::string& text) {
    const auto e = t->encode(text, !a.no_special);
    nlohmann::json out = {{"kind", kind},
                          {"ids", e.ids},
                          {"tokens", biolm::tokenize::id_tokens(*t, e.ids)},
                          {"offsets", chars ? biolm::tokenize::char_offsets(text, e.offsets) : e.offsets},
                          {"word_ids", e.word_ids}};
    // Invalid UTF-8 in a token (a byte piece) is written as U+FFFD rather than failing.
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  };
  const bool from_files = !a.input.empty() || !a.jsonl.empty();
  for (const auto& text : a.texts) emit(text);
  if (!a.input.empty()) for_each_line(a.input, [&](const std::string& line, int64_t) { emit(line); });
  if (!a.jsonl.empty()) {
    for_each_line(a.jsonl, [&](const std::string& line, int64_t n) {
      if (line.empty()) return;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& err) {
        throw biolm::DataError(a.jsonl, n, "", std::string("not JSON: ") + err.what());
      }
      if (!j.is_object() || !j.contains(a.field) || !j[a.field].is_string())
        throw biolm::DataError(a.jsonl, n, a.field, "expected an object with a string field \"" + a.field + "\"");
      emit(j[a.field].get<std::string>());
    });
  }
  if (a.texts.empty() && !from_files) for_each_line("-", [&](const std::string& line, int64_t) { emit(line); });
}

void run_decode(const DecodeArgs& a) {
  const auto t = biolm::tokenize::load_tokenizer(a.tokenizer);
  auto emit = [&](const std::vector<int64_t>& ids) {
    const nlohmann::json out = {{"text", biolm::tokenize::to_valid_utf8(t->decode(ids, !a.keep_special))}};
    std::cout << out.dump() << "\n";
  };
  if (!a.ids.empty()) emit(a.ids);
  const std::string input = !a.input.empty() ? a.input : (a.ids.empty() ? "-" : "");
  if (input.empty()) return;
  // Each line: a JSON array of ids, or an object with "ids" (what `encode` writes).
  for_each_line(input, [&](const std::string& line, int64_t n) {
    if (line.empty()) return;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& err) {
      throw biolm::DataError(input, n, "", std::string("not JSON: ") + err.what());
    }
    if (j.is_object() && j.contains("ids")) j = j["ids"];
    if (!j.is_array() || !std::all_of(j.begin(), j.end(), [](const nlohmann::json& x) { return x.is_number_integer(); }))
      throw biolm::DataError(input, n, "ids", "expected a JSON array of integer ids or an object with one");
    emit(j.get<std::vector<int64_t>>());
  });
}

const bool registered = biolm::cli::register_command(
    {"tokenizer", "train a tokenizer, encode texts or decode ids", [](CLI::App& sub) {
       sub.require_subcommand(1);
       auto train = std::make_shared<TrainArgs>();
       CLI::App* tr = sub.add_subcommand("train", "learn a SentencePiece model, a WordPiece vocabulary or a byte-level BPE");
       tr->add_option("--kind", train->kind, "sentencepiece|wordpiece|bpe")->capture_default_str();
       tr->add_option("--vocab-size", train->vocab_size, "vocabulary size")->capture_default_str();
       tr->add_option("--input", train->inputs, "plain-text corpus files, one sentence per line")->required();
       tr->add_option("--out", train->out,
                      "sentencepiece: model prefix (writes PREFIX.model, PREFIX.vocab); "
                      "wordpiece: a directory (vocab.txt + HF config) or a .txt file; "
                      "bpe: a directory (tokenizer.json, vocab.json, merges.txt + HF config)")
           ->required();
       tr->add_option("--model-type", train->model_type, "sentencepiece: unigram|bpe")->capture_default_str();
       tr->add_option("--character-coverage", train->character_coverage, "sentencepiece")->capture_default_str();
       tr->add_flag("--byte-fallback", train->byte_fallback, "sentencepiece: byte pieces for unseen characters");
       tr->add_flag("--cased", train->cased, "wordpiece: keep case and accents");
       tr->add_option("--min-frequency", train->min_frequency, "wordpiece, bpe: least count of a merged pair")
           ->capture_default_str();
       tr->add_option("--special", train->special_tokens, "bpe: special tokens, ids 0.. (default <|endoftext|>)");
       tr->add_flag("--add-prefix-space", train->add_prefix_space, "bpe: ByteLevel add_prefix_space");
       tr->callback([train] { run_train(*train); });

       auto enc = std::make_shared<EncodeArgs>();
       CLI::App* en = sub.add_subcommand(
           "encode",
           "encode texts, one JSON line each (ids, tokens, offsets, word_ids); texts from arguments, --input, "
           "--jsonl, else stdin lines. A text starting with '-' goes after -- or in --text");
       en->add_option("--tokenizer", enc->tokenizer, "HF directory, tokenizer.json, tokenizer.model or vocab.txt")
           ->required();
       en->add_option("texts", enc->texts, "texts to encode");
       en->add_option("--text", enc->texts, "a text to encode (may start with '-'); repeatable");
       en->add_option("--input", enc->input, "a file of texts, one per line ('-': stdin)");
       en->add_option("--jsonl", enc->jsonl, "a JSONL file ('-': stdin); the text is in --field");
       en->add_option("--field", enc->field, "the JSONL field holding the text")->capture_default_str();
       en->add_option("--offsets", enc->offsets, "bytes (UTF-8 byte offsets) | chars (code points, as HF reports)")
           ->capture_default_str();
       en->add_flag("--no-special", enc->no_special, "do not add [CLS]/[SEP], <s> ...");
       auto* cased = en->add_flag("--cased", enc->cased, "WordPiece: no lower-casing, whatever the files say");
       en->add_flag("--uncased", enc->uncased, "WordPiece: lower-case, whatever the files say")->excludes(cased);
       en->callback([enc] { run_encode(*enc); });

       auto dec = std::make_shared<DecodeArgs>();
       CLI::App* de = sub.add_subcommand(
           "decode", "ids -> text, one JSON line {\"text\": ...} per id list; ids as arguments, else lines of "
                     "--input or stdin (a JSON array, or encode's output lines)");
       de->add_option("--tokenizer", dec->tokenizer, "HF directory, tokenizer.json, tokenizer.model or vocab.txt")
           ->required();
       de->add_option("ids", dec->ids, "token ids of one text");
       de->add_option("--input", dec->input, "a file of id lists, one JSON line each ('-': stdin)");
       de->add_flag("--keep-special", dec->keep_special, "keep special tokens ([CLS], <s>, <|endoftext|> ...)");
       de->callback([dec] { run_decode(*dec); });
     }});

}  // namespace
