# `biolm finetune` on the question-answering and instruction task families (tasks/task.h, one file per family in src/tasks/),
# model.init from a fine-tuned model directory, and the refusals. Each run is a few hundred steps
# at most on the synthetic data (data/, tools/scripts/make_synthetic_data.py); the regexes read the
# printed results.json line and demand above-chance test metrics.
set(ft_common eval.bootstrap=200 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

# Span QA: SQuAD exact match > 0.2 (an untrained reader scores ~0).
add_test(NAME cli::finetune_qa_span
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/qa_demo.yaml output=${cli_out}/qa-span
          train.max_steps=200 train.eval_every=200 ${ft_common})
set_tests_properties(cli::finetune_qa_span PROPERTIES
  PASS_REGULAR_EXPRESSION "\"exact_match\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":0\\.[2-9]")

# Multiple choice over four options: accuracy >= 0.4 (chance 0.25).
add_test(NAME cli::finetune_mcqa
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/mcqa_demo.yaml output=${cli_out}/mcqa
          train.max_steps=200 train.eval_every=200 train.batch_size=8 ${ft_common})
set_tests_properties(cli::finetune_mcqa PROPERTIES
  PASS_REGULAR_EXPRESSION "\"accuracy\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":(0\\.[4-9]|1)")

# Multi-label document classification (hoc, added as one file src/tasks/hoc.cpp + a registry
# line), with the demo's 600 steps: micro-F1 >= 0.6 on the synthetic HoC-style set (predicting no label scores 0), and the
# predictions file written beside results.json.
add_test(NAME cli::finetune_hoc
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/hoc_demo.yaml output=${cli_out}/hoc
          ${ft_common})
set_tests_properties(cli::finetune_hoc PROPERTIES
  PASS_REGULAR_EXPRESSION "\"predictions\":\"[^\"]*predictions.jsonl\".*\"micro_f1\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":(0\\.[6-9]|1)")

# PubMedQA yes/no/maybe on an encoder: accuracy >= 0.8 (majority class 0.5). Its model/ directory
# is the starting point of cli::finetune_model_init.
add_test(NAME cli::finetune_pubmedqa
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/pubmedqa_demo.yaml output=${cli_out}/pubmedqa
          train.max_steps=120 train.eval_every=120 ${ft_common})
set_tests_properties(cli::finetune_pubmedqa PROPERTIES FIXTURES_SETUP pubmedqa_model
  PASS_REGULAR_EXPRESSION "\"accuracy\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":(0\\.[89]|1)")

# train.eval_every=0: no dev evaluation (no best.json, no eval line in metrics.jsonl), the test
# scores the final weights. (Until 2026-12-06 finetune's default best_metric refused it.)
add_test(NAME cli::finetune_without_dev_evaluations
  COMMAND bash -c "rm -rf '${cli_out}/ner-no-dev' && '${BIOLM_EXE}' --log-level warn finetune --config examples/configs/ner_demo.yaml output='${cli_out}/ner-no-dev' train.max_steps=10 train.warmup_steps=0 train.eval_every=0 eval.bootstrap=0 2>&1 && ls '${cli_out}/ner-no-dev' && grep -c '\"eval\"' '${cli_out}/ner-no-dev/metrics.jsonl'; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_without_dev_evaluations PROPERTIES
  PASS_REGULAR_EXPRESSION "\"steps\":10,.*\"f1\":[0-9.e-]+.*results.json.*\n0\nexit=1"
  FAIL_REGULAR_EXPRESSION "best.json|error")

# The reasoning-free setting (question + LONG_ANSWER, data.pubmedqa_setting) learns too; the key on
# another task is refused before any work, exit 2.
add_test(NAME cli::finetune_pubmedqa_reasoning_free
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/pubmedqa_demo.yaml
          output=${cli_out}/pubmedqa-free data.pubmedqa_setting=reasoning-free train.max_steps=120
          train.eval_every=120 ${ft_common})
set_tests_properties(cli::finetune_pubmedqa_reasoning_free PROPERTIES FIXTURES_SETUP pubmedqa_free_model
  PASS_REGULAR_EXPRESSION "\"accuracy\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":(0\\.[89]|1)")
# biolm eval of that head reads the setting from model/model.json: the test accuracy reproduces
# finetune's to the last digit.
add_test(NAME cli::eval_pubmedqa_reasoning_free_head
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/eval_same_as_finetune.sh ${BIOLM_EXE} ${cli_out}/pubmedqa-free pubmedqa
          data/pubmedqa/test.json pubmedqa_setting=reasoning-free
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::eval_pubmedqa_reasoning_free_head PROPERTIES FIXTURES_REQUIRED pubmedqa_free_model
  PASS_REGULAR_EXPRESSION "SAME_ACCURACY")
# ... and so needs LONG_ANSWER in what it scores: a file without it is refused, naming the record.
add_test(NAME cli::eval_pubmedqa_reasoning_free_needs_long_answer
  COMMAND bash -c "sed 's/LONG_ANSWER/LONG_ANSWER_gone/' data/pubmedqa/test.json > '${cli_out}/pubmedqa-no-long-answer.json' && '${BIOLM_EXE}' eval --model '${cli_out}/pubmedqa-free/model' --task pubmedqa --data '${cli_out}/pubmedqa-no-long-answer.json' 2>&1; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::eval_pubmedqa_reasoning_free_needs_long_answer PROPERTIES FIXTURES_REQUIRED pubmedqa_free_model
  PASS_REGULAR_EXPRESSION "pubmedqa-no-long-answer.json.*PMID [0-9]+ has no LONG_ANSWER.*exit=[1-9]")
add_test(NAME cli::finetune_pubmedqa_setting_refused
  COMMAND bash -c "'${BIOLM_EXE}' finetune --config examples/configs/ner_demo.yaml output='${cli_out}/ner-setting' data.pubmedqa_setting=reasoning-free 2>&1; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_pubmedqa_setting_refused PROPERTIES
  PASS_REGULAR_EXPRESSION "data.pubmedqa_setting.*only the pubmedqa task has settings.*exit=2")

# PubMedQA with LoRA on a decoder (last-token pooling): accuracy >= 0.6 and macro-F1 >= 0.5.
add_test(NAME cli::finetune_pubmedqa_lora_decoder
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/pubmedqa_lora_decoder_demo.yaml
          output=${cli_out}/pubmedqa-lora-decoder train.max_steps=150 train.eval_every=150 ${ft_common})
set_tests_properties(cli::finetune_pubmedqa_lora_decoder PROPERTIES
  PASS_REGULAR_EXPRESSION "\"method\":\"hybrid\".*\"accuracy\":\\{[^}]*\"value\":(0\\.[6-9]|1)[^}]*\\},\"macro_f1\":\\{[^}]*\"value\":(0\\.[5-9]|1)")

# Instruction tuning of a decoder: held-out ROUGE-L >= 0.1 by greedy generation (0 untrained).
add_test(NAME cli::finetune_instruct
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/instruct_demo.yaml output=${cli_out}/instruct
          train.max_steps=150 train.eval_every=150 ${ft_common})
set_tests_properties(cli::finetune_instruct PROPERTIES FIXTURES_SETUP instruct_model
  PASS_REGULAR_EXPRESSION "\"rouge_l\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":0\\.[1-9]")
# Prompt tuning of that decoder: 20 soft-prompt vectors trained on the same instructions, the body
# frozen. Generation runs with the prompt in the KV cache (models::generate), and `biolm eval` on
# the saved model reproduces finetune's ROUGE-L exactly, so both decode through the prompt.
add_test(NAME cli::finetune_instruct_prompt
  COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/instruct_demo.yaml output=${cli_out}/instruct-prompt
          model.init=${cli_out}/instruct/model ~model.preset ~model.hidden_size ~model.n_heads ~model.n_kv_heads
          ~model.ffn_size ~tokenizer.train_on ~tokenizer.vocab_size peft.method=prompt train.lr=3.0e-2
          train.max_steps=60 train.eval_every=60 ${ft_common})
set_tests_properties(cli::finetune_instruct_prompt PROPERTIES FIXTURES_REQUIRED instruct_model FIXTURES_SETUP instruct_prompt_model
  PASS_REGULAR_EXPRESSION "\"method\":\"prompt\".*\"rouge_l\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":0\\.[1-9]")
biolm_eval_matches_finetune(cli::eval_task_instruct_prompt ${cli_out}/instruct-prompt instruct data/instruct/test.jsonl
                            rouge_l instruct_prompt_model)

# model.init: start from cli::finetune_pubmedqa's model/ directory (config, weights, tokenizer).
# One step at a negligible learning rate keeps the loaded model: accuracy stays >= 0.8, where a
# fresh model after one step predicts the majority class (0.5).
add_test(NAME cli::finetune_model_init
  COMMAND ${BIOLM_EXE} finetune --config examples/configs/pubmedqa_demo.yaml output=${cli_out}/pubmedqa-init
          model.init=${cli_out}/pubmedqa/model ~model.preset ~model.hidden_size ~model.n_heads ~model.n_kv_heads
          ~model.ffn_size ~tokenizer.train_on ~tokenizer.vocab_size train.max_steps=1 train.warmup_steps=0
          train.lr=1.0e-9 train.eval_every=1 ${ft_common})
set_tests_properties(cli::finetune_model_init PROPERTIES FIXTURES_REQUIRED pubmedqa_model
  PASS_REGULAR_EXPRESSION "model.init .*loaded [1-9][0-9]*.*\"accuracy\":\\{\"ci\":\\[[0-9.e-]+,[0-9.e-]+\\],\"value\":(0\\.[89]|1)")

# model.init fixes the architecture: a shape key next to it is refused, naming the key.
add_test(NAME cli::finetune_model_init_shape_key
  COMMAND ${BIOLM_EXE} finetune --config examples/configs/pubmedqa_demo.yaml output=${cli_out}/pubmedqa-init-bad
          model.init=${cli_out}/pubmedqa/model ~tokenizer.train_on
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_model_init_shape_key PROPERTIES FIXTURES_REQUIRED pubmedqa_model
  PASS_REGULAR_EXPRESSION "config 'model\\.[a-z_]+': cannot be combined with model.init")

# Unknown task names are refused with the full list.
add_test(NAME cli::finetune_bad_task_name
  COMMAND ${BIOLM_EXE} finetune --config examples/configs/qa_demo.yaml task=squad WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_bad_task_name PROPERTIES
  PASS_REGULAR_EXPRESSION "config 'task': expected ner\\|re\\|nli\\|sts\\|qa-span\\|mcqa\\|pubmedqa\\|instruct\\|hoc, found \"squad\"")

# NER straight from standoff formats (data.format), on the real files of ../shared/data when the
# checkout has them: NCBI-disease test in BRAT, BC5CDR test in PubTator; a few steps each, and the
# predictions file's gold column holds every mention (960; 5,385 Chemical + 4,424 Disease), as
# the CoNLL versions of the same sets (tests/tasks/test_tasks.cpp compares the counts).
set(shared_data ${PROJECT_SOURCE_DIR}/../shared/data)
if(EXISTS ${shared_data}/brat_ncbi_disease/test AND EXISTS ${shared_data}/bc5cdr_pubtator)
  set(brat ${shared_data}/brat_ncbi_disease/test)
  set(pubtator ${shared_data}/bc5cdr_pubtator/CDR_TestSet.PubTator.txt)
  add_test(NAME cli::finetune_ner_brat
    COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/ner_demo.yaml output=${cli_out}/ner-brat
            data.format=brat data.train=${brat} data.dev=${brat} data.test=${brat} data.max_length=128
            train.max_steps=20 train.eval_every=20 eval.bootstrap=0 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli::finetune_ner_brat PROPERTIES
    PASS_REGULAR_EXPRESSION "\"f1_SpecificDisease\":[0-9.e-]+.*\"steps\":20|\"steps\":20.*\"f1_SpecificDisease\"")
  add_test(NAME cli::finetune_ner_pubtator
    COMMAND ${BIOLM_EXE} --log-level warn finetune --config examples/configs/ner_demo.yaml output=${cli_out}/ner-pubtator
            data.format=pubtator data.train=${pubtator} data.dev=${pubtator} data.test=${pubtator} data.max_length=128
            train.max_steps=20 train.eval_every=20 eval.bootstrap=0 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli::finetune_ner_pubtator PROPERTIES
    PASS_REGULAR_EXPRESSION "\"f1_Chemical\":[0-9.e-]+,\"f1_Disease\"")
endif()
add_test(NAME cli::finetune_bad_format
  COMMAND ${BIOLM_EXE} finetune --config examples/configs/ner_demo.yaml data.format=bioc WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::finetune_bad_format PROPERTIES
  PASS_REGULAR_EXPRESSION "config 'data.format': ner reads conll \\| brat \\| pubtator, got \"bioc\"")
