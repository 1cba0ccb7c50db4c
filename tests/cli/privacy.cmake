# `biolm privacy` (the DP-SGD accountant) and `biolm finetune` with train.dp (docs/privacy.md).
# The accountant's numbers are checked against Opacus in tests/parity/test_dp.py; here: the
# command runs, prints the Opacus value (sigma 1.1, q 0.01, 1000 steps, delta 1e-5: 1.71177...),
# and a DP-LoRA fine-tuning run records epsilon in results.json and the model directory.
add_test(NAME cli::privacy_epsilon
  COMMAND ${BIOLM_EXE} privacy epsilon --sigma 1.1 --q 0.01 --steps 1000 --delta 1e-5)
set_tests_properties(cli::privacy_epsilon PROPERTIES PASS_REGULAR_EXPRESSION "\"epsilon\":1\\.71177009122")
add_test(NAME cli::privacy_sigma
  COMMAND ${BIOLM_EXE} privacy sigma --target-epsilon 3 --q 0.01 --steps 1000)
set_tests_properties(cli::privacy_sigma PROPERTIES PASS_REGULAR_EXPRESSION "\"sigma\":0\\.865478515625")
add_test(NAME cli::finetune_ner_dp_lora
  COMMAND bash -c "'${BIOLM_EXE}' --log-level warn finetune --config examples/configs/ner_demo.yaml output='${cli_out}/ner-dp' peft.method=lora train.max_steps=20 train.dp.noise_multiplier=1.0 train.dp.max_grad_norm=1.0 eval.bootstrap=10 && grep -c '\"epsilon\"' '${cli_out}/ner-dp/results.json' '${cli_out}/ner-dp/model/model.json'"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_ner_dp_lora PROPERTIES
  PASS_REGULAR_EXPRESSION "results.json:1.*model.json:1")
add_test(NAME cli::finetune_ner_dp_full_refused
  COMMAND bash -c "'${BIOLM_EXE}' finetune --config examples/configs/ner_demo.yaml output='${cli_out}/ner-dp-full' train.max_steps=2 train.warmup_steps=0 train.dp.noise_multiplier=1.0 2>&1; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_ner_dp_full_refused PROPERTIES
  PASS_REGULAR_EXPRESSION "train.dp.*these trainable tensors are neither: embeddings.*exit=2")
