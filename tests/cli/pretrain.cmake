# biolm pretrain / generate / data prepare (docs/pretraining.md). Tiny settings: each run is a few
# seconds. The pretraining runs are fixtures the later tests start from.
set(pt_mlm ${cli_out}/pretrain-mlm)
set(pt_clm ${cli_out}/pretrain-clm)
set(pt_shards ${cli_out}/pretrain-shards)
set(pt_tiny train.max_steps=40 train.eval_every=20 train.log_every=20 train.batch_size=16 seq_len=48
    validation.max_sequences=64 tokenizer.train.vocab_size=400 model.max_positions=48)

# MLM learns: the printed val_loss_decreased is computed (final < initial validation loss), and the
# final loss must also be under 5.5 (the initial one is ~ln(vocab) = 6).
add_test(NAME cli::pretrain_mlm
  COMMAND ${BIOLM_EXE} pretrain --config examples/configs/pretrain_mlm_demo.yaml output=${pt_mlm} ${pt_tiny}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_mlm PROPERTIES FIXTURES_SETUP pretrain_mlm
  PASS_REGULAR_EXPRESSION "\"objective\":\"mlm\",\"steps\":40,.*\"val_loss_decreased\":true,\"val_loss_final\":([1-4]\\.|5\\.[0-4])")

add_test(NAME cli::pretrain_clm
  COMMAND ${BIOLM_EXE} pretrain --config examples/configs/pretrain_clm_demo.yaml output=${pt_clm} ${pt_tiny}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_clm PROPERTIES FIXTURES_SETUP pretrain_clm
  PASS_REGULAR_EXPRESSION "\"objective\":\"clm\",\"steps\":40,.*\"val_loss_decreased\":true")

# Seeded sampling twice from the pretrained decoder gives identical JSON lines and another seed
# different ones; --stop cuts the greedy completion exactly before the stop string (see the script).
add_test(NAME cli::generate_checks
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/generate_checks.sh ${BIOLM_EXE} ${pt_clm}/model ${cli_out}/generate
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::generate_checks PROPERTIES FIXTURES_REQUIRED pretrain_clm
  PASS_REGULAR_EXPRESSION "\"stop_reason\":\"(eos|max_new_tokens)\".*REPRODUCIBLE.*\"stop_reason\":\"stop_string\",\"tokens\":[1-9].*CUT_OK")

# An encoder model directory is refused, naming its task (exit 2).
add_test(NAME cli::generate_refuses_encoder
  COMMAND bash -c "'${BIOLM_EXE}' generate --model '${pt_mlm}/model' --prompt x 2>&1; echo exit=$?")
set_tests_properties(cli::generate_refuses_encoder PROPERTIES FIXTURES_REQUIRED pretrain_mlm
  PASS_REGULAR_EXPRESSION "holds a masked_lm model; generate needs a causal_lm model.*exit=2")

# data prepare with the MLM run's WordPiece tokenizer, then pretraining from those shards
# (whole-word masking needs the stored word starts).
add_test(NAME cli::data_prepare
  COMMAND ${BIOLM_EXE} data prepare --tokenizer ${pt_mlm}/model/tokenizer --format text --out ${pt_shards}
          --threads 2 --shard-tokens 60000 --word-starts data/corpus/notes.txt
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::data_prepare PROPERTIES FIXTURES_REQUIRED pretrain_mlm FIXTURES_SETUP pretrain_shards
  PASS_REGULAR_EXPRESSION "\"documents\":3000,.*\"shards\":[3-9],.*\"tokenizer_kind\":\"wordpiece\"")
add_test(NAME cli::pretrain_from_shards
  COMMAND ${BIOLM_EXE} pretrain --config examples/configs/pretrain_mlm_demo.yaml output=${cli_out}/pretrain-from-shards
          ${pt_tiny} "~corpus" "~tokenizer.train" shards=${pt_shards} tokenizer.path=${pt_mlm}/model/tokenizer
          mlm.whole_word=true
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_from_shards PROPERTIES FIXTURES_REQUIRED pretrain_shards
  PASS_REGULAR_EXPRESSION "\"objective\":\"mlm\",\"steps\":40,.*\"val_loss_decreased\":true")
