# biolm eval: zero-/few-shot decoders and fine-tuned heads on the shipped synthetic PubMedQA,
# MedQA and instruction files. The model directories come from a hidden Catch2 case of
# test_eval run as a fixture (random seeded weights: the command is tested, not the model);
# scripts/eval_check.cmake parses the printed JSON and checks each metric lies in [0, 1] inside its
# bootstrap interval, and the exit code and message of the refusals.
set(eval_models ${cli_out}/eval_models)
set(eval_out ${cli_out}/eval)
set(eval_check ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DWORKDIR=${PROJECT_SOURCE_DIR})
set(eval_script -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/eval_check.cmake)

add_test(NAME cli::eval_make_models COMMAND $<TARGET_FILE:test_eval> "[.make_eval_model]")
set_tests_properties(cli::eval_make_models PROPERTIES
  ENVIRONMENT "BIOLM_EVAL_MODEL_DIR=${eval_models}" FIXTURES_SETUP eval_models)

# name; fields expected; metrics expected; biolm eval arguments
function(biolm_eval_test name fields metrics)
  add_test(NAME cli::eval_${name}
    COMMAND ${eval_check} "-DEXPECT_FIELDS=${fields}" "-DEXPECT_METRICS=${metrics}" "-DARGS=eval;${ARGN}" ${eval_script})
  set_tests_properties(cli::eval_${name} PROPERTIES FIXTURES_REQUIRED eval_models)
endfunction()

biolm_eval_test(pubmedqa_zero_shot "task=pubmedqa;mode=loglik;shots=0;n=20;model_kind=causal_lm"
  "accuracy;accuracy_norm;macro_f1"
  --model ${eval_models}/decoder --task pubmedqa --data data/pubmedqa/test.json --limit 20 --bootstrap 200
  --out ${eval_out}/pubmedqa_zero_shot.json --predictions ${eval_out}/pubmedqa_zero_shot.jsonl)
biolm_eval_test(medqa_few_shot "task=medqa;mode=loglik;shots=2;n=10"
  "accuracy;accuracy_norm"
  --model ${eval_models}/decoder --task medqa --data data/mcqa/test.jsonl --shots 2
  --shots-from data/mcqa/train.jsonl --seed 3 --limit 10 --bootstrap 200)
biolm_eval_test(medqa_generate "task=medqa;mode=generate;n=5" "accuracy"
  --model ${eval_models}/decoder --task medqa --data data/mcqa/test.jsonl --mode generate --limit 5
  --max-new-tokens 4 --bootstrap 100)
biolm_eval_test(pubmedqa_cot "task=pubmedqa;mode=generate;n=3" "accuracy"
  --model ${eval_models}/decoder --task pubmedqa --data data/pubmedqa/test.json --cot --shots 1 --limit 3
  --max-new-tokens 8 --bootstrap 100)
biolm_eval_test(qa_gen "task=qa-gen;mode=generate;n=5" "exact_match;f1;bleu1;rouge_l"
  --model ${eval_models}/decoder --task qa-gen --data data/instruct/train.jsonl --limit 5 --max-new-tokens 4
  --bootstrap 100)
biolm_eval_test(pubmedqa_head "task=pubmedqa;mode=head;model_kind=sequence_classification;n=100" "accuracy;macro_f1"
  --model ${eval_models}/pubmedqa-cls --task pubmedqa --data data/pubmedqa/test.json --bootstrap 200
  --out ${eval_out}/pubmedqa_head.json)
biolm_eval_test(medqa_head "task=medqa;mode=head;model_kind=multiple_choice;n=100" "accuracy;macro_f1"
  --model ${eval_models}/mcqa-mc --task medqa --data data/mcqa/test.jsonl --bootstrap 200)

# The same decoder as a Hugging Face directory gives the same numbers.
add_test(NAME cli::eval_hf_decoder
  COMMAND ${eval_check} "-DEXPECT_FIELDS=source=huggingface;n=20" "-DEXPECT_METRICS=accuracy;accuracy_norm"
          -DSAME_AS=${eval_out}/pubmedqa_zero_shot.json
          "-DARGS=eval;--model;${eval_models}/hf-decoder;--task;pubmedqa;--data;data/pubmedqa/test.json;--limit;20;--bootstrap;200"
          ${eval_script})
set_tests_properties(cli::eval_hf_decoder PROPERTIES FIXTURES_REQUIRED eval_models DEPENDS cli::eval_pubmedqa_zero_shot)

