# biolm tokenizer encode/decode/train --kind bpe on hand-made files (tests/cli/tokenizer/): a
# 14-token vocab.txt (ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, - 5, . 6, , 7, fever 8,
# and 9, cough 10, Fever 11, ##s 12, a 13), three texts in texts.txt, two in texts.jsonl.
set(tok_dir ${CMAKE_CURRENT_SOURCE_DIR}/cli/tokenizer)
set(tok_vocab ${tok_dir}/vocab.txt)

# Many texts in one process: one JSON line per line of the file, in order. "Fever and coughs."
# lower-cases to fever and cough ##s . ; "-fever, a cough" starts with '-'; the last has no known
# word ([UNK] x3).
add_test(NAME cli::tokenizer_encode_lines
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} --input ${tok_dir}/texts.txt)
set_tests_properties(cli::tokenizer_encode_lines PROPERTIES PASS_REGULAR_EXPRESSION
  "\"ids\":\\[2,8,9,10,12,6,3\\][^\n]*\"offsets\":\\[\\[0,0\\],\\[0,5\\],\\[6,9\\],\\[10,15\\],\\[15,16\\],\\[16,17\\],\\[0,0\\]\\][^\n]*\n\\{\"ids\":\\[2,5,8,7,13,10,3\\][^\n]*\n\\{\"ids\":\\[2,1,1,1,3\\]")

# A JSONL field, offsets in code points; "-cough" is the second text.
add_test(NAME cli::tokenizer_encode_jsonl
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} --jsonl ${tok_dir}/texts.jsonl --field note
          --offsets chars)
set_tests_properties(cli::tokenizer_encode_jsonl PROPERTIES PASS_REGULAR_EXPRESSION
  "\"ids\":\\[2,8,9,10,6,3\\][^\n]*\n\\{\"ids\":\\[2,5,10,3\\],\"kind\":\"wordpiece\",\"offsets\":\\[\\[0,0\\],\\[0,1\\],\\[1,6\\],\\[0,0\\]\\]")

# A line without the field is a data error naming file, line and field (exit 3).
add_test(NAME cli::tokenizer_encode_bad_jsonl
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} --jsonl ${tok_dir}/bad.jsonl --field note)
set_tests_properties(cli::tokenizer_encode_bad_jsonl PROPERTIES PASS_REGULAR_EXPRESSION
  "bad.jsonl:2: field 'note'")
add_test(NAME cli::tokenizer_encode_bad_jsonl_exit
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} --jsonl ${tok_dir}/bad.jsonl --field note)
set_tests_properties(cli::tokenizer_encode_bad_jsonl_exit PROPERTIES WILL_FAIL TRUE)

# Texts from stdin (no text argument, no file); a text that starts with '-' after --.
add_test(NAME cli::tokenizer_encode_stdin
  COMMAND sh -c "printf 'fever\\n-cough\\n' | '${BIOLM_EXE}' tokenizer encode --tokenizer '${tok_vocab}' --no-special")
set_tests_properties(cli::tokenizer_encode_stdin PROPERTIES PASS_REGULAR_EXPRESSION
  "\"ids\":\\[8\\][^\n]*\n\\{\"ids\":\\[5,10\\]")
add_test(NAME cli::tokenizer_encode_dash
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} -- -fever)
set_tests_properties(cli::tokenizer_encode_dash PROPERTIES PASS_REGULAR_EXPRESSION
  "\"tokens\":\\[\"\\[CLS\\]\",\"-\",\"fever\",\"\\[SEP\\]\"\\]")

# Casing: the bare vocab.txt lower-cases by BERT's default, says so, and warns (Fever is a token);
# --cased keeps "Fever" (id 11) and says where the casing came from.
add_test(NAME cli::tokenizer_casing_default
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} Fever)
set_tests_properties(cli::tokenizer_casing_default PROPERTIES PASS_REGULAR_EXPRESSION
  "lower-casing \\(from no do_lower_case beside it: BERT's default\\).*1 of 14 tokens hold upper-case")
