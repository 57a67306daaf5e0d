# kvlab_add_library / kvlab_add_test: every target gets C++20, the warning set and the
# sanitizer flags from one place, so no folder can quietly build with different rules.

add_library(kvlab_warnings INTERFACE)
target_compile_options(kvlab_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wno-missing-field-initializers>)
if(KVLAB_WERROR)
  target_compile_options(kvlab_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()

add_library(kvlab_sanitizers INTERFACE)
if(KVLAB_SANITIZE)
  target_compile_options(kvlab_sanitizers INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>)
  target_link_options(kvlab_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
if(KVLAB_FUZZ)  # coverage for libFuzzer in every kvlab library (fuzz/CMakeLists.txt links the fuzzer)
  target_compile_options(kvlab_sanitizers INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
endif()

# kvlab_add_library(NAME SRCS a.cc b.cc DEPS x y [PRIVATE_DEPS z])
function(kvlab_add_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(kvlab_${name} STATIC ${ARG_SRCS})
  add_library(kvlab::${name} ALIAS kvlab_${name})
  target_include_directories(kvlab_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_features(kvlab_${name} PUBLIC cxx_std_20)
  target_link_libraries(kvlab_${name} PUBLIC ${ARG_DEPS} kvlab_sanitizers
                        PRIVATE ${ARG_PRIVATE_DEPS} kvlab_warnings)
endfunction()

# kvlab_add_test(NAME SRCS a_test.cc DEPS x LABELS core)
function(kvlab_add_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock
                        kvlab_warnings kvlab_sanitizers)
  target_compile_definitions(${name} PRIVATE KVLAB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}"
                       DISCOVERY_TIMEOUT 120)
endfunction()
