"""Give the Java Iceberg runtime the Jackson it was built against, under Iceberg's relocated package names.

The only Iceberg Spark 3.5 runtime on PyPI (snowpark-connect-deps-iceberg) lacks the classes Iceberg relocates to
org.apache.iceberg.shaded.com.fasterxml.jackson. pyspark ships Jackson itself; Debian's jarjar renames its classes.
jarjar 1.4 neither reads multi-release entries (it would flatten META-INF/versions onto the base classes) nor rewrites
service files, so:

  jar_relocation.py merge OUT.jar IN.jar...             one flat jar: base .class files and META-INF/services only
  jar_relocation.py services JAR FROM_PREFIX TO_PREFIX  rename and rewrite the service files jarjar left alone
"""
from __future__ import annotations

import os
import sys
import tempfile
import zipfile

SERVICES = "META-INF/services/"


def _kept(name: str) -> bool:
    if name.startswith(SERVICES):
        return not name.endswith("/")
    return name.endswith(".class") and not name.startswith("META-INF/") and not name.endswith("module-info.class")


def merge(out: str, jars: list[str]) -> int:
    seen: set[str] = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as merged:
        for jar in jars:
            with zipfile.ZipFile(jar) as source:
                for name in source.namelist():
                    if not _kept(name):
                        continue
                    if name in seen:
                        if name.startswith(SERVICES):
                            raise SystemExit(f"{name} is in two of the merged jars: merge it by hand")
                        continue
                    seen.add(name)
                    merged.writestr(name, source.read(name))
    return len(seen)


def services(jar: str, old: str, new: str) -> int:
    changed = 0
    fd, tmp = tempfile.mkstemp(suffix=".jar", dir=os.path.dirname(os.path.abspath(jar)))
    os.close(fd)
    with zipfile.ZipFile(jar) as source, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name.startswith(SERVICES):
                service = name[len(SERVICES):]
                renamed = SERVICES + (new + service[len(old):] if service.startswith(old) else service)
                text = data.decode()
                rewritten = "\n".join(new + line[len(old):] if line.startswith(old) else line
                                      for line in text.split("\n"))
                changed += renamed != name or rewritten != text
                name, data = renamed, rewritten.encode()
            target.writestr(name, data)
    os.replace(tmp, jar)
    return changed


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "merge":
        print(f"merged {merge(sys.argv[2], sys.argv[3:])} entries into {sys.argv[2]}")
    elif len(sys.argv) == 5 and sys.argv[1] == "services":
        print(f"rewrote {services(*sys.argv[2:5])} service file(s) in {sys.argv[2]}")
    else:
        raise SystemExit(__doc__)
