#!/usr/bin/env bash
# credit on a GPU in one call: the adapter wgpu gets, the wgpu tests, the paper run, and the
# training speed of credit (wgpu) against PyTorch CUDA (eager and torch.compile) on the
# paper (784-100-100-10), wide (784-1000-1000-10) and CIFAR-10 (3072-200-200-10, dense)
# shapes. Written for a machine with an NVIDIA GPU, PyTorch with CUDA as python3, no Rust
# toolchain and no Vulkan loader (this workplace's device machine: /work/.library/device/).
#
# Two halves:
#
#   bench/gpu.sh --prepare   here, where credit is built. Builds nothing: it checks that
#       these exist, then packs them into .gpu/ (gzip) and fetches the Vulkan loader
#       packages into .gl/ (both ignored through .git/info/exclude):
#         cargo build --release -p credit-cli --features wgpu          -> $CARGO_TARGET_DIR/release/credit
#         cargo test --release -p credit-tests --features wgpu --test wgpu --no-run
#                                                                      -> $CARGO_TARGET_DIR/release/deps/wgpu-HASH
#       (CREDIT=FILE and WGPU_TESTS=FILE name other binaries.) Then it prints the `run`
#       call to make: command `bash bench/gpu.sh`, carry [".gpu", ".gl"].
#
#   bench/gpu.sh             there, in the repository root: unpacks the loaders, then runs
#       each step under its own `timeout`, all of them inside GPU_BUDGET seconds (default
#       530, for a call of timeout_s 600), in this order: adapter and driver; wgpu tests;
#       the paper run (configs/mnist.toml, 100 epochs); per shape `credit bench --backend
#       wgpu` then bench/reference/sas_torch.py --device cuda (eager); then sas_torch.py
#       --compile on each shape. A step that fails or runs out of time is recorded and the
#       next one runs. Writes to $OUT: gpu.log (everything printed), gpu.json (the table and
#       every number), paper-summary.json, paper-metrics.csv, tests.log, smi.csv (GPU
#       utilisation sampled every second). The table is printed last.
#
# Settings (environment): GPU_BUDGET (seconds for everything), GPU_EPOCHS (timed epochs per
# speed run, default 5, after one warm-up), GPU_SHAPES (default paper,wide,cifar),
# GPU_PAPER_EPOCHS (default 100), GPU_DIR (default .gpu), GPU_TORCH_DEVICE (default cuda),
# GPU_COMPILE=0 (no torch.compile runs), GPU_SKIP_LOADERS=1 (do not unpack .gl/), CUBECL_WGPU_DEFAULT_DEVICE (set to DiscreteGpu(0)
# when the Vulkan probe finds a discrete GPU, so that a CPU adapter is never taken silently).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd -P)
GPU_DIR=${GPU_DIR:-.gpu}

# ---------------------------------------------------------------------------------------
# --prepare: here, on the build machine.
# ---------------------------------------------------------------------------------------

# The newest test executable of tests/wgpu.rs in the target directory.
newest_wgpu_tests() {
  local deps=$1 newest="" f
  for f in "$deps"/wgpu-*; do
    case $f in *.d | *.rlib | *.rmeta | *.so) continue ;; esac
    if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
    if [ -z "$newest" ] || [ "$f" -nt "$newest" ]; then newest=$f; fi
  done
  printf '%s' "$newest"
}

# The package root the test binary was compiled in (its CARGO_MANIFEST_DIR, where it looks
# for configs/ and data/), read from cargo's dependency file beside it.
manifest_dir_of() {
  local dfile="${1}.d" src
  [ -f "$dfile" ] || return 1
  src=$(head -n 1 "$dfile" | tr ' ' '\n' | grep -m 1 '/tests/wgpu\.rs$') || return 1
  printf '%s' "${src%/tests/wgpu.rs}"
}

