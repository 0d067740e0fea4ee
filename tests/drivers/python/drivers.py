"""Python drivers through pgsplit in transaction pooling: psycopg 3 (text and binary), asyncpg and
SQLAlchemy 2 on psycopg. Each scenario prints PASS or FAIL; the last line counts them.

Environment: PGSPLIT_HOST, PGSPLIT_PORT (pgsplit), PGSPLIT_USER, PGSPLIT_PASSWORD, PGSPLIT_DB.
"""

import asyncio
import contextlib
import datetime
import decimal
import faulthandler
import json
import os
import random
import select
import threading
import time
import traceback
import uuid

import asyncpg
import psycopg
import sqlalchemy
from psycopg import pq
from psycopg import sql as psql
from psycopg.types.json import Jsonb

HOST = os.environ.get("PGSPLIT_HOST", "127.0.0.1")
PORT = int(os.environ["PGSPLIT_PORT"])
USER = os.environ.get("PGSPLIT_USER", "app")
PASSWORD = os.environ.get("PGSPLIT_PASSWORD", "app")
DB = os.environ.get("PGSPLIT_DB", "app")
DSN = f"host={HOST} port={PORT} user={USER} password={PASSWORD} dbname={DB}"
TAG = f"py{os.getpid()}"

VALUES = [
    ("int2", 12), ("int4", -123456), ("int8", 2**40), ("numeric", decimal.Decimal("12345.6789")),
    ("text", "héllo ☃"), ("bytea", bytes(range(256))), ("bool", True), ("float8", 1.5),
    ("date", datetime.date(2024, 2, 29)),
    ("timestamptz", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)),
    ("interval", datetime.timedelta(days=3, seconds=7)), ("uuid", uuid.UUID(int=42)),
    ("jsonb", {"a": [1, 2, {"b": None}]}), ("int4[]", [1, 2, 3]), ("text[]", ["x", None, "z"]),
]

results = []


def scenario(fn):
    name = fn.__name__
    try:
        if asyncio.iscoroutinefunction(fn):
            asyncio.run(fn())
        else:
            fn()
        results.append((name, None))
        print(f"PASS {name}", flush=True)
    except Exception as e:  # every failure is reported, none stops the others
        results.append((name, e))
        print(f"FAIL {name}: {e!r}", flush=True)
        traceback.print_exc()
    return fn


def psycopg_types(binary):
    with psycopg.connect(DSN, autocommit=True) as conn:
        for typ, value in VALUES + [("int4", None)]:
            param = Jsonb(value) if typ == "jsonb" else value
            query = psql.SQL("select {}::" + typ).format(psql.Placeholder())
            got = conn.execute(query, [param], binary=binary).fetchone()[0]
            want = value
            if typ == "jsonb" and isinstance(got, str):
                got = json.loads(got)
            assert got == want, f"{typ}: sent {want!r}, got {got!r}"


@scenario
def psycopg_types_text():
    psycopg_types(binary=False)


@scenario
def psycopg_types_binary():
    psycopg_types(binary=True)


@scenario
def psycopg_prepared_across_transactions():
    """20 connections x 100 transactions of the same prepared statements, on 5 server connections."""
    errors = []

    def work(i):
        try:
            with psycopg.connect(DSN, prepare_threshold=0) as conn:
                for n in range(100):
                    with conn.transaction():
                        got = conn.execute("select %s::int8 * 2, %s::text", [n, f"c{i}"]).fetchone()
                        assert got == (n * 2, f"c{i}"), got
                        conn.execute("select %s::int4 + 1", [n])
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


@scenario
def psycopg_error_then_rollback_and_reuse():
    with psycopg.connect(DSN) as conn:
        try:
            conn.execute("select * from no_such_table_anywhere")
            raise AssertionError("the error did not come")
        except psycopg.errors.UndefinedTable:
            pass
        conn.rollback()
        assert conn.execute("select 41 + 1").fetchone()[0] == 42


@scenario
def psycopg_copy_in_and_out():
    table = f"{TAG}_copy"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"create table {table} (id int, name text)")
        try:
            with conn.cursor().copy(f"copy {table} from stdin") as copy:
                for i in range(1000):
                    copy.write_row((i, f"n{i}"))
            rows = []
            with conn.cursor().copy(f"copy (select * from {table} order by id) to stdout") as copy:
                for row in copy.rows():
                    rows.append(row)
            assert len(rows) == 1000 and rows[999] == ("999", "n999"), rows[-1:]
        finally:
            conn.execute(f"drop table {table}")


