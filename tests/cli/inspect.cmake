# biolm inspect refuses a directory that holds no model, naming it and exiting with 4.
add_test(NAME cli::inspect_not_a_model COMMAND ${BIOLM_EXE} inspect ${PROJECT_SOURCE_DIR}/docs)
set_tests_properties(cli::inspect_not_a_model PROPERTIES PASS_REGULAR_EXPRESSION "biolm: error: .*docs: directory holds neither")