add_test(NAME cli::eval_hf_head
  COMMAND ${eval_check} "-DEXPECT_FIELDS=source=huggingface;mode=head;model_kind=sequence_classification;n=100"
          "-DEXPECT_METRICS=accuracy;macro_f1" -DSAME_AS=${eval_out}/pubmedqa_head.json
          "-DARGS=eval;--model;${eval_models}/hf-pubmedqa-cls;--task;pubmedqa;--data;data/pubmedqa/test.json;--bootstrap;200"
          ${eval_script})
set_tests_properties(cli::eval_hf_head PROPERTIES FIXTURES_REQUIRED eval_models DEPENDS cli::eval_pubmedqa_head)

# A zero-shot row and a fine-tuned row in one report table.
add_test(NAME cli::eval_report
  COMMAND ${BIOLM_EXE} report --runs ${eval_out}/pubmedqa_zero_shot.json ${eval_out}/pubmedqa_head.json
          --out ${eval_out}/report)
set_tests_properties(cli::eval_report PROPERTIES
  DEPENDS "cli::eval_pubmedqa_zero_shot;cli::eval_pubmedqa_head"
  PASS_REGULAR_EXPRESSION "pubmedqa/accuracy \\| pubmedqa/accuracy_norm \\| pubmedqa/macro_f1 \\|.*\n\\| decoder 0-shot loglik \\| 0\\.[0-9]+ \\[0\\.[0-9]+, [01]\\.[0-9]+\\] .*\n\\| pubmedqa-cls fine-tuned \\| 0\\.[0-9]+ \\[[0-9.]+, [0-9.]+\\] \\| – \\|")

# Refusals: wrong model kind (exit 2), a missing file (exit 2), a bad record (exit 3, file:line).
add_test(NAME cli::eval_wrong_kind
  COMMAND ${eval_check} -DEXPECT_EXIT=2
          "-DEXPECT_STDERR=a sequence_classification model cannot be evaluated on medqa: use a causal_lm decoder, or a multiple_choice model"
          "-DARGS=eval;--model;${eval_models}/pubmedqa-cls;--task;medqa;--data;data/mcqa/test.jsonl" ${eval_script})
add_test(NAME cli::eval_head_shots
  COMMAND ${eval_check} -DEXPECT_EXIT=2 "-DEXPECT_STDERR=--shots.*scored through its own head: shots, shots_from, cot and mode apply to causal_lm"
          "-DARGS=eval;--model;${eval_models}/mcqa-mc;--task;medqa;--data;data/mcqa/test.jsonl;--shots;2" ${eval_script})
add_test(NAME cli::eval_missing_file
  COMMAND ${eval_check} -DEXPECT_EXIT=2 "-DEXPECT_STDERR=--data: File does not exist: data/no_such.json"
          "-DARGS=eval;--model;${eval_models}/decoder;--task;pubmedqa;--data;data/no_such.json" ${eval_script})
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/eval_bad_medqa.jsonl
  "{\"question\": \"q1\", \"options\": {\"A\": \"a\", \"B\": \"b\"}, \"answer_idx\": \"B\"}\n{\"question\": \"q2\", \"options\": {\"A\": \"a\", \"B\": \"b\"}}\n")
add_test(NAME cli::eval_bad_record
  COMMAND ${eval_check} -DEXPECT_EXIT=3 "-DEXPECT_STDERR=eval_bad_medqa.jsonl:2: field 'answer_idx'"
          "-DARGS=eval;--model;${eval_models}/decoder;--task;medqa;--data;${CMAKE_CURRENT_BINARY_DIR}/eval_bad_medqa.jsonl"
          ${eval_script})
set_tests_properties(cli::eval_wrong_kind cli::eval_head_shots cli::eval_missing_file cli::eval_bad_record
  PROPERTIES FIXTURES_REQUIRED eval_models)
add_test(NAME cli::eval_missing_model
  COMMAND ${eval_check} -DEXPECT_EXIT=2 "-DEXPECT_STDERR=--model.*no_such_model: no such directory"
          "-DARGS=eval;--model;${eval_models}/no_such_model;--task;pubmedqa;--data;data/pubmedqa/test.json" ${eval_script})
set_tests_properties(cli::eval_missing_model PROPERTIES FIXTURES_REQUIRED eval_models)
# The recipe checks the whole config before loading the model: every problem in one message, each
# named by its flag, exit 2.
add_test(NAME cli::eval_all_errors
  COMMAND ${eval_check} -DEXPECT_EXIT=2
          "-DEXPECT_STDERR=config: 2 errors\n  config '--task': expected one of ner, [^\n]*got \"parse\"\n  config '--shots': must be >= 0"
          "-DARGS=eval;--model;${eval_models}/decoder;--task;parse;--data;data/pubmedqa/test.json;--shots;-1" ${eval_script})
set_tests_properties(cli::eval_all_errors PROPERTIES FIXTURES_REQUIRED eval_models)