@scenario
def psycopg_cancel():
    with psycopg.connect(DSN, autocommit=True) as conn:
        # A cancel every 0.5 s until the sleep ends: on a busy machine one sent before the
        # statement reached the server would meet nothing, and the sleep would run its course.
        done = threading.Event()

        def cancel_until_done():
            while not done.wait(0.5):
                conn.cancel()

        canceller = threading.Thread(target=cancel_until_done)
        canceller.start()
        try:
            conn.execute("select pg_sleep(10)")
            raise AssertionError("not cancelled")
        except psycopg.errors.QueryCanceled:
            pass
        finally:
            done.set()
            canceller.join()
        assert conn.execute("select 1").fetchone()[0] == 1


@scenario
def psycopg_listen_notify():
    channel = f"{TAG}_chan"
    with psycopg.connect(DSN, autocommit=True) as listener, psycopg.connect(DSN, autocommit=True) as sender:
        listener.execute(f"listen {channel}")
        sender.execute(f"notify {channel}, 'hello'")
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        assert got == ["hello"], got


@scenario
def psycopg_200_concurrent_connections():
    errors = []
    barrier = threading.Barrier(200, timeout=30)

    def work():
        try:
            with psycopg.connect(DSN, autocommit=True) as conn:
                barrier.wait()
                assert conn.execute("select 1").fetchone()[0] == 1
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


# Pipeline mode: each round gets this long before it counts as a hang.
ROUND_TIMEOUT = 20


