"""Loaded by Python in the conformance lane's Spark container (PYTHONPATH): K2's offload job runs unmodified, and
only its `spark.read.jdbc(...)` of ClickHouse is answered by the JDBC stand-in (lab/services/offload/
clickhouse_jdbc_standin.py): the same query over HTTP, JDBC's Spark types. Without the driver's jar the real
`jdbc()` runs, and the JVM fails with its own ClassNotFoundException, as on K2."""
from __future__ import annotations

import re
from decimal import Decimal

_URL = re.compile(r"^jdbc:clickhouse:(?:http:)?//([^:/?]+)(?::(\d+))?/?([^?]*)")


def _standin_read(reader, url: str, table: str, properties: dict):
    import clickhouse_connect
    import clickhouse_jdbc_standin as standin
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string
    host, port, database = _URL.match(url).groups()
    client = clickhouse_connect.get_client(host=host, port=int(port or 8123), database=database or "default",
                                           username=properties.get("user", "default"),
                                           password=properties.get("password", ""), query_retries=0)
    columns = standin.describe(client, table)
    schema = StructType([StructField(name, _parse_datatype_string(standin.spark_type(kind)), True)
                         for name, kind in columns])
    data = standin.query(client, table, columns)
    decimals = [i for i, field in enumerate(schema.fields) if field.dataType.typeName() == "decimal"]
    values = [data.column(i).to_pylist() for i in range(data.num_columns)]
    for i in decimals:  # UInt64 arrives as an int; Spark's DecimalType takes Decimal only
        values[i] = [None if v is None else Decimal(v) for v in values[i]]
    return reader._spark.createDataFrame(list(zip(*values)), schema)


def _install() -> None:
    try:
        import clickhouse_jdbc_standin as standin
        from pyspark.sql import readwriter
    except ImportError:  # a Python process of the container that is not Spark's
        return
    original = readwriter.DataFrameReader.jdbc

    def jdbc(self, url, table, column=None, lowerBound=None, upperBound=None, numPartitions=None,  # noqa: N803
             predicates=None, properties=None):
        if url.startswith("jdbc:clickhouse:") and standin.DRIVER_JAR.is_file():
            return _standin_read(self, url, table, dict(properties or {}))
        return original(self, url, table, column=column, lowerBound=lowerBound, upperBound=upperBound,
                        numPartitions=numPartitions, predicates=predicates, properties=properties)

    readwriter.DataFrameReader.jdbc = jdbc


_install()
