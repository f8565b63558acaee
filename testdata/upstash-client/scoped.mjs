// Drives a running gateway through @upstash/redis with scoped tokens, as a
// service given a narrow token would. Prints "ok <check>" for each check and
// exits non-zero at the first one that misbehaves.
//
// Environment: UPSTASH_REDIS_REST_URL (the gateway's /redis), FULL_TOKEN
// (GATEWAY_TOKENS), READ_TOKEN (routes redis, access read), ORDERS_TOKEN
// (routes redis, keys orders:*).

import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";

const url = process.env.UPSTASH_REDIS_REST_URL;
const client = (token, options = {}) => new Redis({ url, token, enableAutoPipelining: false, ...options });
const full = client(process.env.FULL_TOKEN);
const reader = client(process.env.READ_TOKEN);
const orders = client(process.env.ORDERS_TOKEN);

async function refused(what, promise, scope) {
  await assert.rejects(promise, (err) => {
    assert.match(err.message, new RegExp(`^NOPERM this token's ${scope} scope refuses it`), what);
    return true;
  }, what);
}

async function check(name, fn) {
  await fn();
  console.log("ok", name);
}

await full.set("orders:1", "mine");
await full.set("sessions:1", "secret");

await check("a read-only token reads, and its writes are refused with NOPERM", async () => {
  assert.equal(await reader.get("sessions:1"), "secret");
  assert.deepEqual(await reader.mget("orders:1", "sessions:1"), ["mine", "secret"]);
  await refused("SET", reader.set("sessions:1", "stolen"), "access");
  await refused("DEL", reader.del("orders:1"), "access");
  assert.equal(await full.get("sessions:1"), "secret");
});

await check("a key-restricted token stays inside its keys", async () => {
  assert.equal(await orders.get("orders:1"), "mine");
  assert.equal(await orders.set("orders:2", { n: 1 }), "OK");
  assert.deepEqual(await orders.get("orders:2"), { n: 1 });
  await refused("GET outside", orders.get("sessions:1"), "keys");
  await refused("MGET across", orders.mget("orders:1", "sessions:1"), "keys");
  await refused("KEYS *", orders.keys("*"), "keys");
  assert.deepEqual((await orders.keys("orders:*")).sort(), ["orders:1", "orders:2"]);
  await refused("EVAL", orders.eval("return redis.call('GET', 'sessions:1')", [], []), "keys");
});

await check("a pipeline with one command outside is refused whole, and runs nothing", async () => {
  const p = orders.pipeline();
  p.set("orders:3", "x");
  p.get("sessions:1");
  await refused("pipeline", p.exec(), "keys");
  assert.equal(await full.exists("orders:3"), 0);
  const m = orders.multi();
  m.set("orders:3", "x");
  m.del("sessions:1");
  await refused("multi", m.exec(), "keys");
  assert.equal(await full.exists("orders:3"), 0);
  assert.equal(await full.get("sessions:1"), "secret");
});

// Auto-pipelining batches concurrent commands into one pipeline, which a
// refused command refuses whole: the commands batched with it fail too.
await check("with auto-pipelining, a refused command fails its batch", async () => {
  const auto = client(process.env.ORDERS_TOKEN, { enableAutoPipelining: true });
  const results = await Promise.allSettled([auto.get("orders:1"), auto.get("sessions:1")]);
  assert.equal(results[1].status, "rejected");
  assert.match(results[1].reason.message, /NOPERM/);
  assert.equal(results[0].status, "rejected", "the allowed command batched with a refused one");
  assert.equal(await auto.get("orders:1"), "mine", "the same command alone");
});

console.log("done");
process.exit(0);
