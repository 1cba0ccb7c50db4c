# `biolm eval` on the model directories the finetune smoke tests write (tests/CMakeLists.txt:
# cli::finetune_<task>, output ${cli_out}/<task>, eval.bootstrap=200, seed 13 from the demo
# configs): the numbers must equal finetune's own test metrics.
foreach(pair "ner;f1;data/ner/test.conll" "sts;pearson;data/sts/test.tsv" "nli;accuracy;data/nli/test.jsonl")
  list(GET pair 0 task)
  list(GET pair 1 metric)
  list(GET pair 2 file)
  set_tests_properties(cli::finetune_${task} PROPERTIES FIXTURES_SETUP finetune_${task}_model)
  biolm_eval_matches_finetune(cli::eval_task_${task} ${cli_out}/${task} ${task} ${file} ${metric} finetune_${task}_model)
endforeach()
# A finetune model on another task's head is refused, naming both kinds.
add_test(NAME cli::eval_task_wrong_head
  COMMAND ${BIOLM_EXE} eval --model ${cli_out}/ner/model --task sts --data data/sts/test.tsv
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::eval_task_wrong_head PROPERTIES FIXTURES_REQUIRED finetune_ner_model
  PASS_REGULAR_EXPRESSION "holds a token_classification model; task sts needs a regression model")
