# biolm metrics beyond misc.cmake: JSONL batches (--cases), SQuAD v2.0 from files. Expected values
# are worked out by hand in the comments; tests/parity/test_metrics.py holds the reference checks.

# Batch: cls (3 of 5 right: accuracy 0.6), strict IOBES NER (B-X I-X never ends: recall 1/2,
# precision 1), a text hypothesis equal to its first reference (sacrebleu 100, ROUGE-L 1).
add_test(NAME cli::metrics_cases
  COMMAND ${BIOLM_EXE} metrics --cases tests/cli/metrics/cases.jsonl
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::metrics_cases PROPERTIES PASS_REGULAR_EXPRESSION
  "\"accuracy\":0\\.6,[^\n]*\"id\":\"cls\"[^\n]*\n[^\n]*\"id\":\"ner\"[^\n]*\"recall\":0\\.5[^\n]*\n[^\n]*\"sacrebleu\":100\\.0")
# A refused case is an "error" line naming the field, and the exit status is 3 (data error).
add_test(NAME cli::metrics_cases_refused
  COMMAND sh -c "\"$0\" metrics --cases tests/cli/metrics/cases_refused.jsonl | grep -q 'at least 2'; test $? -eq 0 && { \"$0\" metrics --cases tests/cli/metrics/cases_refused.jsonl >/dev/null; test $? -eq 3; }" ${BIOLM_EXE}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# --cases with a TASK is a usage error (exit 2).
add_test(NAME cli::metrics_cases_usage
  COMMAND sh -c "\"$0\" metrics cls --cases tests/cli/metrics/cases.jsonl >/dev/null 2>&1; test $? -eq 2" ${BIOLM_EXE}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

# SQuAD v2.0: q0 "paris" right, q1 unanswerable + "" right, q2 unanswerable + "London" wrong,
# q3 "10mg" vs "10 mg" (no shared token) wrong: exact = f1 = 0.5. find_best_thresh over na_probs
# 0.1 (q0 +1 -> 3 of 4), 0.3 (q3 +0), 0.4 (q2 -1), 0.8 (q1 0): best_exact_match 0.75 at 0.1.
add_test(NAME cli::metrics_qa_v2
  COMMAND ${BIOLM_EXE} metrics qa --squad-version 2.0 --gold tests/cli/metrics/qa_gold_v2.txt
          --pred tests/cli/metrics/qa_pred_v2.txt --na-probs tests/cli/metrics/qa_na.txt
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::metrics_qa_v2 PROPERTIES PASS_REGULAR_EXPRESSION
  "\"best_exact_match\": 0\\.75,\n  \"best_exact_match_thresh\": 0\\.1,.*\"exact_match\": 0\\.5,")
# --na-prob-thresh 0.35: q1 (0.8) and q2 (0.4) are predicted unanswerable and right: 3 of 4.
add_test(NAME cli::metrics_qa_v2_thresh
  COMMAND ${BIOLM_EXE} metrics qa --squad-version 2.0 --gold tests/cli/metrics/qa_gold_v2.txt
          --pred tests/cli/metrics/qa_pred_v2.txt --na-probs tests/cli/metrics/qa_na.txt --na-prob-thresh 0.35
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::metrics_qa_v2_thresh PROPERTIES PASS_REGULAR_EXPRESSION "\n  \"exact_match\": 0\\.75,")
