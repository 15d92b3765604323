# Configures, builds and runs an example project against a mycelium package.
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE} -B ${BINARY} -G Ninja -Dmycelium_DIR=${MYCELIUM_DIR}
                        -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring ${SOURCE} failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building ${SOURCE} failed")
endif()
execute_process(COMMAND ${BINARY}/host_library_example RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the example exited with ${rc}")
endif()
