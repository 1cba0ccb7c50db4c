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
