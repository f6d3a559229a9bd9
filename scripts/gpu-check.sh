#!/usr/bin/env bash
# WebGPU on a real GPU (issue 28): on a machine with an NVIDIA GPU, from this repository's
# node_modules (works offline), check what Vulkan needs, run the webgpu test suite, then
# `collectivekv bench gpu` (WebGPU beside wasm, one JSON). See docs/gpu.md.
# Usage: scripts/gpu-check.sh [--smoke] [--skip-tests] [--out FILE] [other bench gpu flags]
#   --smoke       tiny shapes, a software adapter allowed (CI runs it against lavapipe)
#   --skip-tests  do not run the webgpu jest suite (CI has just run it)
# Exit: bench gpu's code (0 done, 3 software adapter refused, 4 no adapter), 5 missing prerequisites,
# 6 the webgpu suite failed (the JSON is still written).
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

smoke=0 skip_tests=0 bench_args=()
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1; bench_args+=("$arg") ;;
    --skip-tests) skip_tests=1 ;;
    *) bench_args+=("$arg") ;;
  esac
done

say() { echo "gpu-check: $*"; }
missing=()

# ---- Node and the packages (no network needed: all are in node_modules after npm ci)
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[[ $node_major -ge 18 ]] || missing+=("Node >= 18 (found: $(node --version 2>/dev/null || echo none))")
for pkg in @tensorflow/tfjs-core @tensorflow/tfjs-layers @tensorflow/tfjs-backend-wasm @tensorflow/tfjs-backend-webgpu webgpu; do
  [[ -f node_modules/$pkg/package.json ]] || missing+=("node_modules/$pkg (npm ci, or copy node_modules from a machine that has it)")
done
dawn="node_modules/webgpu/dist/$(node -p 'process.platform + "-" + process.arch' 2>/dev/null)/dawn.node"
[[ -f $dawn ]] || missing+=("$dawn (Dawn for this platform, from the npm package webgpu)")
[[ -f node_modules/playwright-core/package.json ]] || say "note: no playwright-core: the Chromium fallback will be unavailable"
if [[ ! -f dist/cli.cjs ]]; then
  if [[ -f node_modules/rollup/package.json ]]; then
    say "building dist/ (npm run build) ..."
    npm run build --silent >/dev/null 2>&1 || missing+=("dist/cli.cjs (npm run build failed)")
  else
    missing+=("dist/cli.cjs (run npm run build where the devDependencies are, and copy dist/)")
  fi
else
  node scripts/build-if-stale.mjs >/dev/null 2>&1 || true
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  say "missing prerequisites:"; printf '  - %s\n' "${missing[@]}"; exit 5
fi

# ---- Vulkan: the loader and the NVIDIA driver's ICD (never Mesa: a software adapter is refused anyway)
if command -v nvidia-smi >/dev/null; then
  say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
elif [[ $smoke == 0 ]]; then
  say "note: no nvidia-smi (no NVIDIA driver visible here)"
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null && timeout 60 apt-get install -y -qq --no-install-recommends libvulkan1 >/dev/null 2>&1; then
    say "installed the Vulkan loader (libvulkan1)"
  else
    say "note: no Vulkan loader (libvulkan.so.1) and it could not be installed (offline or not root): Dawn will find no adapter"
  fi
fi
icd_found=$(ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -1)
if [[ -z $icd_found ]] && command -v nvidia-smi >/dev/null; then
  # Containers often mount the driver's Vulkan library (libGLX_nvidia.so.0) without its ICD json; write one.
  if ldconfig -p 2>/dev/null | grep -q 'libGLX_nvidia\.so\.0'; then
    if [[ $(id -u) == 0 ]]; then
      mkdir -p /etc/vulkan/icd.d
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.3.0"}}\n' > /etc/vulkan/icd.d/nvidia_icd.json
      say "wrote /etc/vulkan/icd.d/nvidia_icd.json (the driver's libGLX_nvidia.so.0 was present without it)"
    else
      say "note: libGLX_nvidia.so.0 is present but no NVIDIA ICD json, and not root to write one"
    fi
  else
    say "note: no NVIDIA Vulkan driver library (libGLX_nvidia.so.0): in a container, NVIDIA_DRIVER_CAPABILITIES must include 'graphics' (it is '${NVIDIA_DRIVER_CAPABILITIES:-unset}')"
  fi
fi

# ---- the webgpu test suite
tests_flag=()
if [[ $skip_tests == 1 ]]; then
  tests_flag=("--tests-skipped=--skip-tests given (CI runs the suite in npm test just before)")
elif [[ ! -f node_modules/jest/package.json ]]; then
  tests_flag=("--tests-skipped=jest is not installed here (devDependencies)")
else
  report=$(mktemp /tmp/gpu-check-jest.XXXXXX.json)
  say "webgpu test suite (REQUIRE_WEBGPU=1 npx jest test/webgpu) ..."
  REQUIRE_WEBGPU=1 npx jest --maxWorkers="${GPU_CHECK_JEST_WORKERS:-4}" test/webgpu --json --outputFile="$report" 2>&1 | tail -n 15
  tests_flag=(--tests-json "$report")
fi

# ---- the benchmark (it finds the adapter, refuses a software one without --smoke, writes the JSON)
say "collectivekv bench gpu ${bench_args[*]} ..."
node bin/collectivekv.js bench gpu "${tests_flag[@]}" "${bench_args[@]}"
code=$?
if [[ $code == 0 && ${#tests_flag[@]} -gt 0 && ${tests_flag[0]} == --tests-json ]] &&
  ! node -e 'process.exit(require(process.argv[1]).success ? 0 : 1)' "${tests_flag[1]}" 2>/dev/null; then
  say "the webgpu test suite failed (see above; the JSON records it)"; code=6
fi
exit $code
