#!/usr/bin/env bash
# Installs everything kvlab needs on a fresh Debian machine: Debian's packages for the
# C++ side, PyPI for plotting and the Python tests. Idempotent, and fast when all is
# present (one dpkg query, one pip check), so both README commands can call it every time.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libeigen3-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev pybind11-dev clang-format
)
python_packages=(numpy matplotlib pytest)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c "import numpy, matplotlib, pytest" 2>/dev/null; then
  echo "setup: installing Python packages: ${python_packages[*]}" >&2
  "$python" -m pip install -q "${python_packages[@]}" || "$python" -m pip install -q --break-system-packages "${python_packages[@]}"
fi
