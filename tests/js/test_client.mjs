// Drive a running server through the official chromadb JS client (3.x), the
// JS counterpart of tests/python/test_client.py (a subset of its cases):
//
//   VDB_HOST=127.0.0.1 VDB_PORT=8000 VDB_ADD_EXISTING=reject node --test test_client.mjs
//
// scripts/test-js starts a throwaway cluster and runs this. Embeddings are
// always explicit and exact in f32: the JS client computes embeddings on the
// client side, and its default embedding function lives in a separate package
// (@chroma-core/default-embed) that downloads an ONNX model from Hugging Face;
// collections are created with `embeddingFunction: null` (no default).
// Every test makes its own collections (unique names) and deletes them.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, test } from "node:test";

import {
  AdminClient,
  ChromaClient,
  ChromaClientError,
  ChromaNotFoundError,
  ChromaUniqueError,
} from "chromadb";

const HOST = process.env.VDB_HOST ?? "127.0.0.1";
const PORT = Number(process.env.VDB_PORT ?? "8000");
const ADD_EXISTING = process.env.VDB_ADD_EXISTING ?? "reject";
assert.ok(["reject", "skip"].includes(ADD_EXISTING), "VDB_ADD_EXISTING must be reject or skip");

const client = new ChromaClient({ host: HOST, port: PORT });
const created = [];

function uniqueName(tag) {
  return `js-${tag}-${randomUUID().slice(0, 8)}`;
}

async function makeCollection(tag, args = {}) {
  const name = uniqueName(tag);
  const col = await client.createCollection({ name, embeddingFunction: null, ...args });
  created.push(name);
  return col;
}

after(async () => {
  for (const name of created) {
    try {
      await client.deleteCollection({ name });
    } catch (e) {
      if (!(e instanceof ChromaNotFoundError)) throw e; // renamed or deleted by the test
    }
  }
});

// A fixed data set for filter tests (test_client.py's); 2-d embeddings,
// exact in f32. r6 has neither metadata nor document: the JS client refuses a
// null document in a list, so it is added on its own.
const FILTER = {
  ids: ["r1", "r2", "r3", "r4", "r5"],
  embeddings: [[1, 0], [2, 0], [3, 0], [4, 0], [5, 0]],
  metadatas: [
    { color: "red", n: 1, score: 0.5, ok: true },
    { color: "blue", n: 2, score: 1.5, ok: false },
    { color: "red", n: 3, score: 2.5, ok: true },
    { color: "green", n: 4, score: 3.5, ok: false },
    { n: 5, score: 4.5 },
  ],
  documents: [
    "the quick brown fox",
    "jumps over the lazy dog",
    "Quick thinking",
    "a dog named fox",
    "nothing here 123",
  ],
};
const FILTER_IDS = [...FILTER.ids, "r6"];

async function filterCollection(tag) {
  const col = await makeCollection(tag);
  await col.add(FILTER);
  await col.add({ ids: ["r6"], embeddings: [[6, 0]] });
  return col;
}

const sorted = (ids) => [...ids].sort();

// ---------------------------------------------------------------- system

test("heartbeat and version", async () => {
  const beat = await client.heartbeat();
  assert.equal(typeof beat, "number");
  assert.ok(beat > 0);
  const version = await client.version();
  assert.match(version, /^\d+\.\d+\.\d+/);
  assert.ok((await client.getMaxBatchSize()) > 0);
});

// ---------------------------------------------------------------- collections

test("create, get, list, count and delete a collection", async () => {
  const before = await client.countCollections();
  const col = await makeCollection("crud", { metadata: { owner: "js", level: 3 } });
  assert.equal(await client.countCollections(), before + 1);
  const got = await client.getCollection({ name: col.name });
  assert.equal(got.id, col.id);
  assert.deepEqual(got.metadata, { owner: "js", level: 3 });
  const byId = await client.getCollectionById(col.id);
  assert.equal(byId.name, col.name);
  const names = (await client.listCollections({ limit: 1000 })).map((c) => c.name);
  assert.ok(names.includes(col.name));
  await client.deleteCollection({ name: col.name });
  assert.equal(await client.countCollections(), before);
  await assert.rejects(client.getCollection({ name: col.name }), ChromaNotFoundError);
});

