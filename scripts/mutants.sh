#!/usr/bin/env bash
# Mutation testing of the modules that carry guarantees, each with the tests that cover it
# (`make mutants`; results: docs/mutants.md). Not part of `make test`.
#
#   scripts/mutants.sh [MODULE...]     default: every module below
#   MUTANTS_ARGS="--iterate"           more cargo-mutants options (--iterate: retest only the
#                                      mutants the last run of the module did not catch)
#
# Runs cargo-mutants --in-place: the mutated file is the work tree's own and the build reuses
# target/ (a copied tree would rebuild every dependency). So the tree under src/ must be clean
# before the run, and nothing may edit it during the run; cargo-mutants restores each file after
# its mutant. Outcomes per module in target/mutants/<module>/mutants.out/, summary in
# target/mutants/summary.md.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT"
export HSM_DEMO_TEST_OWN_STANDIN=1
TIMEOUT=${MUTANTS_TIMEOUT:-300}

# module | file | cargo test arguments covering it (whole targets: a test-name filter would apply
# to every target given, so `--lib` runs all unit tests)
MODULES=(
  "token|src/pca/token.rs|--lib --test pca_e2e --test pca_key_compromise"
  "registry|src/pca/registry.rs|--test guarantees_duplicate_serial --test pca_concurrency --test pca_crash"
  "issue|src/pca/issue.rs|--test pca_crash --test pca_unknown_outcome --test pca_e2e --test pca_terminal_errors"
  "csr|src/pca/csr.rs|--lib --test hostile_input_pca --test pca_bad_input"
  "revoke|src/pca/revoke.rs|--features failpoints --test guarantees_revoke --test pca_revoke_crash --test pca_key_compromise"
  "keygen|src/hsm/keygen.rs|--test guarantees_key_attributes --test hsm_flow --test hsm_lookup --test hsm_bad_input --test hsm_ceremony_recover --test hsm_ceremony_keys --test keygen_library"
  "pin|src/hsm/pin.rs|--lib --test guarantees_pin_secrecy --test hostile_input_hsm --test hsm_bad_input --test hsm_interop"
  "transcript|src/ceremony/transcript.rs|--lib --test hsm_ceremony --test hsm_ceremony_recover"
  "device_key|src/pca/device_key.rs|--lib --test device_key_binding --test pca_terminal_errors --test batch_key_index"
)

command -v cargo-mutants >/dev/null || {
  echo "error: cargo-mutants not found (cargo install cargo-mutants --locked)" >&2; exit 1; }
if ! git diff --quiet -- src; then
  echo "error: src/ has uncommitted changes; cargo-mutants --in-place needs a clean tree" >&2; exit 1
fi

want=("$@")
out_dir="$ROOT/target/mutants"
mkdir -p "$out_dir"
summary="$out_dir/summary.md"
echo "| module | file | tests | mutants | caught | missed | unviable | timeout |" > "$summary"
echo "|---|---|---|---|---|---|---|---|" >> "$summary"
for m in "${MODULES[@]}"; do
  IFS='|' read -r name file args <<<"$m"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  [ -f "$file" ] || { echo "error: $name: $file does not exist (module moved? update scripts/mutants.sh)" >&2; exit 1; }
  echo "mutants: $name ($file) with cargo test $args"
  # The target selection goes to every cargo call (-C), build included: otherwise each mutant
  # would build all ~40 test binaries, not just the ones that run.
  cargo_args=()
  for a in $args; do cargo_args+=("--cargo-arg=$a"); done
  cargo mutants --in-place --no-shuffle --timeout "$TIMEOUT" --file "$file" \
    --output "$out_dir/$name" ${MUTANTS_ARGS:-} "${cargo_args[@]}" || true  # non-zero when a mutant survives: summarised below
  python3 - "$out_dir/$name/mutants.out/outcomes.json" "$name" "$file" "$args" >> "$summary" <<'PY'
import json, sys
path, name, file, args = sys.argv[1:5]
o = json.load(open(path))
n = {k: o.get(k, 0) for k in ("total_mutants", "caught", "missed", "unviable", "timeout")}
print(f"| {name} | `{file}` | `{args}` | {n['total_mutants']} | {n['caught']} | {n['missed']} | {n['unviable']} | {n['timeout']} |")
PY
  if [ -s "$out_dir/$name/mutants.out/missed.txt" ]; then
    echo "mutants: $name: survivors (explain each in docs/mutants.md, or add a test):"
    sed 's/^/  /' "$out_dir/$name/mutants.out/missed.txt"
  fi
done
git diff --quiet -- src || { echo "error: src/ differs after the run: a mutant was left in place (git checkout -- src)" >&2; exit 1; }
echo "mutants: summary in $summary"
cat "$summary"