add_test(NAME cli::tokenizer_casing_option
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${tok_vocab} --cased Fever)
set_tests_properties(cli::tokenizer_casing_option PROPERTIES PASS_REGULAR_EXPRESSION
  "\"ids\":\\[2,11,3\\].*cased \\(no lower-casing\\) \\(from the caller's option\\)|cased \\(no lower-casing\\) \\(from the caller's option\\).*\"ids\":\\[2,11,3\\]")

# Decode: ids as arguments (specials skipped; "##s" glued, no space before "."), with
# --keep-special, and encode's output piped back in.
add_test(NAME cli::tokenizer_decode
  COMMAND ${BIOLM_EXE} tokenizer decode --tokenizer ${tok_vocab} 2 11 9 10 12 6 3)
set_tests_properties(cli::tokenizer_decode PROPERTIES PASS_REGULAR_EXPRESSION "\\{\"text\":\"Fever and coughs.\"\\}")
add_test(NAME cli::tokenizer_decode_keep_special
  COMMAND ${BIOLM_EXE} tokenizer decode --tokenizer ${tok_vocab} --keep-special 2 11 9 10 12 6 3)
set_tests_properties(cli::tokenizer_decode_keep_special PROPERTIES PASS_REGULAR_EXPRESSION
  "\\{\"text\":\"\\[CLS\\] Fever and coughs. \\[SEP\\]\"\\}")
add_test(NAME cli::tokenizer_encode_decode_pipe
  COMMAND sh -c "'${BIOLM_EXE}' --log-level warn tokenizer encode --tokenizer '${tok_vocab}' --input '${tok_dir}/texts.txt' | '${BIOLM_EXE}' --log-level warn tokenizer decode --tokenizer '${tok_vocab}'")
set_tests_properties(cli::tokenizer_encode_decode_pipe PROPERTIES PASS_REGULAR_EXPRESSION
  "\\{\"text\":\"fever and coughs.\"\\}\n\\{\"text\":\"- fever, a cough\"\\}\n\\{\"text\":\"\"\\}")

# Byte-level BPE training: tokenizers' BpeTrainer(vocab_size=300, min_frequency=2,
# special_tokens=["<|endoftext|>"], initial_alphabet=ByteLevel.alphabet()) on the same file makes
# 43 merges (256 bytes + 1 special + 43 = 300), the 15th and 16th being "i th" and "Ġw ith";
# the parity suite compares all merges on MEDLINE text.
add_test(NAME cli::tokenizer_train_bpe
  COMMAND ${BIOLM_EXE} tokenizer train --kind bpe --vocab-size 300 --min-frequency 2 --input data/corpus/notes.txt
          --out ${cli_out}/tokenizer_bpe
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::tokenizer_train_bpe PROPERTIES FIXTURES_SETUP cli_bpe
  PASS_REGULAR_EXPRESSION "\"kind\":\"bpe\",\"merges\":43,.*\"vocab_size\":300")
add_test(NAME cli::tokenizer_train_bpe_merges
  COMMAND ${CMAKE_COMMAND} -E cat ${cli_out}/tokenizer_bpe/merges.txt)
set_tests_properties(cli::tokenizer_train_bpe_merges PROPERTIES FIXTURES_REQUIRED cli_bpe
  PASS_REGULAR_EXPRESSION "^#version: 0.2\ni n\no n\nĠ w\n.*\ne a\ni th\nĠw ith\n")
# The trained directory loads back (tokenizer.json wins) and keeps <|endoftext|> whole; " with"
# is one token (merge 16) whose offsets leave out the space, "with" at the start is w + ith.
add_test(NAME cli::tokenizer_bpe_encode
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${cli_out}/tokenizer_bpe "with<|endoftext|> with")
set_tests_properties(cli::tokenizer_bpe_encode PROPERTIES FIXTURES_REQUIRED cli_bpe
  PASS_REGULAR_EXPRESSION "\"offsets\":\\[\\[0,1\\],\\[1,4\\],\\[4,17\\],\\[18,22\\]\\],\"tokens\":\\[\"w\",\"ith\",\"<\\|endoftext\\|>\",\"Ġwith\"\\]")
