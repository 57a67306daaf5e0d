# Third-party packages, all from Debian (tools/setup.sh installs them). yaml-cpp 0.7
# (Debian 12) exports `yaml-cpp`, 0.8 (Ubuntu 24.04, the GPU machine) `yaml-cpp::yaml-cpp`:
# one alias, kvlab::yaml, hides the difference.
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(Threads REQUIRED)

add_library(kvlab_yaml INTERFACE)
if(TARGET yaml-cpp::yaml-cpp)
  target_link_libraries(kvlab_yaml INTERFACE yaml-cpp::yaml-cpp)
else()
  target_link_libraries(kvlab_yaml INTERFACE yaml-cpp)
endif()
add_library(kvlab::yaml ALIAS kvlab_yaml)

if(KVLAB_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(KVLAB_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
