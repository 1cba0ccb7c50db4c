// SentencePiece behind our interface agrees with SentencePiece's own processor (ids, spans,
// decoding), byte fallback works, and training produces a model both load. The test also runs a
// LibTorch op in the same process (the protobuf clash of DESIGN.md "Traps" would crash it).
#include <catch2/catch.hpp>
#include <sentencepiece.pb.h>
#include <sentencepiece_processor.h>
#include <torch/torch.h>

#include "biolm/core/error.h"
#include "biolm/tokenize/sentencepiece.h"
#include "support/test_util.h"

using namespace biolm;
using namespace biolm::tokenize;

namespace {

void check_against_reference(const SentencePieceTokenizer& ours, const sentencepiece::SentencePieceProcessor& ref,
                             const std::string& text) {
  INFO(text);
  std::vector<int> ref_ids;
  REQUIRE(ref.Encode(text, &ref_ids).ok());
  const auto e = ours.encode(text, false);
  REQUIRE(e.ids.size() == ref_ids.size());
  for (size_t i = 0; i < ref_ids.size(); ++i) CHECK(e.ids[i] == ref_ids[i]);
  // Offsets are the reference's spans, and slice back to each piece's surface text, except where
  // SentencePiece gives a piece an empty span (the first pieces of a byte-fallback character, a
  // dummy-prefix "▁" of its own at the start): there, as in HF, the piece spans the one whole
  // character. (Other empty spans, from characters NFKC expands into several pieces, stay.)
  sentencepiece::SentencePieceText spt;
  REQUIRE(ref.Encode(text, &spt).ok());
  REQUIRE(static_cast<size_t>(spt.pieces_size()) == e.ids.size());
  for (size_t i = 0; i < e.ids.size(); ++i) {
    const auto& p = spt.pieces(static_cast<int>(i));
    CHECK(e.offsets[i].first == p.begin());
    CHECK(text.substr(static_cast<size_t>(p.begin()), p.end() - p.begin()) == p.surface());
    const bool whole_char = p.begin() == p.end() &&
                            (ours.is_byte_piece(e.ids[i]) || (p.begin() == 0 && p.piece() == "\xE2\x96\x81"));
    if (!whole_char) {
      CHECK(e.offsets[i].second == p.end());
    } else {
      const auto len = e.offsets[i].second - e.offsets[i].first;
      const auto lead = static_cast<unsigned char>(text[static_cast<size_t>(p.begin())]);
      CHECK(len == (lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4));
    }
  }
  std::string ref_text;
  REQUIRE(ref.Decode(ref_ids, &ref_text).ok());
  CHECK(ours.decode(e.ids) == ref_text);
  // With BOS added, the rest is unchanged.
  const auto with_bos = ours.encode(text, true);
  REQUIRE(with_bos.ids.size() == e.ids.size() + 1);
  CHECK(with_bos.ids[0] == 1);
  CHECK(with_bos.word_ids[0] == -1);
}

}  // namespace

TEST_CASE("SentencePiece models encode like SentencePiece itself", "[tokenize][sentencepiece][shared]") {
  CHECK(torch::ones({2, 2}).sum().item<float>() == 4.0f);  // LibTorch alive next to SentencePiece
  SECTION("English unigram model") {
    BIOLM_SHARED_DATA_OR_SKIP(model, "tokenizers/sentencepiece_test/test_model.model");
    auto t = SentencePieceTokenizer::from_file(model);
    sentencepiece::SentencePieceProcessor ref;
    REQUIRE(ref.Load(model.string()).ok());
    CHECK(t->vocab_size() == 1000);
    CHECK(*t->special().unk == 0);
    CHECK(*t->special().bos == 1);
    CHECK(*t->special().eos == 2);
    CHECK(!t->special().pad);
    CHECK(t->id_to_token(3) == "\r");
    for (const std::string s : {"I saw a girl with a telescope.", "Interleukin-6 (IL-6) and 5-FU in p53-null cells.",
                                "Sjögren's syndrome: ¼ of patients, ＡＢＣ full-width", "  spaces   inside  ", ""})
      check_against_reference(*t, ref, s);
    // Plain ASCII text survives the round trip.
    const std::string s = "I saw a girl with a telescope.";
    CHECK(t->decode(t->encode(s).ids) == s);
    CHECK(t->decode(t->encode(s).ids, false) == "<s>" + s);
    // word_ids: a new word at each piece starting with U+2581.
    const auto e = t->encode("hello world", false);
    CHECK(e.word_ids.front() == 0);
    CHECK(e.word_ids.back() == 1);
    CHECK(t->token_to_id("<s>") == std::optional<int64_t>(1));
    CHECK(!t->token_to_id("no-such-piece-here"));
  }
  SECTION("Japanese unigram model") {
    BIOLM_SHARED_DATA_OR_SKIP(model, "tokenizers/sentencepiece_test/test_ja_model.model");
    auto t = SentencePieceTokenizer::from_file(model);
    sentencepiece::SentencePieceProcessor ref;
    REQUIRE(ref.Load(model.string()).ok());
    CHECK(t->vocab_size() == 8000);
    for (const std::string s : {"吾輩は猫である。名前はまだ無い。", "インターロイキン6 (IL-6) の濃度", "東京都"})
      check_against_reference(*t, ref, s);
    const std::string s = "吾輩は猫である。";
    CHECK(t->decode(t->encode(s).ids) == s);
  }
  CHECK_THROWS_AS(SentencePieceTokenizer::from_serialized("not a model"), ConfigError);
}