test("list collections with limit and offset", async () => {
  for (let i = 0; i < 3; i++) await makeCollection("page");
  const all = await client.listCollections({ limit: 1000 });
  const first = await client.listCollections({ limit: 2 });
  assert.equal(first.length, 2);
  const rest = await client.listCollections({ offset: 2, limit: 1000 });
  assert.deepEqual(
    [...first, ...rest].map((c) => c.name),
    all.map((c) => c.name),
  );
});

test("create of an existing name fails; getOrCreate returns the existing one", async () => {
  const col = await makeCollection("exists", { metadata: { v: 1 } });
  await assert.rejects(
    client.createCollection({ name: col.name, embeddingFunction: null }),
    ChromaUniqueError,
  );
  const again = await client.getOrCreateCollection({ name: col.name, embeddingFunction: null });
  assert.equal(again.id, col.id);
  assert.deepEqual(again.metadata, { v: 1 });
});

test("an invalid collection name is a client error", async () => {
  await assert.rejects(
    client.createCollection({ name: "x", embeddingFunction: null }),
    ChromaClientError,
  );
});

test("modify name and metadata", async () => {
  const col = await makeCollection("modify", { metadata: { a: 1 } });
  const old = col.name;
  const renamed = uniqueName("renamed");
  created.push(renamed);
  await col.modify({ name: renamed, metadata: { b: "two" } });
  assert.equal(col.name, renamed);
  const got = await client.getCollection({ name: renamed });
  assert.equal(got.id, col.id);
  assert.deepEqual(got.metadata, { b: "two" });
  await assert.rejects(client.getCollection({ name: old }), ChromaNotFoundError);
});

test("distance space from the configuration", async () => {
  const col = await makeCollection("space", { configuration: { hnsw: { space: "ip" } } });
  await col.add({ ids: ["a", "b"], embeddings: [[1, 0], [0, 2]] });
  const res = await col.query({ queryEmbeddings: [[0, 1]], nResults: 2, include: ["distances"] });
  assert.deepEqual(res.ids, [["b", "a"]]);
  assert.deepEqual(res.distances, [[-1, 1]]); // inner product distance: 1 - dot
});

test("tenants and databases isolate collections", async () => {
  const admin = new AdminClient({ host: HOST, port: PORT });
  const tenant = uniqueName("tenant");
  await admin.createTenant({ name: tenant });
  await admin.createDatabase({ name: "db1", tenant });
  const other = new ChromaClient({ host: HOST, port: PORT, tenant, database: "db1" });
  const name = uniqueName("iso");
  const col = await other.createCollection({ name, embeddingFunction: null });
  await col.add({ ids: ["x"], embeddings: [[1, 2]] });
  await assert.rejects(client.getCollection({ name }), ChromaNotFoundError);
  assert.equal(await (await other.getCollection({ name })).count(), 1);
  await other.deleteCollection({ name });
});

// ---------------------------------------------------------------- records

// A client-side embedding function of the user's own (no config: the client
// sends it as "legacy"), used for documents-only adds and queryTexts.
class LengthEmbedding {
  async generate(texts) {
    return texts.map((t) => [t.length, (t.match(/[aeiou]/g) ?? []).length]);
  }
}

test("a custom embedding function embeds documents and query texts", async () => {
  const name = uniqueName("customef");
  const col = await client.createCollection({ name, embeddingFunction: new LengthEmbedding() });
  created.push(name);
  await col.add({ ids: ["short", "long"], documents: ["abc", "a much longer text"] });
  const got = await col.get({ include: ["embeddings"], ids: ["short"] });
  assert.deepEqual(got.embeddings, [[3, 1]]);
  const res = await col.query({ queryTexts: ["xyz"], nResults: 1 });
  assert.deepEqual(res.ids, [["short"]]);
});

test("add, count and get round trip", async () => {
  const col = await makeCollection("roundtrip");
  await col.add({
    ids: ["a", "b"],
    embeddings: [[0.5, 1.5, -2], [3, 4, 5]],
    metadatas: [{ k: "v", i: 7, f: 0.5, t: true }, { k: "w" }],
    documents: ["doc a", "doc b"],
    uris: ["s3://a", "s3://b"],
  });
  await col.add({ ids: ["c"], embeddings: [[0, 0, 0.25]], uris: ["file:///c"] });
  assert.equal(await col.count(), 3);
  const got = await col.get({
    ids: ["a", "b", "c"],
    include: ["embeddings", "metadatas", "documents", "uris"],
  });
  const byId = Object.fromEntries(got.ids.map((id, i) => [id, i]));
  assert.deepEqual(got.embeddings[byId.a], [0.5, 1.5, -2]);
  assert.deepEqual(got.embeddings[byId.b], [3, 4, 5]);
  assert.deepEqual(got.metadatas[byId.a], { k: "v", i: 7, f: 0.5, t: true });
  assert.equal(got.metadatas[byId.c], null);
  assert.equal(got.documents[byId.b], "doc b");
  assert.equal(got.documents[byId.c], null);
  assert.equal(got.uris[byId.a], "s3://a");
  assert.equal(got.uris[byId.c], "file:///c");
});

