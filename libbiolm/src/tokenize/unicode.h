// Internal Unicode helpers for the tokenizers: UTF-8 decoding with byte spans, the character
// classes BERT's BasicTokenizer and the GPT-2 / LLaMA-3 pre-tokenizers ask about, NFD and
// lower-casing. Category tables, NFD and lower-casing cover all of Unicode (UCD 14.0,
// tools/gen_unicode_tables.py; docs/tokenizers.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace biolm::tokenize::unicode {

/// One code point and the bytes [begin, end) it came from in the original text.
struct Char {
  char32_t cp;
  int64_t begin;
  int64_t end;
};

/// Decodes UTF-8; each invalid byte becomes U+FFFD spanning that byte.
std::vector<Char> decode(std::string_view text, int64_t base = 0);
void append_utf8(std::string& out, char32_t cp);
std::string encode(const std::vector<Char>& chars, size_t begin, size_t end);

bool is_letter(char32_t cp);        // General_Category L*
bool is_number(char32_t cp);        // N*
bool is_punctuation(char32_t cp);   // P*
bool is_nonspacing_mark(char32_t cp);  // Mn
bool is_space_separator(char32_t cp);  // Zs
bool is_control_or_format(char32_t cp);  // Cc, Cf
bool is_other(char32_t cp);         // C*: Cc, Cf, Cs, Co, Cn (Rust's is_other, HF's BertNormalizer)
bool is_white_space(char32_t cp);   // the White_Space property (what regex \s means)
bool is_cjk(char32_t cp);           // the CJK ideograph blocks BERT isolates

/// Canonical decomposition of one code point (itself when it has none). The marks are not
/// reordered by combining class (what accent stripping does next makes that moot).
void nfd(char32_t cp, std::vector<char32_t>& out);
/// Lower-case mapping (Python's str.lower / Rust's char::to_lowercase; U+0130 -> "i\u0307").
void to_lower(char32_t cp, std::vector<char32_t>& out);

/// 64-bit FNV-1a, for tokenizer fingerprints.
uint64_t fnv1a(std::string_view bytes, uint64_t seed = 1469598103934665603ULL);

}  // namespace biolm::tokenize::unicode
