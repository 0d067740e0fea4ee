// node-postgres through pgsplit in transaction pooling with read/write splitting. Each scenario
// prints PASS or FAIL; the last line counts them. Environment: PGSPLIT_PORT (pgsplit).
import pg from "pg";
import copyStreams from "pg-copy-streams";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";

const config = {
  host: "127.0.0.1",
  port: Number(process.env.PGSPLIT_PORT),
  user: "app",
  password: "app",
  database: "app",
};
const tag = `node${process.pid}`;
const results = [];

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function scenario(name, fn) {
  try {
    await fn();
    results.push([name, null]);
    console.log(`PASS ${name}`);
  } catch (e) {
    results.push([name, e]);
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

async function withClient(fn) {
  const client = new pg.Client(config);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

await scenario("types_text_and_binary", () =>
  withClient(async (c) => {
    const r = await c.query(
      "select $1::int2 a, $2::int8 b, $3::numeric c, $4::text d, $5::bytea e, $6::bool f, $7::float8 g, " +
        "$8::date h, $9::timestamptz i, $10::uuid j, $11::jsonb k, $12::int4[] l, $13::int4 m",
      [7, "9007199254740993", "12.345", "héllo", Buffer.from([0, 1, 255]), true, 1.5, "2024-02-29",
        "2024-01-02T03:04:05Z", "00000000-0000-0000-0000-00000000002a", { a: [1, null] }, [1, 2, 3], null],
    );
    const row = r.rows[0];
    assert(row.a === 7 && row.b === "9007199254740993" && row.c === "12.345" && row.d === "héllo", JSON.stringify(row));
    assert(row.e.equals(Buffer.from([0, 1, 255])) && row.f === true && row.g === 1.5, "bytea/bool/float");
    assert(row.i.toISOString() === "2024-01-02T03:04:05.000Z" && row.j.endsWith("2a"), "timestamptz/uuid");
    assert(JSON.stringify(row.k) === '{"a":[1,null]}' && row.l.join() === "1,2,3" && row.m === null, "jsonb/array/null");
    const bin = await c.query({ text: "select $1::int4 + 1 as n", values: [41], binary: true });
    assert(bin.rows[0].n !== undefined, "binary result");
  }));

await scenario("named_prepared_statements_across_transactions", async () => {
  const work = (i) =>
    withClient(async (c) => {
      for (let n = 0; n < 100; n++) {
        await c.query("begin");
        const r = await c.query({ name: "double", text: "select $1::int8 * 2 as v", values: [n] });
        assert(Number(r.rows[0].v) === n * 2, `client ${i}: ${JSON.stringify(r.rows)}`);
        await c.query({ name: "concat", text: "select $1::text || $2::text as s", values: ["c", String(i)] });
        await c.query("commit");
      }
    });
  await Promise.all(Array.from({ length: 20 }, (_, i) => work(i)));
});

await scenario("error_then_rollback_and_reuse", () =>
  withClient(async (c) => {
    await c.query("begin");
    let failed = false;
    try {
      await c.query("select * from no_such_table_anywhere");
    } catch (e) {
      failed = e.code === "42P01";
    }
    assert(failed, "expected 42P01");
    await c.query("rollback");
    const r = await c.query("select 42 as n");
    assert(r.rows[0].n === 42, "reuse");
  }));

await scenario("copy_in_and_out", () =>
  withClient(async (c) => {
    const table = `${tag}_copy`;
    await c.query(`create table ${table} (id int, name text)`);
    try {
      const lines = Array.from({ length: 1000 }, (_, i) => `${i}\tn${i}\n`);
      await pipeline(Readable.from(lines), c.query(copyStreams.from(`copy ${table} from stdin`)));
      let text = "";
      const out = c.query(copyStreams.to(`copy (select * from ${table} order by id) to stdout`));
      for await (const chunk of out) text += chunk.toString();
      assert(text.split("\n").length === 1001 && text.startsWith("0\tn0\n"), `copied ${text.length} bytes`);
    } finally {
      await c.query(`drop table ${table}`);
    }
  }));

await scenario("listen_notify", async () => {
  const channel = `${tag}_chan`;
  await withClient(async (listener) => {
    const got = new Promise((resolve, reject) => {
      listener.on("notification", (n) => resolve(n.payload));
      setTimeout(() => reject(new Error("no notification within 5 s")), 5000);
    });
    await listener.query(`listen ${channel}`);
    await withClient((sender) => sender.query(`notify ${channel}, 'hello'`));
    assert((await got) === "hello", "payload");
  });
});

await scenario("query_timeout_cancels", () =>
  withClient(async (c) => {
    await c.query("set statement_timeout = '300ms'");
    let code = null;
    try {
      await c.query("select pg_sleep(10)");
    } catch (e) {
      code = e.code;
    }
    assert(code === "57014", `expected 57014, got ${code}`);
    const r = await c.query("select 1 as n");
    assert(r.rows[0].n === 1, "reuse after cancel");
  }));

await scenario("two_hundred_concurrent_connections", async () => {
  const pool = new pg.Pool({ ...config, max: 200 });
  try {
    const clients = await Promise.all(Array.from({ length: 200 }, () => pool.connect()));
    const rows = await Promise.all(clients.map((c) => c.query("select 1 as n")));
    clients.forEach((c) => c.release());
    assert(rows.every((r) => r.rows[0].n === 1), "every client answered");
  } finally {
    await pool.end();
  }
});

const failed = results.filter(([, e]) => e !== null).length;
console.log(`node drivers: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