test("the collection's dimension is enforced", async () => {
  const col = await makeCollection("dim");
  await col.add({ ids: ["a"], embeddings: [[1, 2, 3]] });
  await assert.rejects(col.add({ ids: ["b"], embeddings: [[1, 2]] }), ChromaClientError);
  assert.equal(await col.count(), 1);
});

test("add of an existing id", async () => {
  const col = await makeCollection("existing");
  await col.add({ ids: ["a"], embeddings: [[1, 1]], documents: ["first"] });
  const again = col.add({ ids: ["a", "b"], embeddings: [[2, 2], [3, 3]], documents: ["second", "b"] });
  if (ADD_EXISTING === "reject") {
    await assert.rejects(again, ChromaUniqueError);
    assert.equal(await col.count(), 1);
  } else {
    await again;
    assert.equal(await col.count(), 2);
  }
  const got = await col.get({ ids: ["a"], include: ["documents"] });
  assert.deepEqual(got.documents, ["first"]);
});

test("reads of an empty collection", async () => {
  const col = await makeCollection("empty");
  assert.equal(await col.count(), 0);
  assert.deepEqual((await col.get()).ids, []);
  assert.deepEqual((await col.peek({})).ids, []);
});

test("get with include lists", async () => {
  const col = await filterCollection("include");
  const got = await col.get({ ids: ["r1"], include: ["documents"] });
  assert.deepEqual(got.ids, ["r1"]);
  assert.deepEqual(got.documents, ["the quick brown fox"]);
  // What was not asked for is not sent (the client shows it as an empty list).
  assert.deepEqual(got.embeddings ?? [], []);
  assert.deepEqual(got.metadatas ?? [], []);
});

test("peek and limit/offset paging", async () => {
  const col = await filterCollection("paging");
  assert.equal((await col.peek({ limit: 4 })).ids.length, 4);
  const pages = [];
  for (let offset = 0; offset < 6; offset += 2) {
    pages.push(...(await col.get({ limit: 2, offset })).ids);
  }
  assert.deepEqual(sorted(pages), FILTER_IDS);
  assert.equal(new Set(pages).size, 6);
});

test("get with where filters", async () => {
  const col = await filterCollection("where");
  const cases = [
    [{ color: "red" }, ["r1", "r3"]],
    [{ n: { $gt: 2 } }, ["r3", "r4", "r5"]],
    [{ nonexistent: "x" }, []],
    [{ score: { $lte: 1.5 } }, ["r1", "r2"]],
    [{ ok: false }, ["r2", "r4"]],
    [{ color: { $in: ["blue", "green"] } }, ["r2", "r4"]],
    [{ color: { $nin: ["red", "green"] } }, ["r2", "r5", "r6"]], // a missing key is not in the list
    [{ $and: [{ color: "red" }, { n: { $gte: 2 } }] }, ["r3"]],
    [{ $or: [{ color: "blue" }, { n: 5 }] }, ["r2", "r5"]],
  ];
  for (const [where, expected] of cases) {
    const got = await col.get({ where, include: [] });
    assert.deepEqual(sorted(got.ids), expected, JSON.stringify(where));
  }
});

test("get with whereDocument, and with where together", async () => {
  const col = await filterCollection("wheredoc");
  assert.deepEqual(sorted((await col.get({ whereDocument: { $contains: "fox" } })).ids), ["r1", "r4"]);
  assert.deepEqual(
    sorted((await col.get({ whereDocument: { $not_contains: "fox" } })).ids),
    ["r2", "r3", "r5", "r6"], // no document matches $not_contains (Chroma 1.5.9)
  );
  const both = await col.get({ where: { color: "red" }, whereDocument: { $contains: "fox" } });
  assert.deepEqual(both.ids, ["r1"]);
});

test("an invalid where is rejected", async () => {
  const col = await filterCollection("badwhere");
  await assert.rejects(col.get({ where: { n: { $bogus: 1 } } }));
});

