"""The replay's rows in memory (`RowStore`): read from Postgres once when a fold first needs them,
changed in place by the folds (projections/replay_fold.py), written back with COPY.

Apart from the folds because it is one job of its own: which rows exist, which changed, and how
they reach the tables (with each column's default filled in as Postgres would).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, text

Row = dict[str, Any]
Key = tuple[Any, ...]


@dataclass
class TableMeta:
    name: str
    columns: list[str]
    key: list[str]
    key_types: list[str]
    defaults: Row
    json_columns: set[str]


def table_meta(conn: Connection, table: str) -> TableMeta:
    """Columns, primary key and the evaluated column defaults of a table in the current schema."""
    columns = conn.execute(
        text(
            "SELECT column_name, column_default, data_type, udt_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t ORDER BY ordinal_position"
        ),
        {"t": table},
    ).all()
    key = [
        name
        for (name,) in conn.execute(
            text(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)"
            ),
            {"t": table},
        )
    ]
    types = {name: udt for name, _, _, udt in columns}
    defaults: Row = {name: None for name, *_ in columns}
    with_default = [(name, expr) for name, expr, *_ in columns if expr is not None]
    if with_default:
        values = conn.execute(text("SELECT " + ", ".join(expr for _, expr in with_default))).one()
        defaults.update({name: value for (name, _), value in zip(with_default, values, strict=True)})
    return TableMeta(
        name=table,
        columns=[name for name, *_ in columns],
        key=key,
        key_types=[types[k] for k in key],
        defaults=defaults,
        json_columns={name for name, _, data_type, _ in columns if data_type in ("json", "jsonb")},
    )


class RowStore:
    """Rows of some tables held in memory (None: deleted), written back by `flush`."""

    def __init__(self, conn: Connection, tables: list[str]) -> None:
        self.conn = conn
        self.meta = {t: table_meta(conn, t) for t in tables}
        self.rows: dict[str, dict[Key, Row | None]] = {t: {} for t in tables}
        self.dirty: dict[str, set[Key]] = {t: set() for t in tables}
        self.in_db: set[str] = set()  # tables Postgres may hold rows of (else a miss means absent)
        self.written = 0
        self.loaded = 0

    def get(self, table: str, key: Key) -> Row | None:
        rows = self.rows[table]
        if key in rows:
            return rows[key]
        row = None
        if table in self.in_db:
            meta = self.meta[table]
            where = " AND ".join(f'"{k}" = :k{i}' for i, k in enumerate(meta.key))
            found = (
                self.conn.execute(
                    text(f'SELECT * FROM "{table}" WHERE {where}'), {f"k{i}": v for i, v in enumerate(key)}
                )
                .mappings()
                .first()
            )
            row = dict(found) if found is not None else None
            self.loaded += 1
        rows[key] = row
        return row

    def new(self, table: str, key: Key, **values: Any) -> Row:
        row = dict(self.meta[table].defaults)
        row.update(values)
        self.rows[table][key] = row
        self.dirty[table].add(key)
        return row

    def touch(self, table: str, key: Key) -> None:
        self.dirty[table].add(key)

    def delete(self, table: str, key: Key) -> None:
        self.rows[table][key] = None
        self.dirty[table].add(key)

    def flush(self) -> None:
        """Write every changed row (delete, then COPY the current version) and forget them all."""
        raw = self.conn.connection.driver_connection
        assert raw is not None
        for table, meta in self.meta.items():
            keys = self.dirty[table]
            if keys and table in self.in_db:
                arrays = [[key[i] for key in keys] for i in range(len(meta.key))]
                columns = ", ".join(f'"{k}"' for k in meta.key)
                unnest = ", ".join(f"CAST(:a{i} AS {t}[])" for i, t in enumerate(meta.key_types))
                self.conn.execute(
                    text(f'DELETE FROM "{table}" WHERE ({columns}) IN (SELECT * FROM unnest({unnest}))'),
                    {f"a{i}": a for i, a in enumerate(arrays)},
                )
            rows = self.rows[table]
            live = [rows[k] for k in keys if rows.get(k) is not None]
            if live:
                names = meta.columns
                jsons = [i for i, c in enumerate(names) if c in meta.json_columns]
                quoted = ", ".join(f'"{c}"' for c in names)
                statement = f'COPY "{table}" ({quoted}) FROM STDIN'
                with raw.cursor().copy(statement) as copy:
                    for row in live:
                        values = [row[c] for c in names]  # type: ignore[index]
                        for i in jsons:
                            if values[i] is not None:
                                values[i] = Jsonb(values[i])
                        copy.write_row(values)
                self.written += len(live)
            self.rows[table] = {}
            self.dirty[table] = set()
            self.in_db.add(table)
