#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Proxima builds and tests with, if any are missing.
# Needs root (or sudo) only when something is missing. See INSTALL for clusters without root.
set -euo pipefail

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
  librandom123-dev                  # Philox counter-based random numbers
  python3-torch python3-h5py python3-numpy   # the PyTorch cross-check and baselines
  python3-matplotlib                         # the demo's plots of metrics.jsonl
  munge slurmctld slurmd slurm-client         # a one-node Slurm cluster for the slurm tests (jobs/local/)
)
# The list above, without the comments.
wanted=$(printf '%s\n' "${packages[@]}")

missing=()
for p in $wanted; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
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
