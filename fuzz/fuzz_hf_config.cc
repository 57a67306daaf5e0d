// SPDX-License-Identifier: Apache-2.0
// The HuggingFace config.json importer (core/config/hf_import.h) on arbitrary text: yaml-cpp
// first, nlohmann-json where yaml-cpp trips on valid JSON. Seeds: tests/data/hf/*/config.json.
#include "core/config/hf_import.h"
#include "core/error.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = kvlab::fuzz::as_string(data, size);
  kvlab::fuzz::expect_only<kvlab::core::ConfigError>([&] {
    const kvlab::core::ModelSpec m = kvlab::core::import_hf_config_text(text, "config.json", "fuzz");
    // An imported model passed ModelSpec::validate(): its derived counts must be computable.
    (void)kvlab::core::count_params(m);
    (void)kvlab::core::weights_bytes(m, kvlab::core::WeightDtype::kBf16);
  });
  return 0;
}