prepare() {
  set -e
  local target=${CARGO_TARGET_DIR:-}
  if [ -z "$target" ]; then
    # Where the README and CI (.ci/run) build: ./target, or ~/.cache/credit-target.
    target=target
    [ -x target/release/credit ] || [ ! -d "$HOME/.cache/credit-target/release" ] || target=$HOME/.cache/credit-target
  fi
  local credit=${CREDIT:-$target/release/credit}
  local tests=${WGPU_TESTS:-$(newest_wgpu_tests "$target/release/deps")}
  local missing=0
  if [ ! -x "$credit" ]; then
    echo "missing: $credit; build it with: cargo build --release -p credit-cli --features wgpu"
    missing=1
  elif ! grep -aqF 'wgpu-core' "$credit"; then
    echo "$credit has no wgpu in it; rebuild with: cargo build --release -p credit-cli --features wgpu"
    missing=1
  fi
  if [ -z "$tests" ] || [ ! -x "$tests" ]; then
    echo "missing: the wgpu test binary in $target/release/deps; build it with:"
    echo "  cargo test --release -p credit-tests --features wgpu --test wgpu --no-run"
    missing=1
  fi
  [ "$missing" = 0 ] || exit 1

  # Binaries older than a tracked source file were built from other code.
  local newer
  for bin in "$credit" "$tests"; do
    newer=$(git ls-files -z -- '*.rs' '*Cargo.toml' 'Cargo.lock' |
      xargs -0 -I{} find {} -newer "$bin" -print 2>/dev/null | head -n 3) || true
    if [ -n "$newer" ]; then
      echo "warning: $bin is older than $(echo "$newer" | tr '\n' ' ')- rebuild it first"
    fi
  done

  local manifest
  manifest=$(manifest_dir_of "$tests") || manifest=$ROOT
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  for pattern in /.gl/ /.gpu/; do
    grep -qxF "$pattern" "$exclude" 2>/dev/null || echo "$pattern" >>"$exclude"
  done

  rm -rf "$GPU_DIR"
  mkdir -p "$GPU_DIR"
  # gzip: the two binaries are most of what travels (64 MiB at most, the tree included).
  # Symbols are kept (names in a backtrace from the GPU machine) unless that is too much.
  gzip -6 -c "$credit" >"$GPU_DIR/credit.gz"
  gzip -6 -c "$tests" >"$GPU_DIR/wgpu-tests.gz"
  if [ "$(cat "$GPU_DIR"/*.gz | wc -c)" -gt $((40 * 1048576)) ]; then
    echo "over 40 MiB gzipped: stripping the copies"
    local scratch
    scratch=$(mktemp -d)
    strip -o "$scratch/credit" "$credit"
    strip -o "$scratch/wgpu-tests" "$tests"
    gzip -6 -c "$scratch/credit" >"$GPU_DIR/credit.gz"
    gzip -6 -c "$scratch/wgpu-tests" >"$GPU_DIR/wgpu-tests.gz"
    rm -rf "$scratch"
  fi
  printf '%s\n' "$manifest" >"$GPU_DIR/manifest_dir"
  {
    echo "credit $(git describe --always --dirty 2>/dev/null)"
    echo "credit binary: $credit ($(date -r "$credit" '+%F %T'))"
    echo "wgpu tests: $tests ($(date -r "$tests" '+%F %T'))"
    echo "test manifest dir: $manifest"
    echo "built on: $(uname -srm), $(ldd --version 2>/dev/null | head -n 1)"
    echo "credit links: $(ldd "$credit" 2>/dev/null | awk '{ print $1 }' | tr '\n' ' ')"
    echo "glibc symbols needed up to: $(objdump -T "$credit" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
  } >"$GPU_DIR/build.txt"
  cat "$GPU_DIR/build.txt"

  # The Vulkan loader (and the GL ones the device README's recipe names), for amd64,
  # fetched through apt into .gl/ (the device README's recipe).
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    mkdir -p .gl /tmp/amd64/partial
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  ls -l .gl "$GPU_DIR"

  # What travels: tracked and untracked-not-ignored files, plus the carried folders.
  local tree carried
  tree=$(git ls-files -z --cached --others --exclude-standard |
    xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }') || true
  carried=$(find "$GPU_DIR" .gl -type f -print0 | xargs -0 stat -c %s | awk '{ s += $1 } END { print s + 0 }')
  echo "travels: tree $((tree / 1048576)) MiB + carried $((carried / 1048576)) MiB = $(((tree + carried) / 1048576)) MiB (limit 64)"
  if [ $((tree + carried)) -gt $((62 * 1048576)) ]; then
    echo "warning: over 62 MiB; strip the binaries (strip CREDIT WGPU_TESTS copies) or carry less"
  fi
  cat <<'EOF'

Ready. On the device machine, one call (device README: /work/.library/device/README.md):
  run(command="bash bench/gpu.sh", carry=[".gpu", ".gl"], timeout_s=600)
Its files come back under files_at: gpu.log, gpu.json, paper-summary.json, paper-metrics.csv,
tests.log, smi.csv. Print the table again here with:
  python3 bench/gpu_summary.py show FILES_AT/gpu.json
EOF
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: bench/gpu.sh [--prepare]" >&2
  exit 2
fi

# ---------------------------------------------------------------------------------------
# On the device machine.
# ---------------------------------------------------------------------------------------

T0=$(date +%s)
BUDGET=${GPU_BUDGET:-530}
EPOCHS=${GPU_EPOCHS:-5}
SHAPES=${GPU_SHAPES:-paper,wide,cifar}
PAPER_EPOCHS=${GPU_PAPER_EPOCHS:-100}
TORCH_DEVICE=${GPU_TORCH_DEVICE:-cuda}
OUT=${OUT:-/tmp/credit-gpu-out}
W=$(mktemp -d /tmp/credit-gpu.XXXX)
mkdir -p "$OUT" "$W/bin"
exec > >(tee -a "$OUT/gpu.log") 2>&1
TEE=$!
STEPS=$W/steps.tsv
: >"$STEPS"
export RUST_BACKTRACE=1 PYTHONUNBUFFERED=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

say() { printf '\n=== [%4ds] %s\n' $(($(date +%s) - T0)) "$*"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }

# step NAME LIMIT COMMAND...: runs COMMAND under `timeout` for at most LIMIT seconds and what
# the budget has left (keeping 25 s for the summary), its output into the log and
# $W/NAME.log; records NAME, exit status, seconds, start and end in steps.tsv. Exit status
# 124 (or 128 + 9) is a timeout, "skipped" a step the budget had no time for.
step() {
  local name=$1 limit=$2
  shift 2
  local room=$(($(left) - 25))
  [ "$limit" -lt "$room" ] || limit=$room
  if [ "$limit" -lt 15 ]; then
    say "$name: skipped, $(left) s of the budget left"
    printf '%s\tskipped\t0\t%s\t%s\n' "$name" "$(date +%s.%N)" "$(date +%s.%N)" >>"$STEPS"
    return 0
  fi
  say "$name (limit ${limit} s): $*"
  local start end rc
  start=$(date +%s.%N)
  timeout -s TERM -k 15 "$limit" "$@" 2>&1 | tee "$W/$name.log"
  rc=${PIPESTATUS[0]}
  end=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$seconds" "$start" "$end" >>"$STEPS"
  echo "--- $name: exit $rc after $seconds s"
  return 0
}

say "machine"
date -u '+%F %T UTC'
uname -a
nproc
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,pstate --format=csv 2>&1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))' 2>&1
cat "$GPU_DIR/build.txt" 2>/dev/null