TEST_CASE("SentencePiece training, byte fallback and saving", "[tokenize][sentencepiece][train]") {
  biolm::test::TempDir dir("spm");
  std::string corpus;
  const char* lines[] = {"Interleukin 6 levels were elevated in patients with rheumatoid arthritis.",
                         "The tumour suppressor p53 is mutated in many cancers.",
                         "Fluorouracil is an antimetabolite used in colorectal cancer.",
                         "Patients received methotrexate and were followed for twelve months.",
                         "Expression of the gene was measured by quantitative PCR in all samples."};
  for (int rep = 0; rep < 40; ++rep)
    for (const char* l : lines) corpus += std::string(l) + "\n";
  biolm::test::write_text(dir / "corpus.txt", corpus);
  for (auto type : {SentencePieceModelType::Unigram, SentencePieceModelType::Bpe}) {
    SentencePieceTrainOptions o;
    o.vocab_size = 330;
    o.model_type = type;
    o.byte_fallback = true;
    o.character_coverage = 1.0;
    o.hard_vocab_limit = false;
    const auto prefix = dir / (type == SentencePieceModelType::Bpe ? "bpe" : "uni");
    const auto model = train_sentencepiece({dir / "corpus.txt"}, o, prefix);
    REQUIRE(std::filesystem::exists(model));
    REQUIRE(std::filesystem::exists(prefix.string() + ".vocab"));
    auto t = SentencePieceTokenizer::from_file(model);
    sentencepiece::SentencePieceProcessor ref;
    REQUIRE(ref.Load(model.string()).ok());
    check_against_reference(*t, ref, "Interleukin 6 levels in patients.");
    // Characters never seen in training come out as UTF-8 byte pieces and decode back exactly.
    const std::string unseen = "Sjögren 中";
    check_against_reference(*t, ref, unseen);
    const auto e = t->encode(unseen, false);
    int bytes = 0;
    for (auto id : e.ids) {
      if (!t->is_byte_piece(id)) continue;
      ++bytes;
      CHECK(t->id_to_token(id).rfind("<0x", 0) == 0);
    }
    CHECK(bytes == 1 + 1 + 2 + 3);  // the corpus has no 'S' nor 'j'; ö is 2 bytes, 中 is 3
    CHECK(t->decode(e.ids) == unseen);

    // Saving keeps the exact model bytes and the BOS/EOS settings.
    biolm::test::TempDir out("spm_out");
    t->save(out.path());
    auto back = load_tokenizer(out.path());
    CHECK(back->kind() == "sentencepiece");
    CHECK(back->encode(unseen).ids == t->encode(unseen).ids);
    CHECK(back->fingerprint() == t->fingerprint());
    CHECK(biolm::test::read_text(out / "tokenizer.model") == t->model_bytes());
  }
  SentencePieceTrainOptions too_big;
  too_big.vocab_size = 100000;
  CHECK_THROWS_WITH(train_sentencepiece({dir / "corpus.txt"}, too_big, dir / "big"),
                    Catch::Contains("SentencePiece training failed"));
}
