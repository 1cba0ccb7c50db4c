#!/usr/bin/env bash
# Installs everything libbiolm needs on Debian 12 (bookworm), from Debian's packages only.
# Idempotent: a second run checks and does nothing new. Needs root (or sudo).
#
#   tools/setup-debian.sh            # libraries, toolchain, SentencePiece built from source
#   BIOLM_SETUP_PYTHON=0 tools/...   # skip python3-torch (used only by bench/ as the reference)
#
# Why SentencePiece is built here: Debian's libsentencepiece links its own protobuf 3.14 copy,
# LibTorch loads the system libprotobuf 3.21, and the two collide (SIGSEGV before main). We build
# the same upstream version from Debian's source package against the system protobuf, static and
# position-independent, and install it under /opt/biolm-deps/sentencepiece.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PREFIX="${BIOLM_DEPS_PREFIX:-/opt/biolm-deps}"
SPM_PREFIX="$PREFIX/sentencepiece"

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git dpkg-dev
  libtorch-dev libopenblas-dev libopenblas0-openmp
  libprotobuf-dev protobuf-compiler
  libhdf5-dev libeigen3-dev catch2
  nlohmann-json3-dev libyaml-cpp-dev libfmt-dev libspdlog-dev libcli11-dev libgloo-dev
  zlib1g-dev pybind11-dev python3-dev
)
if [ "${BIOLM_SETUP_PYTHON:-1}" = "1" ]; then PKGS+=(python3 python3-torch python3-numpy); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] Debian packages: all present"
fi

# LibTorch links libblas.so.3 / liblapack.so.3 (and OpenBLAS's libopenblas.so.0). Select the
# OpenMP build of OpenBLAS for all three: it runs its threads in the same libgomp pool as
# LibTorch's intra-op parallelism. With the pthread build the two pools fight over the cores
# (idle OpenMP workers spin while OpenBLAS's threads wait for a core): on 2 cores a tiny training
# step took 500 ms with 2 threads against 245 ms with 1; with the OpenMP build it takes 135 ms
# (docs/performance.md).
arch_triplet="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
for alt in "libblas.so.3-$arch_triplet" "liblapack.so.3-$arch_triplet" "libopenblas.so.0-$arch_triplet"; do
  target=$(update-alternatives --list "$alt" 2>/dev/null | grep -m1 openblas-openmp || true)
  if [ -n "$target" ]; then $SUDO update-alternatives --set "$alt" "$target" >/dev/null; fi
done

if [ -f "$SPM_PREFIX/lib/libsentencepiece.a" ] && [ -f "$SPM_PREFIX/.biolm-built" ]; then
  echo "[setup] SentencePiece: already built in $SPM_PREFIX"
else
  echo "[setup] building SentencePiece from Debian's source package against the system protobuf"
  src_list=/etc/apt/sources.list.d/biolm-deb-src.sources
  if ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ && ! grep -qs "^deb-src" /etc/apt/sources.list; then
    $SUDO tee "$src_list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -qq
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -qq sentencepiece >/dev/null 2>&1 || apt-get source sentencepiece)
  srcdir="$(find "$work" -maxdepth 1 -type d -name 'sentencepiece-*' | head -n1)"
  [ -n "$srcdir" ] || { echo "[setup] apt-get source sentencepiece produced no directory" >&2; exit 1; }
  # Debian patches the static library away; we want exactly that library back.
  if [ -f "$srcdir/debian/patches/disable-static-library.patch" ]; then
    (cd "$srcdir" && patch -R -p1 -s < debian/patches/disable-static-library.patch)
  fi
  # The bundled protobuf-lite headers shadow the system ones through an include path; remove them
  # so every protobuf symbol comes from the system library that LibTorch loads too.
  rm -rf "$srcdir/third_party/protobuf-lite"
  sed -i 's|"third_party/protobuf-lite/google/protobuf/message_lite.h"|<google/protobuf/message_lite.h>|' "$srcdir/src/init.h"
  cmake -S "$srcdir" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DSPM_USE_BUILTIN_PROTOBUF=OFF -DSPM_ENABLE_TCMALLOC=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$SPM_PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
  cmake --build "$work/build" -j "$(nproc)" --target sentencepiece-static sentencepiece_train-static 2>&1 | tail -n 20
  # Only the static libraries and headers are installed (upstream's install also wants the tools).
  $SUDO mkdir -p "$SPM_PREFIX/lib" "$SPM_PREFIX/include"
  $SUDO cp "$work/build/src/libsentencepiece.a" "$work/build/src/libsentencepiece_train.a" "$SPM_PREFIX/lib/"
  $SUDO cp "$srcdir/src/sentencepiece_processor.h" "$srcdir/src/sentencepiece_trainer.h" \
    "$work"/build/src/*.pb.h "$SPM_PREFIX/include/"
  $SUDO touch "$SPM_PREFIX/.biolm-built"
  echo "[setup] SentencePiece installed in $SPM_PREFIX"
fi
echo "[setup] done"
