#!/usr/bin/env bash
# make test, after `make lab-up lint-code`: everything in two lanes, so that at most two things compete for the
# machine's two cores (a Spark job starved of CPU outlives the lab's 30 s task timeout).
#   lane 1, on the lab:  the integration tests (file order: they share one lab and inject faults into it).
#   lane 2, beside it:   ansible-lint; the unit tests (random order, pytest-randomly prints the seed); tests/lab;
#                        the integration tests marked beside_the_lab (read-only, robust to the faults of lane 1);
#                        then those marked on_a_twin on twin $TEST_TWIN standing in for the lab (tests/run_on_twin.py):
#                        the tests that mostly wait (Scenario 5's real timeouts, the history layout's rebuild).
# Two labs computing at once would starve each other (measured: both lanes about twice as slow), so the CPU-heavy
# fault tests stay in lane 1. Any part failing fails the target; pytest's exit 5 (nothing collected) is a failure
# too: a suite that runs no test proves nothing. The logs of lane 2 are in .test-logs/.
set -u
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TEST_TWIN=${TEST_TWIN:-d}
read -r -a EXTRA <<< "${PYTEST_ARGS:-}"
LOGS=.test-logs
mkdir -p "$LOGS"
rm -f "$LOGS/failed"

pytest() { "$VENV/bin/pytest" -p no:cacheprovider "$@" "${EXTRA[@]}"; }

# Runs `name command...` with its output in $LOGS/name.log; a failure is recorded in $LOGS/failed.
part() {
    local name=$1
    shift
    "$@" > "$LOGS/$name.log" 2>&1 || echo "$name $?" >> "$LOGS/failed"
}

unit_tests() {
    pytest tests/unit -p randomly -q -ra && pytest tests/lab -p no:randomly -q -ra \
        && pytest tests/integration -m beside_the_lab -p no:randomly -q -ra
}

second_lane() {
    part ansible-lint "$VENV/bin/ansible-lint" --profile production
    part unit-tests unit_tests
    part twin-lane "$VENV/bin/python" tests/run_on_twin.py "$TEST_TWIN" tests/integration -m on_a_twin \
        -p no:cacheprovider -p no:randomly -ra "${EXTRA[@]}"
    part twin-down "$VENV/bin/python" lab/twin.py "$TEST_TWIN" down
}

second_lane & lane=$!
pytest tests/integration -m "not beside_the_lab and not on_a_twin" -p no:randomly -ra
rc=$?
if [ $rc -eq 5 ]; then echo "make test: pytest collected no integration tests" >&2; fi
[ $rc -eq 0 ] || rc=1
wait $lane

for name in ansible-lint unit-tests twin-lane; do
    echo "--- $name ($LOGS/$name.log) ---"
    if grep -q "^$name " "$LOGS/failed" 2>/dev/null; then
        cat "$LOGS/$name.log"
    else
        tail -n 3 "$LOGS/$name.log"
    fi
done
if [ -s "$LOGS/failed" ]; then
    grep -q "^twin-down " "$LOGS/failed" && cat "$LOGS/twin-down.log"
    echo "make test: failed in lane 2 (part, exit code): $(tr '\n' ' ' < "$LOGS/failed")" >&2
    rc=1
fi
exit $rc
