# Runs a libFuzzer target for a bounded time on a copy of its seed corpus:
#   cmake -DFUZZER=exe -DSEEDS=dir -DCORPUS=dir -DDICT=file -DSECONDS=n -DARTIFACTS=dir/ -P run_fuzz.cmake
# The copy in the build tree keeps what the fuzzer learns from one run to the next;
# a crash, leak, timeout or sanitizer report fails the test and leaves its input in
# ARTIFACTS (add it to test/cron.cpp as a regression test).
file(MAKE_DIRECTORY "${CORPUS}")
file(GLOB seeds "${SEEDS}/*")
file(COPY ${seeds} DESTINATION "${CORPUS}")
execute_process(
  COMMAND "${FUZZER}" "${CORPUS}" "-dict=${DICT}" "-max_total_time=${SECONDS}" -max_len=512
          -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=${ARTIFACTS}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the fuzzer found a problem (exit ${result}); its input is in ${ARTIFACTS}")
endif()
