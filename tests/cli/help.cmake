# `biolm finetune --help` / `biolm pretrain --help` list the config sections and the keys people
# use most, and point to docs/cli.md.
add_test(NAME cli::finetune_help COMMAND ${BIOLM_EXE} finetune --help)
set_tests_properties(cli::finetune_help PROPERTIES
  PASS_REGULAR_EXPRESSION "docs/cli.md.*peft\\.\\*  +method \\(full \\| lora \\| ia3 \\| prompt \\| hybrid\\).*train\\.\\*  +max_steps.*resume")
add_test(NAME cli::pretrain_help COMMAND ${BIOLM_EXE} pretrain --help)
set_tests_properties(cli::pretrain_help PROPERTIES PASS_REGULAR_EXPRESSION "model\\.\\*  +init \\(biolm or Hugging Face directory")
# A typo under train. or peft. stops the run before any work: no vocabulary trained, no
# features made (docs/cli.md promises it).
add_test(NAME cli::typo_before_work
  COMMAND ${BIOLM_EXE} finetune --config examples/configs/ner_demo.yaml output=${cli_out}/typo train.no_such_key=3
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::typo_before_work PROPERTIES PASS_REGULAR_EXPRESSION "train.no_such_key"
  FAIL_REGULAR_EXPRESSION "train rows|peft: method")
add_test(NAME cli::peft_typo_before_work
  COMMAND ${BIOLM_EXE} finetune --config examples/configs/ner_demo.yaml output=${cli_out}/typo2 peft.lora.rnk=4 peft.method=lora
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::peft_typo_before_work PROPERTIES PASS_REGULAR_EXPRESSION "peft.lora.rnk"
  FAIL_REGULAR_EXPRESSION "train rows|peft: method")
# Every problem of the whole config in one message, exit 2, before any work: a typo under train.
# and a wrong type under model. (the vocabulary is not trained, no features are made).
add_test(NAME cli::config_all_errors_before_work
  COMMAND ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DWORKDIR=${PROJECT_SOURCE_DIR} -DEXPECT_EXIT=2
          "-DEXPECT_STDERR=config: 2 errors\n  config 'train.no_such_key': unknown key[^\n]*\n  config 'model.hidden_size': expected an integer, found \"abc\""
          "-DREJECT_STDERR=train rows|peft: method|vocab"
          "-DARGS=finetune;--config;examples/configs/ner_demo.yaml;output=${cli_out}/all_errors;train.no_such_key=3;model.hidden_size=abc"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/eval_check.cmake)
