// Drives a running gateway through the official Upstash clients, as their
// users would. Prints "ok <operation>" for each operation exercised and exits
// non-zero at the first one that misbehaves.
//
// Environment: UPSTASH_REDIS_REST_URL (the gateway's /redis), UPSTASH_REDIS_REST_TOKEN,
// GATEWAY_URL (for /metrics), UPSTASH_TEST_SCOPE=all | single-key (Redis
// Cluster: only operations whose keys share one slot).

import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";
import { Ratelimit } from "@upstash/ratelimit";
import { Lock } from "@upstash/lock";

const url = process.env.UPSTASH_REDIS_REST_URL;
const token = process.env.UPSTASH_REDIS_REST_TOKEN;
const gateway = process.env.GATEWAY_URL;
const singleKey = (process.env.UPSTASH_TEST_SCOPE ?? "all") === "single-key";

// The default client: base64 responses, auto-pipelining on.
const redis = new Redis({ url, token });
// One command per request, POST /redis.
const direct = new Redis({ url, token, enableAutoPipelining: false });
// Strings exactly as stored, for the encoding checks.
const raw = new Redis({ url, token, enableAutoPipelining: false, automaticDeserialization: false });

const run = Date.now().toString(36);
const key = (name) => `upstash-test:${run}:${name}`;

