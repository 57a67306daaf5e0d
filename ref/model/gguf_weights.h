// SPDX-License-Identifier: Apache-2.0
// Reading a model's weights and dimensions out of a GGUF file, shared by the Llama and
// Gemma 3 loaders (llama_model.cc, gemma3_model.cc): shapes and ranges checked, errors name
// the file and the tensor or key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <Eigen/Core>

#include "ref/model/attention_backend.h"

namespace kvlab::ref::model {

class GgufFile;

// A 2-D tensor [ne1 = rows, ne0 = cols] as a row-major float matrix (a 1-D tensor of `cols`
// elements when rows is 1). Throws GgufError when missing or of another shape.
RowMatrixXf load_matrix(const GgufFile& file, const std::string& name, int64_t rows, int64_t cols);
Eigen::VectorXf load_vector(const GgufFile& file, const std::string& name, int64_t size);

// A model dimension from the metadata, in [1, max] (core/limits.h): a file's numbers are
// input like a config's, and everything sized from them (divisions, matrices) needs them
// sane. `fallback` is used when the key is absent; without one the key is required.
int require_dim(const GgufFile& file, const std::string& key, int64_t max, std::optional<int64_t> fallback = {});

}  // namespace kvlab::ref::model