say "Vulkan loader"
if [ "${GPU_SKIP_LOADERS:-0}" = 1 ] || ! command -v nvidia-smi >/dev/null; then
  # Unpacking into / is for the bare device machine only, never a developer's machine.
  echo "not unpacking .gl/ (GPU_SKIP_LOADERS=1 or no nvidia-smi here)"
elif ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  echo "libvulkan.so.1 is already there"
else
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
ldconfig -p | grep libvulkan || echo "no libvulkan in ldconfig's cache"
for icd in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d; do
  ls -l "$icd" 2>/dev/null
done

say "Vulkan devices (what wgpu can pick from)"
timeout 60 python3 bench/gpu_summary.py vulkan "$W/vulkan.json"
if ! grep -q '"name"' "$W/vulkan.json" 2>/dev/null &&
  [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  echo "no Vulkan device found; again with the NVIDIA driver's own ICD file"
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  timeout 60 python3 bench/gpu_summary.py vulkan "$W/vulkan.json"
fi
if [ -z "${CUBECL_WGPU_DEFAULT_DEVICE:-}" ] && grep -q '"type": "discrete-gpu"' "$W/vulkan.json" 2>/dev/null; then
  export CUBECL_WGPU_DEFAULT_DEVICE='DiscreteGpu(0)'
fi
echo "CUBECL_WGPU_DEFAULT_DEVICE=${CUBECL_WGPU_DEFAULT_DEVICE:-} VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"

say "binaries"
CREDIT=$W/bin/credit
TESTS=$W/bin/wgpu-tests
gzip -dc "$GPU_DIR/credit.gz" >"$CREDIT" && gzip -dc "$GPU_DIR/wgpu-tests.gz" >"$TESTS" &&
  chmod +x "$CREDIT" "$TESTS" || echo "cannot unpack $GPU_DIR/*.gz (run bench/gpu.sh --prepare first)"
"$CREDIT" --version
# The test binary finds configs/ and data/ under the folder it was compiled in.
MANIFEST=$(cat "$GPU_DIR/manifest_dir" 2>/dev/null || echo "$ROOT")
if [ "$MANIFEST" != "$ROOT" ] && [ ! -e "$MANIFEST/configs/smoke.toml" ]; then
  if [ -e "$MANIFEST" ] || [ -L "$MANIFEST" ]; then
    echo "warning: $MANIFEST exists without configs/; the tests that read files will fail"
  else
    mkdir -p "$(dirname "$MANIFEST")" && ln -s "$ROOT" "$MANIFEST" && echo "linked $MANIFEST -> $ROOT"
  fi
fi
NO_ANALYSIS=()
if "$CREDIT" bench --help 2>/dev/null | grep -q -- '--no-analysis'; then
  NO_ANALYSIS=(--no-analysis)
else
  # Without --no-analysis, `credit bench` also runs `credit analyze` on each spike-and-slab
  # run (untimed in the training numbers, but it takes the budget's time).
  echo "credit bench has no --no-analysis: it analyses each benchmark run too"
fi

# GPU load through the whole call, one line a second.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm,power.draw \
  --format=csv,noheader,nounits -lms 1000 >"$OUT/smi.csv" 2>/dev/null &
SMI=$!

step tests 150 "$TESTS" --test-threads 1
cp "$W/tests.log" "$OUT/tests.log" 2>/dev/null

# The paper run; a snapshot of nvidia-smi 10 s in shows the processes on the GPU.
(sleep 10 && command -v nvidia-smi >/dev/null && nvidia-smi >"$W/smi-during-paper.txt" 2>&1) &
SNAP=$!
step paper 200 "$CREDIT" train --config configs/mnist.toml --backend wgpu --out "$W/paper" \
  --no-dashboard --set "train.epochs=$PAPER_EPOCHS"
kill "$SNAP" 2>/dev/null
wait "$SNAP" 2>/dev/null
cat "$W/smi-during-paper.txt" 2>/dev/null
cp "$W/paper/summary.json" "$OUT/paper-summary.json" 2>/dev/null
cp "$W/paper/metrics.csv" "$OUT/paper-metrics.csv" 2>/dev/null

# Shapes, as bench/compare.py sets them: sizes, batch, data format, data folder.
shape_args() {
  case $1 in
  paper) echo "784,100,100,10 500 idx data/mnist" ;;
  wide) echo "784,1000,1000,10 500 idx data/mnist" ;;
  cifar) echo "3072,200,200,10 200 cifar10 $W/cifar" ;;
  *) return 1 ;;
  esac
}
case ",$SHAPES," in *,cifar,*)
  say "dense CIFAR-10-format data (bench/make_cifar_like.py)"
  python3 bench/make_cifar_like.py "$W/cifar" --train 10000 --test 1000 && ls -l "$W/cifar" ;;
