# Installs the crew build tree into a scratch prefix, then configures, builds and
# runs a consumer that only knows `find_package(crew)`.
foreach(var CREW_BINARY_DIR CREW_WORK_DIR CREW_CONSUMER_SOURCE CREW_CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake needs -D${var}=...")
  endif()
endforeach()

file(REMOVE_RECURSE "${CREW_WORK_DIR}")
set(prefix "${CREW_WORK_DIR}/prefix")

function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

step(${CMAKE_COMMAND} --install "${CREW_BINARY_DIR}" --prefix "${prefix}")
step(${CMAKE_COMMAND} -S "${CREW_CONSUMER_SOURCE}" -B "${CREW_WORK_DIR}/build" -G Ninja
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CREW_CXX_COMPILER}
     -DCMAKE_BUILD_TYPE=Debug
     # A sanitizer build of crew needs a consumer built the same way.
     "-DCMAKE_CXX_FLAGS=${CREW_CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${CREW_EXE_LINKER_FLAGS}")
step(${CMAKE_COMMAND} --build "${CREW_WORK_DIR}/build")
step("${CREW_WORK_DIR}/build/consumer")
