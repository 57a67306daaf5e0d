// SPDX-License-Identifier: Apache-2.0
// Weights and dimensions from GGUF (see gguf_weights.h).
#include "ref/model/gguf_weights.h"

#include <vector>

#include <fmt/format.h>

#include "ref/model/gguf_reader.h"

namespace kvlab::ref::model {

RowMatrixXf load_matrix(const GgufFile& file, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo* t = file.find_tensor(name);
  if (!t) throw GgufError(fmt::format("{}: tensor {} is missing", file.path(), name));
  const bool vector_ok = rows == 1 && t->shape.size() == 1 && t->shape[0] == cols;
  if (!vector_ok && (t->shape.size() != 2 || t->shape[0] != cols || t->shape[1] != rows)) {
    throw GgufError(fmt::format("{}: tensor {} has shape [{}], expected [{}, {}] (ne0, ne1)",
                                file.path(), name, fmt::join(t->shape, ", "), cols, rows));
  }
  const std::vector<float> data = file.dequantize(*t);
  return Eigen::Map<const RowMatrixXf>(data.data(), rows, cols);
}

Eigen::VectorXf load_vector(const GgufFile& file, const std::string& name, int64_t size) {
  const RowMatrixXf m = load_matrix(file, name, 1, size);
  return m.row(0).transpose();
}

int require_dim(const GgufFile& file, const std::string& key, int64_t max, std::optional<int64_t> fallback) {
  const std::optional<int64_t> v = file.has(key) ? file.get_int(key) : fallback;
  if (!v) throw GgufError(fmt::format("{}: metadata key {} is missing (or not an integer)", file.path(), key));
  if (*v < 1 || *v > max) throw GgufError(fmt::format("{}: metadata {} = {}: expected 1 to {}", file.path(), key, *v, max));
  return static_cast<int>(*v);
}

}  // namespace kvlab::ref::model
