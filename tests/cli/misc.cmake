# Every subcommand answers --help; tokenizer train/encode, metrics on hand-made files (expected
# values worked out by hand in the comments).
foreach(cmd tokenizer data pretrain finetune eval generate metrics report convert inspect launch)
  add_test(NAME cli::help_${cmd} COMMAND ${BIOLM_EXE} ${cmd} --help)
  set_tests_properties(cli::help_${cmd} PROPERTIES PASS_REGULAR_EXPRESSION "Usage:.*${cmd}")
endforeach()

add_test(NAME cli::tokenizer_train
  COMMAND ${BIOLM_EXE} tokenizer train --kind wordpiece --vocab-size 400 --input data/corpus/notes.txt
          --out ${cli_out}/tokenizer/vocab.txt
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::tokenizer_train PROPERTIES FIXTURES_SETUP cli_vocab)
# The trained vocabulary splits a sentence into pieces with byte offsets: "and" is a whole word
# of the corpus, so it is one token spanning bytes [6, 9) of "Fever and cough."
add_test(NAME cli::tokenizer_encode
  COMMAND ${BIOLM_EXE} tokenizer encode --tokenizer ${cli_out}/tokenizer/vocab.txt "Fever and cough."
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::tokenizer_encode PROPERTIES FIXTURES_REQUIRED cli_vocab
  PASS_REGULAR_EXPRESSION "\\[6,9\\].*\"tokens\":\\[\"\\[CLS\\]\",(\"[^\"]*\",)*\"and\"")

# NER: gold has 3 entities (Disease Fever, Disease cough, Drug Aspirin); the prediction tags
# Fever I-Disease (no B-), cough B-Disease, Aspirin O. Default (conlleval-like) mode reads the
# lone I- as a start: 2 predicted, both right -> P 1, R 2/3, F1 0.8. Strict IOB2 drops it:
# 1 predicted -> P 1, R 1/3, F1 0.5.
add_test(NAME cli::metrics_ner_default
  COMMAND ${BIOLM_EXE} metrics ner --gold tests/cli/metrics/gold.conll --pred tests/cli/metrics/pred.conll
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::metrics_ner_default PROPERTIES PASS_REGULAR_EXPRESSION "\"f1\": 0\\.(8[,\n]|8000|7999)")
add_test(NAME cli::metrics_ner_strict
  COMMAND ${BIOLM_EXE} metrics ner --mode strict --scheme IOB2 --gold tests/cli/metrics/gold.conll
          --pred tests/cli/metrics/pred.conll
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::metrics_ner_strict PROPERTIES PASS_REGULAR_EXPRESSION "\"f1\": 0\\.5[,\n]")
# cls: gold a a b b c, pred a b b b a -> 3 of 5 right.
add_test(NAME cli::metrics_cls
  COMMAND ${BIOLM_EXE} metrics cls --gold tests/cli/metrics/gold_cls.txt --pred tests/cli/metrics/pred_cls.txt
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::metrics_cls PROPERTIES PASS_REGULAR_EXPRESSION "\"accuracy\": 0\\.6[,\n]")
