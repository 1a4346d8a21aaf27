#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target in fuzz/: FUZZ_SECONDS per target (default 20).
# Fails on the first crash, panic, leak or timeout; the reproducer is left in fuzz/artifacts/.
# Needs no nightly: RUSTC_BOOTSTRAP=1 lets the stable toolchain take the sanitizer flags.
#   FUZZ_SECONDS=300 .ci/fuzz.sh            # longer runs
#   .ci/fuzz.sh validate_token http_router  # some targets only
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

# -a: debug assertions (integer overflow panics too). One build for all targets.
cargo fuzz build -a

for t in "${targets[@]}"; do
  # The committed seeds stay as they are: libFuzzer grows a scratch copy.
  work="$(mktemp -d)"
  cp corpus/"$t"/seed-* "$work"/
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  echo "fuzz: $t for ${seconds}s"
  if ! cargo fuzz run -a "$t" "$work" -- -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" 2>"$work.log"; then
    tail -n 60 "$work.log"
    echo "fuzz: $t FAILED; reproducer in fuzz/artifacts/$t/ (run: cargo fuzz run $t <file>)"
    exit 1
  fi
  grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units' "$work.log" | sed "s/^/fuzz: $t: /"
  rm -rf "$work" "$work.log"
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
