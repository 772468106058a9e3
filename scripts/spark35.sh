#!/usr/bin/env bash
# The conformance lane's Spark: a venv with pyspark 3.5 (K2's major version) whose jars gain the Java Iceberg runtime
# (Spark 3.5, Scala 2.12) and the Jackson that runtime expects under Iceberg's relocated names. PyPI and Debian only
# (no Maven here): the runtime comes from the snowpark-connect-deps-iceberg wheel, the relocation from Debian's jarjar.
# Idempotent: a second run with unchanged requirements costs a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SPARK35_VENV:-.venv-spark35}
RUNTIME=iceberg-spark-runtime-3.5_2.12-1.10.2.jar
RUNTIME_WHEEL=snowpark-connect-deps-iceberg==1.0.3  # carries $RUNTIME, without the Jackson Iceberg relocates
log() { printf 'spark35: %s\n' "$*"; }

want=$(cat requirements-spark35.txt lab/services/conformance/jar_relocation.py "$0" | sha256sum | cut -d" " -f1)
[ "$(cat "$VENV/.requirements.sha" 2>/dev/null)" = "$want" ] && exit 0

for p in libjarjar-java openjdk-17-jre-headless; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    log "installing $p"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
  fi
done
log "creating venv $VENV (pyspark 3.5, ~320 MB download)"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r requirements-spark35.txt 2>&1 | { grep -v 'is ignored: it is neither' || true; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/pip" download -q --no-deps -d "$work" "$RUNTIME_WHEEL" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
jars=$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
unzip -q -j "$work"/snowpark_connect_deps_iceberg-*.whl "*/jars/$RUNTIME" -d "$work"
jackson=$(basename "$jars"/jackson-databind-*.jar .jar); jackson=${jackson#jackson-databind-}
"$VENV/bin/python" lab/services/conformance/jar_relocation.py merge "$work/jackson.jar" \
  "$jars/jackson-annotations-$jackson.jar" "$jars/jackson-core-$jackson.jar" "$jars/jackson-databind-$jackson.jar" \
  "$jars/jackson-datatype-jsr310-$jackson.jar"
echo 'rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1' > "$work/rules"
java -jar /usr/share/java/jarjar.jar process "$work/rules" "$work/jackson.jar" "$work/iceberg-jackson-$jackson.jar"
"$VENV/bin/python" lab/services/conformance/jar_relocation.py services "$work/iceberg-jackson-$jackson.jar" \
  com.fasterxml.jackson. org.apache.iceberg.shaded.com.fasterxml.jackson.
install -m 644 "$work/$RUNTIME" "$work/iceberg-jackson-$jackson.jar" "$jars/"
echo "$want" > "$VENV/.requirements.sha"
log "ready: pyspark $("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)'), $RUNTIME"