async function step(name, fn, { multiKey = false } = {}) {
  if (multiKey && singleKey) {
    console.log("skip", name, "(keys in several slots)");
    return;
  }
  await fn();
  console.log("ok", name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond) {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function metric(line) {
  const text = await (await fetch(`${gateway}/metrics`)).text();
  const found = text.split("\n").find((l) => l.startsWith(line + " "));
  return found ? Number(found.split(" ")[1]) : 0;
}

await step("strings: set, get, del, setnx, append, strlen, getdel", async () => {
  assert.equal(await redis.set(key("s"), "hello"), "OK");
  assert.equal(await redis.get(key("s")), "hello");
  assert.equal(await direct.get(key("s")), "hello");
  assert.equal(await redis.setnx(key("s"), "other"), 0);
  assert.equal(await redis.append(key("s"), " world"), 11);
  assert.equal(await redis.strlen(key("s")), 11);
  assert.equal(await redis.getdel(key("s")), "hello world");
  assert.equal(await redis.get(key("s")), null);
  assert.equal(await redis.del(key("s")), 0);
});

await step("strings: mset, mget", async () => {
  assert.equal(await redis.mset({ [key("m1")]: "a", [key("m2")]: "b" }), "OK");
  assert.deepEqual(await redis.mget(key("m1"), key("m2"), key("none")), ["a", "b", null]);
}, { multiKey: true });

await step("incr, incrby, decr", async () => {
  assert.equal(await redis.incr(key("n")), 1);
  assert.equal(await redis.incrby(key("n"), 10), 11);
  assert.equal(await redis.decr(key("n")), 10);
  assert.equal(await direct.incr(key("n")), 11);
});

await step("expire, ttl, pexpire, persist", async () => {
  await redis.set(key("e"), "v");
  assert.equal(await redis.ttl(key("e")), -1);
  assert.equal(await redis.expire(key("e"), 100), 1);
  const ttl = await redis.ttl(key("e"));
  assert.ok(ttl > 95 && ttl <= 100, `ttl ${ttl}`);
  assert.equal(await redis.pexpire(key("e"), 50_000), 1);
  const pttl = await redis.pttl(key("e"));
  assert.ok(pttl > 45_000 && pttl <= 50_000, `pttl ${pttl}`);
  assert.equal(await redis.persist(key("e")), 1);
  assert.equal(await redis.ttl(key("e")), -1);
  await redis.set(key("ex"), "v", { ex: 60 });
  assert.ok((await redis.ttl(key("ex"))) > 55);
});

await step("JSON values", async () => {
  const doc = { id: 42, name: "Ada", tags: ["a", "b"], nested: { ok: true, n: null }, price: 2.5 };
  await redis.set(key("json"), doc);
  assert.deepEqual(await redis.get(key("json")), doc);
  assert.equal(typeof (await raw.get(key("json"))), "string");
});

await step("hashes: hset, hget, hgetall as an object, hincrby, hdel, hkeys", async () => {
  assert.equal(await redis.hset(key("h"), { name: "Ada", visits: 1, profile: { lang: "en" } }), 3);
  assert.equal(await redis.hget(key("h"), "name"), "Ada");
  assert.deepEqual(await redis.hgetall(key("h")), { name: "Ada", visits: 1, profile: { lang: "en" } });
  assert.equal(await redis.hincrby(key("h"), "visits", 2), 3);
  assert.equal(await redis.hdel(key("h"), "profile"), 1);
  assert.deepEqual((await redis.hkeys(key("h"))).sort(), ["name", "visits"]);
  assert.equal(await redis.hgetall(key("nohash")), null);
});

await step("sorted sets with scores: zadd, zrange withScores, zscore, zincrby, zrank, zcard", async () => {
  assert.equal(await redis.zadd(key("z"), { score: 1, member: "a" }, { score: 2.5, member: "b" }), 2);
  assert.deepEqual(await redis.zrange(key("z"), 0, -1, { withScores: true }), ["a", 1, "b", 2.5]);
  assert.equal(await redis.zscore(key("z"), "b"), 2.5);
  assert.equal(await redis.zincrby(key("z"), 10, "a"), 11);
  assert.equal(await redis.zrank(key("z"), "a"), 1);
  assert.equal(await redis.zcard(key("z")), 2);
  assert.deepEqual(await redis.zrange(key("z"), 0, -1), ["b", "a"]);
});

await step("lists: rpush, lpush, lrange, lpop, llen, lindex", async () => {
  assert.equal(await redis.rpush(key("l"), "b", "c"), 2);
  assert.equal(await redis.lpush(key("l"), "a"), 3);
  assert.deepEqual(await redis.lrange(key("l"), 0, -1), ["a", "b", "c"]);
  assert.equal(await redis.lpop(key("l")), "a");
  assert.equal(await redis.llen(key("l")), 2);
  assert.equal(await redis.lindex(key("l"), 1), "c");
});

await step("sets: sadd, smembers, sismember, scard, srem", async () => {
  assert.equal(await redis.sadd(key("set"), "x", "y", "z"), 3);
  assert.deepEqual((await redis.smembers(key("set"))).sort(), ["x", "y", "z"]);
  assert.equal(await redis.sismember(key("set"), "y"), 1);
  assert.equal(await redis.scard(key("set")), 3);
  assert.equal(await redis.srem(key("set"), "x"), 1);
});

await step("keys, scan, exists, type, dbsize", async () => {
  assert.deepEqual((await redis.keys(key("l*"))).sort(), [key("l")]);
  const [, found] = await redis.scan(0, { match: key("set"), count: 1000 });
  assert.ok(Array.isArray(found));
  assert.equal(await redis.exists(key("l")), 1);
  assert.equal(await redis.type(key("z")), "zset");
  assert.ok((await redis.dbsize()) > 0);
}, { multiKey: true });

await step("scripts: eval", async () => {
  assert.equal(await redis.eval("return ARGV[1] .. KEYS[1]", [key("k")], ["v:"]), "v:" + key("k"));
  assert.equal(await redis.eval("return redis.call('INCR', KEYS[1])", [key("sn")], []), 1);
});

await step("scripts: evalsha with the NOSCRIPT fallback (createScript)", async () => {
  const script = redis.createScript(`return redis.call('INCRBY', KEYS[1], ARGV[1]) -- ${run}`);
  await assert.rejects(script.evalsha([key("sc")], ["1"]), /NOSCRIPT/);
  assert.equal(await script.exec([key("sc")], ["1"]), 1); // EVALSHA, NOSCRIPT, then EVAL
  assert.equal(await script.evalsha([key("sc")], ["2"]), 3);
  assert.equal(await script.exec([key("sc")], ["3"]), 6);
});

await step("pipeline()", async () => {
  const p = direct.pipeline();
  p.set(key("p"), 1).incr(key("p")).get(key("p")).lpush(key("p"), "x").hset(key("ph"), { f: "v" });
  const res = await p.exec({ keepErrors: true });
  assert.deepEqual(res.map((r) => r.result ?? null), [ "OK", 2, 2, null, 1 ]);
  assert.match(res[3].error, /WRONGTYPE/);
  assert.deepEqual(await direct.pipeline().get(key("p")).exec(), [2]);
});

await step("multi()", async () => {
  const tx = direct.multi();
  tx.set(key("tx"), "1").incr(key("tx")).incrby(key("tx"), 5);
  assert.deepEqual(await tx.exec(), ["OK", 2, 7]);
  // A command refused by the gateway discards the whole transaction.
  const bad = direct.multi();
  bad.set(key("tx"), "changed").flushdb();
  await assert.rejects(bad.exec(), /EXECABORT.*flushdb/);
  assert.equal(await direct.get(key("tx")), 7);
});

await step("multi() across keys", async () => {
  const tx = direct.multi();
  tx.set(key("tx1"), "a").set(key("tx2"), "b").mget(key("tx1"), key("tx2"));
  assert.deepEqual(await tx.exec(), ["OK", "OK", ["a", "b"]]);
}, { multiKey: true });

await step("auto-pipelining under concurrency", async () => {
  const before = redis.pipelineCounter;
  const n = 300;
  const writes = await Promise.all(Array.from({ length: n }, (_, i) => redis.set(key(`ap${i}`), i)));
  assert.ok(writes.every((w) => w === "OK"));
  const [reads, incrs] = await Promise.all([
    Promise.all(Array.from({ length: n }, (_, i) => redis.get(key(`ap${i}`)))),
    Promise.all(Array.from({ length: n }, () => redis.incr(key("apc")))),
  ]);
  assert.deepEqual(reads, Array.from({ length: n }, (_, i) => i));
  assert.deepEqual(incrs.slice().sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1));
  const batches = redis.pipelineCounter - before;
  assert.ok(batches >= 1 && batches < 20, `${3 * n} commands went in ${batches} pipelines`);
});

await step("base64 round trips of non-ASCII and binary-ish strings", async () => {
  const values = [
    "héllo wörld", "世界", "🙂 emoji", "OK", "YmFy", "\u0000\u0001\u0002 control \t\r\n", "ÿþ\u00ad", "a\\\"quoted\"", "",
  ];
  for (const [i, v] of values.entries()) {
    await raw.set(key(`b64-${i}`), v);
    assert.equal(await raw.get(key(`b64-${i}`)), v, `value ${JSON.stringify(v)}`);
  }
  // The same through a pipeline, and nested in an array reply.
  const p = raw.pipeline();
  values.forEach((v, i) => p.get(key(`b64-${i}`)));
  assert.deepEqual(await p.exec(), values);
  await raw.rpush(key("b64-list"), ...values.filter((v) => v !== ""));
  assert.deepEqual(await raw.lrange(key("b64-list"), 0, -1), values.filter((v) => v !== ""));
});

await step("refused commands answer with an error naming them", async () => {
  await assert.rejects(direct.flushdb(), /flushdb/);
  await assert.rejects(direct.exec(["CONFIG", "GET", "maxmemory"]), /config/);
});

await step("subscribe and publish", async () => {
  const channel = key("chan");
  const sub = redis.subscribe([channel]);
  const messages = [];
  let subscribed = 0;
  sub.on("subscribe", (n) => { subscribed = n; });
  sub.on("message", (m) => messages.push(m));
  await waitFor("the subscription", () => subscribed === 1);
  assert.equal(await redis.publish(channel, { hello: "wörld", n: 1 }), 1);
  assert.equal(await redis.publish(channel, "plain text"), 1);
  await waitFor("two messages", () => messages.length === 2);
  assert.deepEqual(messages[0], { channel, message: { hello: "wörld", n: 1 } });
  assert.deepEqual(messages[1], { channel, message: "plain text" });
  await sub.unsubscribe();
  // Aborting the stream releases the Redis subscription.
  await waitFor("the subscription to be released", async () => {
    const [, count] = await direct.exec(["PUBSUB", "NUMSUB", channel]);
    return count === 0;
  });
});

await step("psubscribe and publish", async () => {
  const pattern = key("pchan:*");
  const sub = redis.psubscribe([pattern]);
  const messages = [];
  let subscribed = 0;
  sub.on("psubscribe", (n) => { subscribed = n; });
  sub.on("pmessage", (m) => messages.push(m));
  await waitFor("the subscription", () => subscribed === 1);
  // On Redis Cluster the pattern's subscription lives on the node of the
  // pattern's slot: it gets the message, but the channel's node counts only
  // its own subscribers.
  assert.equal(await redis.publish(key("pchan:eu"), { order: 7 }), singleKey ? 0 : 1);
  await waitFor("a message", () => messages.length === 1);
  assert.deepEqual(messages[0], { pattern, channel: key("pchan:eu"), message: { order: 7 } });
  await sub.unsubscribe();
});

const noscripts = `redis_gateway_redis_command_errors_total{command="evalsha"}`;

for (const [name, limiter, multiKey] of [
  ["sliding window", Ratelimit.slidingWindow(3, "1000 s"), true],
  ["token bucket", Ratelimit.tokenBucket(1, "1000 s", 3), false],
  ["fixed window", Ratelimit.fixedWindow(3, "1000 s"), false],
]) {
  await step(`@upstash/ratelimit ${name} (scripts with #!lua flags=allow-key-locking)`, async () => {
    const rl = new Ratelimit({ redis, limiter, prefix: key(`rl-${name.replace(" ", "-")}`), ephemeralCache: false, analytics: false });
    const first = [];
    for (let i = 0; i < 4; i++) first.push(await rl.limit("user-1"));
    assert.deepEqual(first.map((r) => r.success), [true, true, true, false]);
    assert.deepEqual(first.map((r) => r.remaining), [2, 1, 0, 0]);
    assert.equal((await rl.getRemaining("user-1")).remaining, 0);
    // Both scripts are known by now: the client's EVALSHA with the SHA of the
    // flagged text must not meet NOSCRIPT again. (On Redis Cluster each
    // primary learns a script from its own first EVAL.)
    const before = await metric(noscripts);
    const other = [];
    for (let i = 0; i < 3; i++) other.push((await rl.limit("user-2")).success);
    assert.deepEqual(other, [true, true, true]);
    assert.equal((await rl.getRemaining("user-2")).remaining, 0);
    if (!singleKey) {
      assert.equal(await metric(noscripts), before, "EVALSHA failed again after the scripts were loaded");
      // The reset script SCANs one node's keys.
      await rl.resetUsedTokens("user-1");
      assert.equal((await rl.limit("user-1")).success, true);
    }
  }, { multiKey });
}

await step("@upstash/lock acquire, contention, extend, release", async () => {
  const id = key("lock");
  const lock = new Lock({ id, lease: 5000, redis });
  assert.equal(await lock.acquire(), true);
  assert.equal(await lock.getStatus(), "ACQUIRED");
  const rival = new Lock({ id, lease: 5000, redis, retry: { attempts: 2, delay: 20 } });
  assert.equal(await rival.acquire(), false);
  assert.equal(await lock.extend(2000), true);
  const ttl = await redis.ttl(id);
  assert.ok(ttl > 5 && ttl <= 7, `ttl after extend ${ttl}`);
  assert.equal(await lock.release(), true);
  assert.equal(await lock.getStatus(), "FREE");
  assert.equal(await rival.acquire(), true);
  assert.equal(await rival.release(), true);
  assert.equal(await lock.release(), false);
});

await step("read-your-writes: the sync token changes after every write, pipeline and script call", async () => {
  // readYourWrites is on by default: the client sends the last token it saw
  // and keeps the one each answer carries.
  const c = new Redis({ url, token, enableAutoPipelining: false });
  const k = key("ryw");
  const seen = [];
  const next = async (what, fn, changes = true) => {
    const before = c.readYourWritesSyncToken;
    await fn();
    const after = c.readYourWritesSyncToken;
    if (changes) {
      assert.notEqual(after, before, `${what}: the token did not change`);
      assert.ok(/^[0-9]+$/.test(after), `${what}: token ${after}`);
      if (seen.length > 0) assert.ok(BigInt(after) > BigInt(seen.at(-1)), `${what}: token ${after} after ${seen.at(-1)}`);
      seen.push(after);
    } else {
      assert.equal(after, before, `${what}: a read changed the token`);
    }
  };
  await next("set", () => c.set(k, 1));
  await next("get", () => c.get(k), false);
  await next("incr", () => c.incr(k));
  await next("pipeline", () => c.pipeline().incr(k).get(k).exec());
  await next("multi", () => c.multi().incr(k).incr(k).exec());
  await next("eval", () => c.eval("return redis.call('INCR', KEYS[1])", [k], []));
  await next("script", () => c.createScript("return redis.call('INCR', KEYS[1])").exec([k], []));
  await next("del", () => c.del(k));
});

console.log("done");
process.exit(0);
