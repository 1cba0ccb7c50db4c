# `biolm federate` (docs/federated.md): resume, `biolm report`, processes = in-process bitwise,
# timeouts drop sites (tests/cli/federate.sh); the whole config is checked before work.
add_test(NAME cli::federate
  COMMAND bash tests/cli/federate.sh ${BIOLM_EXE} ${cli_out}/federate
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::federate PROPERTIES PASS_REGULAR_EXPRESSION "federate checks passed" TIMEOUT 900)
add_test(NAME cli::federate_bad_key
  COMMAND sh -c "\"$0\" federate --config examples/configs/federated_ner_demo.yaml output=$1 federation.roundz=2 2>&1; echo exit=$?" ${BIOLM_EXE} ${cli_out}/federate-bad
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::federate_bad_key PROPERTIES PASS_REGULAR_EXPRESSION "federation.roundz.*exit=2")
add_test(NAME cli::federate_missing_site_file
  COMMAND sh -c "\"$0\" federate --config examples/configs/federated_ner_demo.yaml output=$1 'sites=[{name: x, train: /nonexistent.conll}]' 2>&1; echo exit=$?" ${BIOLM_EXE} ${cli_out}/federate-bad2
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::federate_missing_site_file PROPERTIES PASS_REGULAR_EXPRESSION "sites\\[0\\]\\.train.*nonexistent.*exit=2")
