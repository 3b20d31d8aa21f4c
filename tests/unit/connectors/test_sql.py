"""SQL helpers: sanitising, fingerprints, operation and table extraction, the per-statement cache."""

from __future__ import annotations

import pytest

from agent.connectors.sql import MAX_STATEMENT, QueryCache, operation_and_table, parse, sanitize


@pytest.mark.parametrize(("statement", "expected"), [
    ("SELECT * FROM users WHERE id = 42", "SELECT * FROM users WHERE id = ?"),
    ("SELECT * FROM t WHERE name = 'o''brien' AND note = 'it\\'s'", "SELECT * FROM t WHERE name = ? AND note = ?"),
    ("SELECT * FROM t WHERE x = -1.5e3 AND h = 0xFF AND b = X'00ff'", "SELECT * FROM t WHERE x = -? AND h = ? AND b = ?"),
    ("SELECT * FROM t2 WHERE t2.col1 = 3", "SELECT * FROM t2 WHERE t2.col1 = ?"),
    ("SELECT $$ body; 'quoted' $$", "SELECT ?"),
    ("/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/ SELECT 1",
     "SELECT ?"),
    ("SELECT a -- trailing 'comment'\nFROM t", "SELECT a FROM t"),
    ("SELECT '-- not a comment', '/* nor this */' FROM t", "SELECT ?, ? FROM t"),
    ("SELECT * FROM t WHERE id IN (1, 2, 3, 4)", "SELECT * FROM t WHERE id IN (?)"),
    ("select * from t where id in (?,?)", "select * from t where id in (?)"),
    ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", "INSERT INTO t (a, b) VALUES (?, ?)"),
    ("SELECT  *\n\tFROM   t", "SELECT * FROM t"),
    ('SELECT "col 1", `col2`, [col3] FROM "my table"', 'SELECT "col 1", `col2`, [col3] FROM "my table"'),
    ("SELECT a::text FROM t WHERE a = :a AND b = %(b)s AND c = %s AND d = $1 AND e = @p1",
     "SELECT a::text FROM t WHERE a = ? AND b = ? AND c = ? AND d = ? AND e = ?"),
])
def test_sanitize(statement: str, expected: str) -> None:
    assert sanitize(statement) == expected


def test_every_driver_placeholder_style_gives_one_fingerprint() -> None:
    forms = ["SELECT posts.id FROM posts WHERE posts.user_id = ?",
             "SELECT posts.id FROM posts WHERE posts.user_id = %(user_id_1)s",
             "SELECT posts.id FROM posts WHERE posts.user_id = :user_id",
             "SELECT posts.id FROM posts WHERE posts.user_id = $1",
             "SELECT posts.id FROM posts WHERE posts.user_id = 17",
             "/* controller='users' */ SELECT posts.id  FROM posts WHERE posts.user_id = 18"]
    fingerprints = {parse(f).fingerprint for f in forms}
    assert len(fingerprints) == 1
    fp = fingerprints.pop()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert parse("SELECT posts.id FROM posts WHERE posts.author_id = 1").fingerprint != fp


@pytest.mark.parametrize(("statement", "op", "table"), [
    ("SELECT id FROM users WHERE id = ?", "SELECT", "users"),
    ("select v from t where id = ?", "SELECT", "t"),
    ('SELECT * FROM "public"."Users" u', "SELECT", "public.Users"),
    ("SELECT * FROM `shop`.`orders`", "SELECT", "shop.orders"),
    ("SELECT * FROM [dbo].[Orders]", "SELECT", "dbo.Orders"),
    ("SELECT * FROM ONLY parent", "SELECT", "parent"),
    ("SELECT count(*) FROM (SELECT id FROM orders) AS x", "SELECT", "orders"),
    ("SELECT EXTRACT(YEAR FROM created_at) FROM events", "SELECT", "events"),
    ("SELECT 1", "SELECT", ""),
    ("(SELECT a FROM t1) UNION (SELECT a FROM t2)", "SELECT", "t1"),
    ("WITH r AS (SELECT * FROM posts) SELECT * FROM r JOIN users ON users.id = r.user_id", "SELECT", "r"),
    ("WITH r AS (SELECT 1) DELETE FROM sessions WHERE id IN (SELECT * FROM r)", "DELETE", "sessions"),
    ("INSERT INTO posts (user_id, title) VALUES (?, ?)", "INSERT", "posts"),
    ("INSERT OR REPLACE INTO kv VALUES (?, ?)", "INSERT", "kv"),
    ("insert ignore into logs values (?)", "INSERT", "logs"),
    ("REPLACE INTO kv VALUES (?, ?)", "REPLACE", "kv"),
    ("UPDATE accounts SET balance = ? WHERE id = ?", "UPDATE", "accounts"),
    ("UPDATE OR IGNORE accounts SET x = ?", "UPDATE", "accounts"),
    ("DELETE FROM sessions WHERE expires < ?", "DELETE", "sessions"),
    ("MERGE INTO target USING source ON target.id = source.id", "MERGE", "target"),
    ("CREATE TABLE IF NOT EXISTS t (id integer primary key)", "CREATE", "t"),
    ("CREATE TEMPORARY TABLE tmp_x AS SELECT 1", "CREATE", "tmp_x"),
    ("CREATE INDEX ix ON t (a)", "CREATE", ""),
    ("DROP TABLE IF EXISTS old_data", "DROP", "old_data"),
    ("ALTER TABLE users ADD COLUMN age int", "ALTER", "users"),
    ("TRUNCATE TABLE audit", "TRUNCATE", "audit"),
    ("BEGIN", "BEGIN", ""),
    ("PRAGMA foreign_keys = ON", "PRAGMA", ""),
    ("", "", ""),
    ("   ", "", ""),
])
def test_operation_and_table(statement: str, op: str, table: str) -> None:
    assert operation_and_table(sanitize(statement)) == (op, table)


def test_query_info_summary() -> None:
    q = parse("SELECT users.id FROM users WHERE users.id = 5")
    assert (q.operation, q.table, q.summary) == ("SELECT", "users", "SELECT users")
    assert parse("COMMIT").summary == "COMMIT"
    assert "SELECT users" in repr(q)


def test_long_statements_are_cut_before_parsing() -> None:
    long = "SELECT * FROM t WHERE id IN (" + ", ".join(["1"] * 20000) + ")"
    q = parse(long)
    assert len(q.text) <= MAX_STATEMENT
    assert q.table == "t"


def test_cache_reuses_results_and_is_bounded() -> None:
    cache = QueryCache(max_entries=3)
    a = cache.get("SELECT 1")
    assert cache.get("SELECT 1") is a
    assert (cache.hits, cache.misses) == (1, 1)
    for i in range(3):
        cache.get(f"SELECT {i} FROM t{i}")
    assert len(cache) <= 3
