// SPDX-License-Identifier: Apache-2.0
// The GGUF reader (ref/model/gguf_reader.h) on arbitrary bytes, then what `kvlab accuracy`
// does with an accepted file: every tensor dequantized (those up to 1 M elements, to keep an
// input fast), the tokenizer built from its vocabulary and run on a short text, and the Llama
// model loaded. Seed: fuzz/seeds/tiny.gguf (fuzz/make_tiny_gguf.py), not the 94 MB model.
#include <vector>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "ref/model/bpe_tokenizer.h"
#include "ref/model/gguf_reader.h"
#include "ref/model/llama_model.h"

namespace rm = kvlab::ref::model;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvlab::fuzz::expect_only<rm::GgufError>([&] {
    const rm::GgufFile file = rm::GgufFile::parse(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    for (const rm::GgufTensorInfo& t : file.tensors()) {
      if (t.num_elements() <= (1 << 20)) {
        try {
          (void)file.dequantize(t);
        } catch (const rm::GgufError&) {  // an unknown type, or elements not a whole block
        }
      }
    }
    try {
      const rm::BpeTokenizer tokenizer = rm::BpeTokenizer::from_gguf(file);
      (void)tokenizer.decode(tokenizer.encode("Hello world, 123 times!"));
    } catch (const rm::GgufError&) {
    }
    (void)rm::LlamaModel::load(file, 0);
  });
  return 0;
}
