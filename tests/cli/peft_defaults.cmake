# `biolm finetune` with each adapter method and no adapter settings: the defaults (LoRA on q/v, IA3
# on k/v + the FFN input, the task head trained in full next to the adapter, as PEFT's
# modules_to_save) must learn. Before the head default, a frozen random classifier gave F1 0.000.
# NER on a tiny encoder trained from scratch, 300 steps: F1 > 0.1 (0.26 LoRA, 0.15 IA3 and prompt
# when written), and 0 with the head frozen on purpose.
foreach(method lora ia3 prompt)
  add_test(NAME cli::finetune_ner_${method}_defaults
    COMMAND ${BIOLM_EXE} finetune --config examples/configs/ner_demo.yaml output=${cli_out}/ner-${method}
            peft.method=${method} train.max_steps=300 eval.bootstrap=100
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli::finetune_ner_${method}_defaults PROPERTIES
    PASS_REGULAR_EXPRESSION "the task head trains in full.*\"f1\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":0\\.([1-9]|0[1-9])")
endforeach()
add_test(NAME cli::finetune_ner_lora_head_frozen
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/ner_demo.yaml output=${cli_out}/ner-lora-frozen
          peft.method=lora "peft.train_patterns=[]" train.max_steps=20 eval.bootstrap=10
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_ner_lora_head_frozen PROPERTIES PASS_REGULAR_EXPRESSION "\"trainable_parameters\":4096")
# Prompt tuning on multiple choice: the soft prompt goes in front of each of the K option rows
# ((B,K,T) -> (B,K,P+T)); the options' scores need no positions stripped. On this tiny encoder
# trained from nothing the body is random and frozen, so nothing can be learned (the loss stays at
# ln 4 = 1.386): this entry checks what trains (20 x 64 prompt + pooler and classifier = 5,505),
# and `biolm eval` on the saved model must reproduce finetune's test accuracy exactly. That it
# learns on a pretrained body: parity::prompt_tuning (all-MiniLM-L6-v2 on data/mcqa).
add_test(NAME cli::finetune_mcqa_prompt
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/mcqa_demo.yaml output=${cli_out}/mcqa-prompt
          peft.method=prompt train.max_steps=60 train.eval_every=60 eval.bootstrap=200
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_mcqa_prompt PROPERTIES FIXTURES_SETUP mcqa_prompt_model
  PASS_REGULAR_EXPRESSION "\"method\":\"prompt\".*\"task\":\"mcqa\".*\"trainable_parameters\":5505")
biolm_eval_matches_finetune(cli::eval_task_mcqa_prompt ${cli_out}/mcqa-prompt mcqa data/mcqa/test.jsonl accuracy
                            mcqa_prompt_model)
# Prompt tuning refuses packed instruction rows (several examples per row, one prompt per row
# would be undefined), before any work, naming the key.
add_test(NAME cli::finetune_instruct_prompt_packing_refused
  COMMAND bash -c "'${BIOLM_EXE}' finetune --config examples/configs/instruct_demo.yaml output='${cli_out}/instruct-prompt-packed' peft.method=prompt data.packing=true 2>&1; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_instruct_prompt_packing_refused PROPERTIES
  PASS_REGULAR_EXPRESSION "data.packing.*soft prompt in front of each example.*exit=[1-9]")
# Span QA with a soft prompt: the span targets move past the P virtual tokens in training and the
# logits are cut back to the real tokens in prediction; `biolm eval` on the saved model reproduces
# finetune's test metrics exactly (value and interval).
add_test(NAME cli::finetune_qa_span_prompt
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/qa_demo.yaml output=${cli_out}/qa-prompt
          peft.method=prompt train.max_steps=150 train.eval_every=150 eval.bootstrap=200
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_qa_span_prompt PROPERTIES FIXTURES_SETUP qa_prompt_model
  PASS_REGULAR_EXPRESSION "\"method\":\"prompt\"")
biolm_eval_matches_finetune(cli::eval_task_qa_span_prompt ${cli_out}/qa-prompt qa-span data/qa/test.json f1
                            qa_prompt_model)