# Shards tokenized with another tokenizer are refused (fingerprint mismatch, exit 3).
add_test(NAME cli::pretrain_shards_wrong_tokenizer
  COMMAND bash -c "'${BIOLM_EXE}' pretrain --config examples/configs/pretrain_clm_demo.yaml output='${cli_out}/pretrain-wrong-tok' '~corpus' '~tokenizer.train' shards='${pt_shards}' tokenizer.path='${pt_clm}/model/tokenizer' 2>&1; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_shards_wrong_tokenizer PROPERTIES FIXTURES_REQUIRED "pretrain_shards;pretrain_clm"
  PASS_REGULAR_EXPRESSION "fingerprint.*exit=3")

# A vocabulary trained cased (tokenizer.train.lowercase=false) is used and saved cased: no
# "cased vocabulary loaded lower-cased" warning, do_lower_case false in the model's tokenizer, and a
# capitalised word of the corpus keeps its capital when encoded with that tokenizer. (Until
# 2026-12-06 the trained vocab.txt was reloaded with BERT's default lower-casing.)
add_test(NAME cli::pretrain_cased_vocab
  COMMAND bash -c "'${BIOLM_EXE}' pretrain --config examples/configs/pretrain_mlm_demo.yaml output='${cli_out}/pretrain-cased' train.max_steps=2 train.warmup_steps=0 train.eval_every=2 seq_len=48 validation.max_sequences=16 tokenizer.train.vocab_size=400 model.max_positions=48 tokenizer.train.lowercase=false 2>&1 && cat '${cli_out}/pretrain-cased/model/tokenizer/tokenizer_config.json' && '${BIOLM_EXE}' tokenizer encode --tokenizer '${cli_out}/pretrain-cased/model/tokenizer' --text 'Plan' 2>&1"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_cased_vocab PROPERTIES
  PASS_REGULAR_EXPRESSION "\"do_lower_case\": false.*\"tokens\":\\[\"\\[CLS\\]\",\"Plan\""
  FAIL_REGULAR_EXPRESSION "never matches|\"do_lower_case\": true")

# An unknown config key: exit 2, the key named.
add_test(NAME cli::pretrain_unknown_key
  COMMAND bash -c "'${BIOLM_EXE}' pretrain --config examples/configs/pretrain_mlm_demo.yaml mlm.probabilty=0.2 2>&1; echo exit=$?"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_unknown_key PROPERTIES PASS_REGULAR_EXPRESSION "mlm.probabilty.*exit=2")

# Resuming from a mid-run checkpoint ends with exactly the unbroken run's validation loss.
add_test(NAME cli::pretrain_resume_exact
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/pretrain_resume.sh ${BIOLM_EXE} ${cli_out}/pretrain-resume
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::pretrain_resume_exact PROPERTIES
  PASS_REGULAR_EXPRESSION "resumed from .*step-00000015 at step 15.*\"steps\":30,.*RESUME_EXACT")

# Every problem of the whole pretrain config in one message, exit 2, before any work (no corpus
# read, no vocabulary trained): two bad values, a typo under train. and a wrong type under model.
add_test(NAME cli::pretrain_all_errors_before_work
  COMMAND ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DWORKDIR=${PROJECT_SOURCE_DIR} -DEXPECT_EXIT=2
          "-DEXPECT_STDERR=config: 4 errors\n  config 'seq_len': must be >= 8, got 4\n  config 'mlm.probability': must be in \\(0, 1\\), got 2[^\n]*\n  config 'train.no_such_key': unknown key[^\n]*\n  config 'model.hidden_size': expected an integer, found \"abc\""
          "-DREJECT_STDERR=pretrain: |sequences|vocabulary"
          "-DARGS=pretrain;--config;examples/configs/pretrain_mlm_demo.yaml;output=${cli_out}/pretrain_all_errors;seq_len=4;mlm.probability=2;train.no_such_key=3;model.hidden_size=abc"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/eval_check.cmake)