test("query: distances, order, filters, ids and nResults", async () => {
  const col = await filterCollection("query");
  const res = await col.query({
    queryEmbeddings: [[0, 0], [6, 0]],
    nResults: 3,
    include: ["distances", "documents", "metadatas"],
  });
  assert.deepEqual(res.ids, [["r1", "r2", "r3"], ["r6", "r5", "r4"]]);
  assert.deepEqual(res.distances, [[1, 4, 9], [0, 1, 4]]); // squared l2
  assert.deepEqual(res.documents[0], FILTER.documents.slice(0, 3));
  const filtered = await col.query({
    queryEmbeddings: [[0, 0]],
    nResults: 10,
    where: { color: "red" },
    whereDocument: { $contains: "Quick" },
  });
  assert.deepEqual(filtered.ids, [["r3"]]);
  const restricted = await col.query({ queryEmbeddings: [[0, 0]], nResults: 10, ids: ["r5", "r2"] });
  assert.deepEqual(restricted.ids, [["r2", "r5"]]);
  const all = await col.query({ queryEmbeddings: [[0, 0]], nResults: 100 });
  assert.equal(all.ids[0].length, 6);
});

test("query of many records gives the exact top k", async () => {
  const col = await makeCollection("topk");
  const n = 300;
  const ids = Array.from({ length: n }, (_, i) => `id-${i}`);
  const embeddings = ids.map((_, i) => [i, (i * 7) % 13]);
  await col.add({ ids, embeddings });
  const q = [150, 3];
  const expected = embeddings
    .map((e, i) => [(e[0] - q[0]) ** 2 + (e[1] - q[1]) ** 2, ids[i]])
    .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1))
    .slice(0, 10);
  const res = await col.query({ queryEmbeddings: [q], nResults: 10, include: ["distances"] });
  assert.deepEqual(res.distances[0], expected.map((e) => e[0]));
  assert.deepEqual(sorted(res.ids[0]), sorted(expected.map((e) => e[1])));
});

test("update changes only what it names", async () => {
  const col = await makeCollection("update");
  await col.add({ ids: ["a", "b"], embeddings: [[1, 1], [2, 2]], metadatas: [{ x: 1 }, { x: 2 }], documents: ["A", "B"] });
  // The JS client embeds documents sent without embeddings, so the same
  // embedding goes with the new document.
  await col.update({ ids: ["a"], documents: ["A2"], embeddings: [[1, 1]] });
  await col.update({ ids: ["b"], embeddings: [[5, 5]], metadatas: [{ y: "new" }] });
  const got = await col.get({ ids: ["a", "b"], include: ["embeddings", "metadatas", "documents"] });
  const i = got.ids.indexOf("a");
  const j = got.ids.indexOf("b");
  assert.equal(got.documents[i], "A2");
  assert.deepEqual(got.embeddings[i], [1, 1]);
  assert.deepEqual(got.metadatas[i], { x: 1 });
  assert.deepEqual(got.embeddings[j], [5, 5]);
  assert.equal(got.documents[j], "B");
  assert.deepEqual(got.metadatas[j], { x: 2, y: "new" });
});

test("upsert inserts and replaces", async () => {
  const col = await makeCollection("upsert");
  await col.add({ ids: ["a"], embeddings: [[1, 1]], documents: ["old"] });
  await col.upsert({ ids: ["a", "b"], embeddings: [[9, 9], [2, 2]], documents: ["new", "b"] });
  assert.equal(await col.count(), 2);
  const got = await col.get({ ids: ["a"], include: ["embeddings", "documents"] });
  assert.deepEqual(got.embeddings, [[9, 9]]);
  assert.deepEqual(got.documents, ["new"]);
});

test("delete by ids, by where and by whereDocument", async () => {
  const col = await filterCollection("delete");
  await col.delete({ ids: ["r1", "missing"] });
  assert.equal(await col.count(), 5);
  await col.delete({ where: { color: "blue" } });
  await col.delete({ whereDocument: { $contains: "dog" } });
  assert.deepEqual(sorted((await col.get()).ids), ["r3", "r5", "r6"]);
});

test("a deleted collection's records are gone with it", async () => {
  const col = await makeCollection("dropped");
  await col.add({ ids: ["a", "b"], embeddings: [[1, 1], [2, 2]] });
  await client.deleteCollection({ name: col.name });
  await assert.rejects(col.count(), ChromaNotFoundError);
  const again = await makeCollection("dropped-again");
  assert.equal(await again.count(), 0);
});