esac

bench_credit() {
  local shape=$1 sizes batch format dir
  read -r sizes batch format dir <<<"$(shape_args "$shape")"
  step "credit-$shape" 120 "$CREDIT" bench --backend wgpu --config configs/mnist.toml \
    --set "model.sizes=[$sizes]" --set "train.batch_size=$batch" --set data.train_size=10000 \
    --set data.test_size=1000 --set "data.format=$format" --set "data.dir=$dir" \
    --epochs "$EPOCHS" --eval-repeats 1 "${NO_ANALYSIS[@]}" --json "$W/credit-$shape.json"
}

bench_torch() {
  local shape=$1 side=$2 sizes batch format dir
  shift 2
  read -r sizes batch format dir <<<"$(shape_args "$shape")"
  step "$side-$shape" "$TORCH_LIMIT" python3 bench/reference/sas_torch.py --device "$TORCH_DEVICE" \
    --sizes "$sizes" --batch "$batch" --train-size 10000 --format "$format" --data "$dir" \
    --epochs "$EPOCHS" "$@"
}

IFS=, read -r -a SHAPE_LIST <<<"$SHAPES"
TORCH_LIMIT=60
for shape in "${SHAPE_LIST[@]}"; do
  bench_credit "$shape"
  bench_torch "$shape" torch-eager
done
TORCH_LIMIT=150
if [ "${GPU_COMPILE:-1}" = 1 ]; then
  for shape in "${SHAPE_LIST[@]}"; do
    bench_torch "$shape" torch-compile --compile
  done
fi

kill "$SMI" 2>/dev/null
wait "$SMI" 2>/dev/null
say "summary"
python3 bench/gpu_summary.py table "$W" "$OUT"
say "done in $(($(date +%s) - T0)) s"
exec >&- 2>&-
wait "$TEE"