@contextlib.contextmanager
def hang_guard(seconds=ROUND_TIMEOUT):
    """Ends the whole suite, printing every thread's traceback, if the block takes longer: a hang
    must fail the run, not stall it (a cancelled pipeline can hang again while it unwinds)."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


async def pipeline_round(conn, table, i):
    async with conn.pipeline() as pipeline:
        read = await conn.execute("select %s::int + 1", [i])
        await conn.execute(f"insert into {table} values (%s, 'auto')", [i])
        own = await conn.execute(f"select count(*) from {table} where id = %s", [i])
        async with conn.transaction():
            await conn.execute(f"insert into {table} values (%s, 'tx')", [i])
            in_tx = await conn.execute(f"select count(*) from {table} where id = %s", [i])
        await pipeline.sync()
        after = await conn.execute(f"select count(*) from {table} where id = %s", [i])
    assert (await read.fetchone())[0] == i + 1
    assert (await own.fetchone())[0] == 1, "a read in the pipeline sees the write before it"
    assert (await in_tx.fetchone())[0] == 2
    assert (await after.fetchone())[0] == 2


@scenario
async def psycopg_pipeline_mixed_reads_writes_and_a_transaction():
    """200 rounds of `with conn.pipeline()` around reads, writes and a transaction."""
    table = f"{TAG}_pipe"
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f"create table {table} (id int, note text)")
        try:
            for i in range(200):
                with hang_guard():
                    await pipeline_round(conn, table, i)
            cur = await conn.execute(f"select count(*) from {table}")
            assert (await cur.fetchone())[0] == 400
        finally:
            await conn.execute(f"drop table {table}")


def libpq_results_until_sync(conn):
    """The results of one pipelined request up to its PIPELINE_SYNC; a hang fails the run."""
    out = []
    while True:
        conn.flush()
        while conn.is_busy():
            ready, _, _ = select.select([conn.socket], [], [], ROUND_TIMEOUT)
            assert ready, f"no answer within {ROUND_TIMEOUT} s after {out}"
            conn.consume_input()
        result = conn.get_result()
        if result is None:
            continue
        status = pq.ExecStatus(result.status)
        assert status != pq.ExecStatus.FATAL_ERROR, result.error_message
        out.append(status.name)
        if status == pq.ExecStatus.PIPELINE_SYNC:
            return out


@scenario
def libpq_pipeline_flush_after_sync_at_any_moment():
    """libpq's pipeline mode as psycopg 3 drives it: a request, Sync, then a Flush sent 0-10 ms
    later (while pgsplit may be releasing the server connection, or has released it), then the
    next request, after autocommit statements and after transactions that end in COMMIT or
    ROLLBACK. The next request must always answer."""
    table = f"{TAG}_flush"
    variants = {
        "select": [b"select 1"],
        "insert": [f"insert into {table} values (1)".encode()],
        "begin select commit": [b"begin", b"select 1", b"commit"],
        "begin insert commit": [b"begin", f"insert into {table} values (1)".encode(), b"commit"],
        "begin insert rollback": [b"begin", f"insert into {table} values (1)".encode(), b"rollback"],
    }

    def request(conn, text, flush_after=None):
        conn.send_query_params(text, None)
        conn.pipeline_sync()
        if flush_after is not None:
            time.sleep(flush_after)
            conn.send_flush_request()
        return libpq_results_until_sync(conn)

    with psycopg.connect(DSN, autocommit=True) as setup:
        setup.execute(f"create table {table} (id int)")
    try:
        draw = random.Random(1)
        for name, texts in variants.items():
            conn = pq.PGconn.connect(DSN.encode())
            assert conn.status == pq.ConnStatus.OK, conn.get_error_message()
            conn.enter_pipeline_mode()
            try:
                for trial in range(40):
                    with hang_guard(ROUND_TIMEOUT * 2):
                        for text in texts[:-1]:
                            request(conn, text)
                        request(conn, texts[-1], flush_after=draw.uniform(0, 0.01))
                        got = request(conn, b"select 2")
                    assert got == ["TUPLES_OK", "PIPELINE_SYNC"], f"{name}, trial {trial}: {got}"
            finally:
                conn.finish()
    finally:
        with psycopg.connect(DSN, autocommit=True) as setup:
            setup.execute(f"drop table {table}")


@scenario
async def psycopg_executemany_1000_rows_200_times():
    table = f"{TAG}_many"
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f"create table {table} (id int, note text)")
        try:
            rows = [(n, f"r{n}") for n in range(1000)]
            for i in range(200):
                with hang_guard():
                    await conn.cursor().executemany(f"insert into {table} values (%s, %s)", rows)
                    cur = await conn.execute(f"select count(*) from {table}")
                assert (await cur.fetchone())[0] == 1000 * (i + 1), f"round {i}"
        finally:
            await conn.execute(f"drop table {table}")


async def asyncpg_connect():
    return await asyncpg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB)


@scenario
async def asyncpg_types_and_prepared_statements():
    conn = await asyncpg_connect()
    try:
        for typ, value in VALUES:
            if typ == "jsonb":
                value = json.dumps(value)
            got = await conn.fetchval(f"select $1::{typ}", value)
            assert got == value, f"{typ}: sent {value!r}, got {got!r}"
    finally:
        await conn.close()


@scenario
async def asyncpg_many_clients_share_statements():
    async def work(i):
        conn = await asyncpg_connect()
        try:
            for n in range(100):
                async with conn.transaction():
                    assert await conn.fetchval("select $1::int8 * 2", n) == n * 2
                    assert await conn.fetchval("select $1::text || $2::text", "c", str(i)) == f"c{i}"
        finally:
            await conn.close()

    await asyncio.gather(*(work(i) for i in range(20)))


@scenario
async def asyncpg_error_rollback_copy_cancel_listen():
    conn = await asyncpg_connect()
    other = await asyncpg_connect()
    table = f"{TAG}_apg"
    try:
        try:
            async with conn.transaction():
                await conn.execute("select * from no_such_table_anywhere")
        except asyncpg.UndefinedTableError:
            pass
        assert await conn.fetchval("select 7") == 7
        await conn.execute(f"create table {table} (id int, name text)")
        await conn.copy_records_to_table(table, records=[(i, f"n{i}") for i in range(500)])
        assert await conn.fetchval(f"select count(*) from {table}") == 500
        try:
            await conn.fetch("select pg_sleep(10)", timeout=0.5)
            raise AssertionError("not cancelled")
        except asyncio.TimeoutError:
            pass
        assert await conn.fetchval("select 8") == 8
        got = asyncio.get_running_loop().create_future()
        await conn.add_listener(f"{table}_ch", lambda *args: got.done() or got.set_result(args[3]))
        await other.execute(f"notify {table}_ch, 'ping'")
        assert await asyncio.wait_for(got, 5) == "ping"
    finally:
        await conn.execute(f"drop table if exists {table}")
        await conn.close()
        await other.close()


@scenario
def sqlalchemy_on_psycopg():
    url = f"postgresql+psycopg://{USER}:{PASSWORD}@{HOST}:{PORT}/{DB}"
    engine = sqlalchemy.create_engine(url, pool_size=5)
    meta = sqlalchemy.MetaData()
    table = sqlalchemy.Table(
        f"{TAG}_sa", meta,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("name", sqlalchemy.String(50)),
    )
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, "name": f"n{i}"} for i in range(50)])
        try:
            with engine.begin() as conn:
                conn.execute(table.insert(), [{"id": 1000, "name": "rolled back"}])
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.select(table).where(table.c.id < 5).order_by(table.c.id)).all()
            assert [r.name for r in rows] == ["n0", "n1", "n2", "n3", "n4"], rows
            assert conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(table)).scalar() == 50
    finally:
        meta.drop_all(engine)
        engine.dispose()


failed = sum(1 for _, e in results if e is not None)
print(f"python drivers: {len(results) - failed} passed, {failed} failed", flush=True)
raise SystemExit(1 if failed else 0)
