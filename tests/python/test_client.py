"""Drive a running server through the official chromadb HttpClient.

    VDB_HOST=127.0.0.1 VDB_PORT=8000 VDB_ADD_EXISTING=reject \
        data/venv/bin/python -m pytest tests/python/test_client.py

Every Collection method of the seed (count, add, get, peek, query, modify,
update, upsert, delete) with filters, include lists, paging and errors.
Embeddings are always explicit (the client's default embedding function needs
an ONNX model download) and chosen to be exactly representable in f32, so
round trips compare with ==. Every test makes its own collections (unique
names) and deletes them, so tests are independent and can run in any order.

VDB_ADD_EXISTING says how the server treats `add` of an id that already
exists: `reject` (ours by default: 409 IDAlreadyExists, nothing written) or
`skip` (Chroma 1.x: existing ids are skipped silently, new ones written).
Against a real `chroma run`, use VDB_ADD_EXISTING=skip.
"""

from __future__ import annotations

import base64
import math
import os
import struct
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import chromadb
import httpx
import pytest
from chromadb.config import Settings
from chromadb.errors import (
    AuthorizationError,
    ChromaAuthError,
    ChromaError,
    DuplicateIDError,
    IDAlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    UniqueConstraintError,
)

HOST = os.environ.get("VDB_HOST", "127.0.0.1")
PORT = int(os.environ.get("VDB_PORT", "8000"))
ADD_EXISTING = os.environ.get("VDB_ADD_EXISTING", "reject")
assert ADD_EXISTING in ("reject", "skip"), "VDB_ADD_EXISTING must be reject or skip"

BASE = f"http://{HOST}:{PORT}/api/v2"
TD = f"{BASE}/tenants/default_tenant/databases/default_database"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client() -> Iterator[chromadb.api.ClientAPI]:
    c = chromadb.HttpClient(host=HOST, port=PORT)
    yield c


def unique_name(request: pytest.FixtureRequest, suffix: str = "") -> str:
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch in "-.")[:40].strip("-.")
    return f"t-{base}{suffix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_collection(
    client: chromadb.api.ClientAPI, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Create collections with unique names; delete them after the test."""
    created: List[str] = []

    def make(metadata: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Any:
        name = unique_name(request, f"-{len(created)}")
        col = client.create_collection(
            name, metadata=metadata, embedding_function=None, **kwargs
        )
        created.append(name)
        return col

    yield make
    for name in created:
        try:
            # Empty the collection before dropping it. Real Chroma 1.5.9 (local
            # sqlite) leaks the *array-valued* metadata of a deleted
            # collection's records into records added later to another
            # collection (reused row ids); deleting the records first avoids
            # that, so these tests pass against it. See CLIENT-NOTES.md.
            c = client.get_collection(name, embedding_function=None)
            ids = c.get(include=[])["ids"]
            if ids:
                c.delete(ids=ids)
            client.delete_collection(name)
        except NotFoundError:
            pass  # the test deleted or renamed it


@pytest.fixture
def col(make_collection: Callable[..., Any]) -> Any:
    return make_collection()


# A fixed data set for filter tests. Embeddings are 2-d, exact in f32.
FILTER_IDS = ["r1", "r2", "r3", "r4", "r5", "r6"]
FILTER_EMB = [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [5.0, 0.0], [6.0, 0.0]]
FILTER_META: List[Optional[Dict[str, Any]]] = [
    {"color": "red", "n": 1, "score": 0.5, "ok": True, "tags": ["a", "b"], "nums": [1, 2]},
    {"color": "blue", "n": 2, "score": 1.5, "ok": False, "tags": ["b", "c"], "nums": [2, 3]},
    {"color": "red", "n": 3, "score": 2.5, "ok": True, "tags": ["c"], "nums": [3]},
    {"color": "green", "n": 4, "score": 3.5, "ok": False},
    {"n": 5, "score": 4.5},  # no color, no ok, no tags
    None,  # no metadata at all
]
FILTER_DOCS: List[Optional[str]] = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "Quick thinking",
    "a dog named fox",
    "nothing here 123",
    None,  # no document
]


@pytest.fixture
def filter_col(col: Any) -> Any:
    col.add(ids=FILTER_IDS, embeddings=FILTER_EMB, metadatas=FILTER_META, documents=FILTER_DOCS)
    return col


def ids_of(result: Any) -> List[str]:
    return sorted(result["ids"])


# ---------------------------------------------------------------- system


def test_heartbeat_version_preflight(client: Any) -> None:
    assert client.heartbeat() > 0
    assert isinstance(client.get_version(), str) and client.get_version() != ""
    pre = httpx.get(f"{BASE}/pre-flight-checks").json()
    assert pre["supports_base64_encoding"] is True
    assert isinstance(pre["max_batch_size"], int) and pre["max_batch_size"] > 0
    # the client picked that up: it will send base64 embeddings
    assert client.get_max_batch_size() == pre["max_batch_size"]


# ---------------------------------------------------------------- collections


def test_create_get_list_count_delete_collection(
    client: Any, request: pytest.FixtureRequest
) -> None:
    name = unique_name(request)
    before = client.count_collections()
    created = client.create_collection(name, metadata={"owner": "test", "v": 2}, embedding_function=None)
    try:
        assert created.name == name
        assert created.metadata == {"owner": "test", "v": 2}
        got = client.get_collection(name, embedding_function=None)
        assert got.id == created.id
        assert got.name == name
        assert got.metadata == {"owner": "test", "v": 2}
        assert got.tenant == "default_tenant" and got.database == "default_database"
        assert client.count_collections() == before + 1
        names = [c.name for c in client.list_collections()]
        assert name in names
        r = httpx.get(f"{TD}/collections/by-id/{created.id}")
        assert r.status_code == 200 and r.json()["name"] == name
    finally:
        client.delete_collection(name)
    with pytest.raises(NotFoundError):
        client.get_collection(name)
    assert client.count_collections() == before
    assert name not in [c.name for c in client.list_collections()]


def test_list_collections_paging(client: Any, make_collection: Callable[..., Any]) -> None:
    mine = {make_collection().name for _ in range(3)}
    total = client.count_collections()
    seen: List[str] = []
    for offset in range(0, total, 2):
        page = client.list_collections(limit=2, offset=offset)
        assert len(page) == min(2, total - offset)
        seen.extend(c.name for c in page)
    assert len(seen) == len(set(seen)) == total
    assert mine <= set(seen)


def test_create_existing_collection_fails(client: Any, col: Any) -> None:
    with pytest.raises(ChromaError) as e:
        client.create_collection(col.name, embedding_function=None)
    # real Chroma sends error "ChromaError" with "already exists"; ours may
    # send UniqueConstraintError. Chroma's own test accepts both.
    assert isinstance(e.value, UniqueConstraintError) or "already exists" in str(e.value)


def test_get_or_create_returns_existing(client: Any, col: Any) -> None:
    col.add(ids=["x"], embeddings=[[1.0, 2.0]])
    again = client.get_or_create_collection(col.name, embedding_function=None)
    assert again.id == col.id
    assert again.count() == 1


def test_invalid_collection_name(client: Any) -> None:
    for bad in ["ab", "-starts-with-dash", "has space in it", "x" * 513]:
        with pytest.raises(InvalidArgumentError):  # the server's check, not the client's
            client.create_collection(bad, embedding_function=None)


def test_get_missing_collection_not_found(client: Any) -> None:
    with pytest.raises(NotFoundError):
        client.get_collection("missing-" + uuid.uuid4().hex)
    with pytest.raises(NotFoundError):
        client.delete_collection("missing-" + uuid.uuid4().hex)


def test_distance_space_from_configuration_and_metadata(make_collection: Callable[..., Any]) -> None:
    cos = make_collection(configuration={"hnsw": {"space": "cosine"}})
    assert cos.configuration_json["hnsw"]["space"] == "cosine"
    ip = make_collection(metadata={"hnsw:space": "ip"})
    assert ip.configuration_json["hnsw"]["space"] == "ip"
    l2 = make_collection()
    assert l2.configuration_json["hnsw"]["space"] == "l2"


def test_modify_name_and_metadata(client: Any, make_collection: Callable[..., Any]) -> None:
    c = make_collection(metadata={"a": 1})
    c.add(ids=["k"], embeddings=[[1.0, 1.0]], documents=["kept"])
    old = c.name
    new = old + "-renamed"
    c.modify(name=new, metadata={"b": "two"})
    try:
        got = client.get_collection(new, embedding_function=None)
        assert got.id == c.id
        assert got.metadata == {"b": "two"}
        assert got.get(ids=["k"])["documents"] == ["kept"]
        with pytest.raises(NotFoundError):
            client.get_collection(old)
        # rename back so the fixture cleans up
        got.modify(name=old)
        assert client.get_collection(old, embedding_function=None).id == c.id
    finally:
        try:
            client.delete_collection(new)
        except NotFoundError:
            pass


def test_modify_configuration(client: Any, make_collection: Callable[..., Any]) -> None:
    # The client rebuilds the collection's schema from the response and
    # refuses to modify the configuration when the schema lacks the vector
    # index defaults, so this also checks the schema the server returns.
    c = make_collection()
    c.add(ids=["k"], embeddings=[[1.0, 1.0]])
    c.modify(configuration={"hnsw": {"ef_search": 200}})
    got = client.get_collection(c.name, embedding_function=None)
    assert got.configuration_json["hnsw"]["ef_search"] == 200
    assert got.query(query_embeddings=[[1.0, 1.0]], n_results=1)["ids"] == [["k"]]


def test_modify_to_existing_name_fails(make_collection: Callable[..., Any]) -> None:
    a = make_collection()
    b = make_collection()
    with pytest.raises(ChromaError):
        b.modify(name=a.name)


def test_database_isolation(request: pytest.FixtureRequest) -> None:
    db = "db-" + uuid.uuid4().hex[:12]
    admin = chromadb.AdminClient(chromadb.Settings(chroma_api_impl="chromadb.api.fastapi.FastAPI",
                                                   chroma_server_host=HOST, chroma_server_http_port=PORT))
    admin.create_database(db)
    try:
        assert admin.get_database(db)["name"] == db
        other = chromadb.HttpClient(host=HOST, port=PORT, database=db)
        name = unique_name(request)
        c = other.create_collection(name, embedding_function=None)
        c.add(ids=["only-here"], embeddings=[[0.5]])
        default = chromadb.HttpClient(host=HOST, port=PORT)
        with pytest.raises(NotFoundError):
            default.get_collection(name)
        assert other.get_collection(name, embedding_function=None).count() == 1
        other.delete_collection(name)
    finally:
        admin.delete_database(db)
    with pytest.raises(NotFoundError):
        admin.get_database(db)


# ---------------------------------------------------------------- add / count / get


def test_add_count_get_roundtrip(col: Any) -> None:
    assert col.count() == 0
    col.add(
        ids=["a", "b", "c"],
        embeddings=[[1.0, 0.5, -2.0], [0.25, 0.0, 8.0], [-1.5, 3.0, 0.125]],
        metadatas=[{"s": "x", "i": 7, "f": 1.25, "b": True}, {"l": ["p", "q"], "li": [1, 2], "lf": [0.5], "lb": [False]}, None],
        documents=["doc a", None, "doc c"],
    )
    assert col.count() == 3
    r = col.get(ids=["c", "a"], include=["embeddings", "metadatas", "documents"])
    order = {i: n for n, i in enumerate(r["ids"])}
    assert set(order) == {"a", "c"}
    a, c = order["a"], order["c"]
    assert list(r["embeddings"][a]) == [1.0, 0.5, -2.0]
    assert list(r["embeddings"][c]) == [-1.5, 3.0, 0.125]
    assert r["documents"][a] == "doc a" and r["documents"][c] == "doc c"
    assert r["metadatas"][a] == {"s": "x", "i": 7, "f": 1.25, "b": True}
    assert type(r["metadatas"][a]["i"]) is int and type(r["metadatas"][a]["f"]) is float
    assert type(r["metadatas"][a]["b"]) is bool
    assert r["metadatas"][c] is None
    b = col.get(ids=["b"], include=["metadatas", "documents"])
    assert b["documents"] == [None]
    assert b["metadatas"] == [{"l": ["p", "q"], "li": [1, 2], "lf": [0.5], "lb": [False]}]
    # ids that do not exist are simply absent
    assert col.get(ids=["nope"])["ids"] == []
    assert ids_of(col.get(ids=["a", "nope"])) == ["a"]


def test_collection_dimension_enforced(col: Any) -> None:
    col.add(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
    with pytest.raises(InvalidArgumentError) as e:
        col.add(ids=["b"], embeddings=[[1.0, 2.0]])
    assert "dimension" in str(e.value)
    with pytest.raises(InvalidArgumentError):
        col.upsert(ids=["c"], embeddings=[[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(InvalidArgumentError):
        col.query(query_embeddings=[[1.0, 2.0]], n_results=1)
    assert col.count() == 1
    assert col.get()["ids"] == ["a"]


def test_add_duplicate_ids_in_request(col: Any) -> None:
    with pytest.raises(DuplicateIDError):
        col.add(ids=["d", "d"], embeddings=[[1.0], [2.0]])
    assert col.count() == 0


def test_add_existing_id(col: Any) -> None:
    col.add(ids=["old"], embeddings=[[1.0, 1.0]], documents=["original"], metadatas=[{"v": 1}])
    if ADD_EXISTING == "reject":
        with pytest.raises(IDAlreadyExistsError) as e:
            col.add(ids=["new", "old"], embeddings=[[2.0, 2.0], [9.0, 9.0]], documents=["fresh", "replaced"])
        assert "old" in str(e.value)
        # nothing of the rejected request was written
        assert col.count() == 1
        assert col.get(ids=["new"])["ids"] == []
    else:
        col.add(ids=["new", "old"], embeddings=[[2.0, 2.0], [9.0, 9.0]], documents=["fresh", "replaced"])
        assert col.count() == 2
        assert col.get(ids=["new"])["documents"] == ["fresh"]
    # either way the existing record is untouched
    r = col.get(ids=["old"], include=["embeddings", "documents", "metadatas"])
    assert r["documents"] == ["original"]
    assert r["metadatas"] == [{"v": 1}]
    assert list(r["embeddings"][0]) == [1.0, 1.0]


def test_base64_and_plain_list_embeddings(col: Any) -> None:
    """The client sends base64 little-endian f32; the wire also accepts lists."""
    vec = [0.1, -3.4028234663852886e38, 1e-45, 123456.789]
    f32 = list(struct.unpack("<4f", struct.pack("<4f", *vec)))
    col.add(ids=["via-client"], embeddings=[vec])
    b64 = base64.b64encode(struct.pack("<4f", *vec)).decode()
    r = httpx.post(f"{TD}/collections/{col.id}/add", json={
        "ids": ["raw-b64"], "embeddings": [b64], "metadatas": None, "documents": None, "uris": None})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{TD}/collections/{col.id}/add", json={
        "ids": ["raw-list"], "embeddings": [f32], "metadatas": None, "documents": None, "uris": None})
    assert r.status_code == 201, r.text
    got = col.get(ids=["via-client", "raw-b64", "raw-list"], include=["embeddings"])
    assert len(got["ids"]) == 3
    for emb in got["embeddings"]:
        # responses carry the f32 value in its shortest decimal form (real
        # Chroma prints 0.1 for f32(0.1)); compare after rounding to f32
        assert list(struct.unpack("<4f", struct.pack("<4f", *[float(x) for x in emb]))) == f32


def test_uris_roundtrip(col: Any) -> None:
    col.add(ids=["u1", "u2"], embeddings=[[1.0], [2.0]], uris=["s3://bucket/a", "file:///b"])
    r = col.get(ids=["u1", "u2"], include=["uris"])
    assert dict(zip(r["ids"], r["uris"])) == {"u1": "s3://bucket/a", "u2": "file:///b"}


def test_empty_collection_reads(col: Any) -> None:
    assert col.count() == 0
    assert col.get()["ids"] == []
    assert col.peek()["ids"] == []


# ---------------------------------------------------------------- include lists


def test_get_include_lists(filter_col: Any) -> None:
    r = filter_col.get(ids=["r1"])  # default: documents + metadatas
    assert r["ids"] == ["r1"]
    assert r["documents"] == ["the quick brown fox"]
    assert r["metadatas"][0]["color"] == "red"
    assert r["embeddings"] is None
    r = filter_col.get(ids=["r1"], include=[])
    assert r["ids"] == ["r1"]
    assert r["documents"] is None and r["metadatas"] is None and r["embeddings"] is None
    r = filter_col.get(ids=["r2"], include=["embeddings"])
    assert [list(e) for e in r["embeddings"]] == [[2.0, 0.0]]
    assert r["documents"] is None and r["metadatas"] is None
    r = filter_col.get(ids=["r6"], include=["documents", "metadatas", "embeddings", "uris"])
    assert r["documents"] == [None] and r["metadatas"] == [None] and r["uris"] == [None]
    assert [list(e) for e in r["embeddings"]] == [[6.0, 0.0]]


def test_query_include_lists(filter_col: Any) -> None:
    q = [[1.0, 0.0]]
    r = filter_col.query(query_embeddings=q, n_results=2)  # default: docs, metas, distances
    assert r["ids"] == [["r1", "r2"]]
    assert r["distances"] == [[0.0, 1.0]]
    assert r["documents"] == [["the quick brown fox", "jumps over the lazy dog"]]
    assert r["metadatas"][0][1]["color"] == "blue"
    assert r["embeddings"] is None
    r = filter_col.query(query_embeddings=q, n_results=2, include=["embeddings"])
    assert r["ids"] == [["r1", "r2"]]
    assert [list(e) for e in r["embeddings"][0]] == [[1.0, 0.0], [2.0, 0.0]]
    assert r["distances"] is None and r["documents"] is None and r["metadatas"] is None
    r = filter_col.query(query_embeddings=q, n_results=1, include=[])
    assert r["ids"] == [["r1"]]
    assert r["distances"] is None and r["documents"] is None


# ---------------------------------------------------------------- peek, paging


def test_peek(col: Any) -> None:
    col.add(ids=[f"p{i:02d}" for i in range(12)], embeddings=[[float(i)] for i in range(12)],
            documents=[f"doc {i}" for i in range(12)])
    r = col.peek()
    assert len(r["ids"]) == 10
    assert len(set(r["ids"])) == 10
    assert set(r["ids"]) <= {f"p{i:02d}" for i in range(12)}
    for i, e, d in zip(r["ids"], r["embeddings"], r["documents"]):
        n = int(i[1:])
        assert list(e) == [float(n)] and d == f"doc {n}"
    assert len(col.peek(3)["ids"]) == 3
    assert len(col.peek(50)["ids"]) == 12


def test_limit_offset_paging(col: Any) -> None:
    all_ids = [f"id-{i:03d}" for i in range(37)]
    col.add(ids=all_ids, embeddings=[[float(i), 1.0] for i in range(37)])
    first = col.get(include=[])["ids"]
    assert sorted(first) == all_ids
    assert col.get(include=[])["ids"] == first  # stable across calls
    paged: List[str] = []
    for off in range(0, 40, 5):
        page = col.get(limit=5, offset=off, include=[])["ids"]
        assert len(page) == max(0, min(5, 37 - off))
        paged.extend(page)
    assert paged == first  # no gaps, no repeats, same order as unpaged
    assert col.get(limit=0, include=[])["ids"] == []
    assert col.get(offset=36, include=[])["ids"] == first[36:]
    assert col.get(offset=100, include=[])["ids"] == []


def test_paging_with_where(col: Any) -> None:
    col.add(ids=[f"w{i:02d}" for i in range(20)], embeddings=[[float(i)] for i in range(20)],
            metadatas=[{"even": i % 2 == 0, "i": i} for i in range(20)])
    evens = col.get(where={"even": True}, include=[])["ids"]
    assert sorted(evens) == [f"w{i:02d}" for i in range(0, 20, 2)]
    pages = [col.get(where={"even": True}, limit=3, offset=o, include=[])["ids"] for o in range(0, 12, 3)]
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert sum(pages, []) == evens


# ---------------------------------------------------------------- where filters

WHERE_CASES = [
    ("eq-implicit-str", {"color": "red"}, ["r1", "r3"]),
    ("eq-str", {"color": {"$eq": "blue"}}, ["r2"]),
    ("eq-int", {"n": {"$eq": 4}}, ["r4"]),
    ("eq-implicit-int", {"n": 2}, ["r2"]),
    ("eq-float", {"score": 2.5}, ["r3"]),
    ("eq-bool-true", {"ok": True}, ["r1", "r3"]),
    ("eq-bool-false", {"ok": {"$eq": False}}, ["r2", "r4"]),
    # Chroma 1.5.9: a record lacking the field matches $ne / $nin
    ("ne-str", {"color": {"$ne": "red"}}, ["r2", "r4", "r5", "r6"]),
    ("ne-int", {"n": {"$ne": 1}}, ["r2", "r3", "r4", "r5", "r6"]),
    ("ne-bool", {"ok": {"$ne": True}}, ["r2", "r4", "r5", "r6"]),
    ("gt-int", {"n": {"$gt": 3}}, ["r4", "r5"]),
    ("gte-int", {"n": {"$gte": 3}}, ["r3", "r4", "r5"]),
    ("lt-int", {"n": {"$lt": 2}}, ["r1"]),
    ("lte-int", {"n": {"$lte": 2}}, ["r1", "r2"]),
    ("gt-float", {"score": {"$gt": 2.5}}, ["r4", "r5"]),
    ("gte-float", {"score": {"$gte": 2.5}}, ["r3", "r4", "r5"]),
    ("lt-float", {"score": {"$lt": 1.5}}, ["r1"]),
    ("lte-float", {"score": {"$lte": 1.5}}, ["r1", "r2"]),
    ("gt-int-vs-float", {"n": {"$gt": 2.5}}, ["r3", "r4", "r5"]),
    ("lt-float-vs-int", {"score": {"$lt": 2}}, ["r1", "r2"]),
    ("in-str", {"color": {"$in": ["red", "green"]}}, ["r1", "r3", "r4"]),
    ("in-int", {"n": {"$in": [2, 5, 99]}}, ["r2", "r5"]),
    ("in-bool", {"ok": {"$in": [False]}}, ["r2", "r4"]),
    ("nin-str", {"color": {"$nin": ["red", "green"]}}, ["r2", "r5", "r6"]),
    ("nin-int", {"n": {"$nin": [1, 2, 3]}}, ["r4", "r5", "r6"]),
    ("contains-str-array", {"tags": {"$contains": "b"}}, ["r1", "r2"]),
    ("contains-int-array", {"nums": {"$contains": 3}}, ["r2", "r3"]),
    ("not-contains-str-array", {"tags": {"$not_contains": "b"}}, ["r3", "r4", "r5", "r6"]),
    ("not-contains-int-array", {"nums": {"$not_contains": 2}}, ["r3", "r4", "r5", "r6"]),
    ("and", {"$and": [{"color": "red"}, {"n": {"$gt": 1}}]}, ["r3"]),
    ("or", {"$or": [{"color": "blue"}, {"n": {"$gte": 5}}]}, ["r2", "r5"]),
    ("and-three", {"$and": [{"n": {"$gte": 1}}, {"n": {"$lte": 4}}, {"ok": False}]}, ["r2", "r4"]),
    ("nested", {"$or": [{"$and": [{"color": "red"}, {"ok": True}, {"n": {"$lt": 3}}]},
                        {"$and": [{"score": {"$gt": 3}}, {"color": {"$ne": "green"}}]}]}, ["r1", "r5"]),
    ("no-match", {"color": "purple"}, []),
    ("missing-field", {"nonexistent": "x"}, []),
]


@pytest.mark.parametrize("where,expected", [pytest.param(w, e, id=i) for i, w, e in WHERE_CASES])
def test_get_where(filter_col: Any, where: Dict[str, Any], expected: List[str]) -> None:
    assert ids_of(filter_col.get(where=where, include=[])) == expected


WHERE_DOCUMENT_CASES = [
    ("contains", {"$contains": "fox"}, ["r1", "r4"]),
    ("contains-case-sensitive", {"$contains": "Quick"}, ["r3"]),
    ("contains-digits", {"$contains": "123"}, ["r5"]),
    # records without a document match $not_contains / $not_regex in Chroma 1.5.9
    ("not-contains", {"$not_contains": "dog"}, ["r1", "r3", "r5", "r6"]),
    ("regex", {"$regex": "^[Qq]uick"}, ["r3"]),
    ("regex-class", {"$regex": "[0-9]+$"}, ["r5"]),
    ("regex-alt", {"$regex": "lazy|named"}, ["r2", "r4"]),
    ("not-regex", {"$not_regex": "o"}, ["r3", "r6"]),
    ("and", {"$and": [{"$contains": "dog"}, {"$contains": "fox"}]}, ["r4"]),
    ("or", {"$or": [{"$contains": "lazy"}, {"$regex": "^nothing"}]}, ["r2", "r5"]),
    ("and-not", {"$and": [{"$contains": "fox"}, {"$not_contains": "dog"}]}, ["r1"]),
]


@pytest.mark.parametrize("where_document,expected",
                         [pytest.param(w, e, id=i) for i, w, e in WHERE_DOCUMENT_CASES])
def test_get_where_document(filter_col: Any, where_document: Dict[str, Any], expected: List[str]) -> None:
    assert ids_of(filter_col.get(where_document=where_document, include=[])) == expected


def test_where_and_where_document_together(filter_col: Any) -> None:
    r = filter_col.get(where={"color": "red"}, where_document={"$contains": "fox"}, include=["documents"])
    assert r["ids"] == ["r1"] and r["documents"] == ["the quick brown fox"]
    r = filter_col.get(ids=["r1", "r2", "r4"], where_document={"$contains": "dog"}, include=[])
    assert ids_of(r) == ["r2", "r4"]
    r = filter_col.get(ids=["r1", "r2", "r3"], where={"ok": True}, include=[])
    assert ids_of(r) == ["r1", "r3"]


def test_invalid_where_rejected(filter_col: Any) -> None:
    # the client validates these itself (ValueError) before any request
    for bad in [{"n": {"$bogus": 1}}, {"$and": [{"n": 1}]}, {"n": {"$gt": "x"}}]:
        with pytest.raises((ValueError, InvalidArgumentError)):
            filter_col.get(where=bad)
    with pytest.raises((ValueError, InvalidArgumentError)):
        filter_col.get(where_document={"$contains": ""})
    # the server rejects what the client lets through or what a raw caller sends
    r = httpx.post(f"{TD}/collections/{filter_col.id}/get", json={"where": {"a": {"$bogus": 1}}})
    assert r.status_code == 400 and r.json()["error"] == "InvalidArgumentError"
    r = httpx.post(f"{TD}/collections/{filter_col.id}/get", json={"where": {"a": 1, "b": 2}})
    assert r.status_code == 400 and r.json()["error"] == "InvalidArgumentError"


# ---------------------------------------------------------------- query


def sq_l2(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b))


def cos_dist(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return 1.0 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def ip_dist(a: Sequence[float], b: Sequence[float]) -> float:
    return 1.0 - sum(x * y for x, y in zip(a, b))


QUERY_POINTS = {
    "q1": [1.0, 0.0, 0.0],
    "q2": [0.0, 2.0, 0.0],
    "q3": [0.5, 0.5, 0.5],
    "q4": [-1.0, 0.25, 3.0],
    "q5": [4.0, -2.0, 1.0],
}


@pytest.mark.parametrize("space,dist", [("l2", sq_l2), ("cosine", cos_dist), ("ip", ip_dist)])
def test_query_distances_and_order(make_collection: Callable[..., Any], space: str, dist: Callable[..., float]) -> None:
    c = make_collection(metadata={"hnsw:space": space})
    c.add(ids=list(QUERY_POINTS), embeddings=list(QUERY_POINTS.values()))
    queries = [[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]]
    r = c.query(query_embeddings=queries, n_results=3, include=["distances"])
    assert len(r["ids"]) == 2
    for qi, q in enumerate(queries):
        expected = sorted(QUERY_POINTS, key=lambda k: dist(q, QUERY_POINTS[k]))[:3]
        assert r["ids"][qi] == expected
        want = [dist(q, QUERY_POINTS[k]) for k in expected]
        assert r["distances"][qi] == pytest.approx(want, rel=1e-5, abs=1e-5)
        assert r["distances"][qi] == sorted(r["distances"][qi])


def test_query_n_results_larger_than_collection(col: Any) -> None:
    col.add(ids=["a", "b"], embeddings=[[0.0, 1.0], [0.0, 3.0]])
    r = col.query(query_embeddings=[[0.0, 0.0]], n_results=10)
    assert r["ids"] == [["a", "b"]]
    assert r["distances"] == [[1.0, 9.0]]


def test_query_with_filters(filter_col: Any) -> None:
    q = [[3.0, 0.0]]
    r = filter_col.query(query_embeddings=q, n_results=2, where={"color": "red"})
    assert r["ids"] == [["r3", "r1"]] and r["distances"] == [[0.0, 4.0]]
    r = filter_col.query(query_embeddings=q, n_results=10, where_document={"$contains": "dog"})
    assert sorted(r["ids"][0]) == ["r2", "r4"] and r["distances"] == [[1.0, 1.0]]  # a tie
    r = filter_col.query(query_embeddings=q, n_results=10, where={"n": {"$gte": 4}},
                         where_document={"$not_contains": "123"})
    assert r["ids"] == [["r4"]]
    r = filter_col.query(query_embeddings=q, n_results=3, where={"color": "purple"})
    assert r["ids"] == [[]] and r["distances"] == [[]]


def test_query_restricted_to_ids(filter_col: Any) -> None:
    r = filter_col.query(query_embeddings=[[1.0, 0.0], [6.0, 0.0]], n_results=5, ids=["r2", "r5"],
                         include=["distances", "documents"])
    assert r["ids"] == [["r2", "r5"], ["r5", "r2"]]
    assert r["distances"] == [[1.0, 16.0], [1.0, 16.0]]
    assert r["documents"] == [["jumps over the lazy dog", "nothing here 123"],
                              ["nothing here 123", "jumps over the lazy dog"]]


def test_query_many_records_exact_top_k(col: Any) -> None:
    """Enough records for an HNSW graph (and several shards); k-NN must be exact here."""
    n = 300
    ids = [f"g{i:03d}" for i in range(n)]
    embs = [[float(i % 17), float(i // 17), float((i * 7) % 11) / 4.0] for i in range(n)]
    col.add(ids=ids, embeddings=embs, metadatas=[{"i": i} for i in range(n)])
    assert col.count() == n
    q = [5.25, 8.5, 1.125]
    k = 15
    r = col.query(query_embeddings=[q], n_results=k, include=["distances", "metadatas"])
    want = sorted(range(n), key=lambda i: (sq_l2(q, embs[i]), i))[:k]
    # the exact top-k distances (ties may pick either id) ...
    assert r["distances"][0] == pytest.approx([sq_l2(q, embs[i]) for i in want], rel=1e-5, abs=1e-5)
    # ... and each returned id really is at the distance reported for it
    assert len(set(r["ids"][0])) == k
    for rid, d in zip(r["ids"][0], r["distances"][0]):
        assert d == pytest.approx(sq_l2(q, embs[int(rid[1:])]), rel=1e-5, abs=1e-5)
    assert all(m["i"] == int(i[1:]) for i, m in zip(r["ids"][0], r["metadatas"][0]))
    # filtered query over the same data
    r = col.query(query_embeddings=[q], n_results=5, where={"i": {"$lt": 10}}, include=["distances"])
    want = sorted(range(10), key=lambda i: (sq_l2(q, embs[i]), i))[:5]
    assert r["distances"][0] == pytest.approx([sq_l2(q, embs[i]) for i in want], rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------- update / upsert


def test_update(col: Any) -> None:
    col.add(ids=["a", "b"], embeddings=[[1.0, 1.0], [2.0, 2.0]], documents=["doc a", "doc b"],
            metadatas=[{"v": 1, "keep": "yes"}, {"v": 2}])
    col.update(ids=["a"], metadatas=[{"v": 10}])
    r = col.get(ids=["a"], include=["embeddings", "documents", "metadatas"])
    assert list(r["embeddings"][0]) == [1.0, 1.0]
    assert r["documents"] == ["doc a"]
    # Chroma merges metadata on update: given keys replaced, others kept
    assert r["metadatas"] == [{"v": 10, "keep": "yes"}]
    col.update(ids=["a"], embeddings=[[5.0, 5.0]])
    # documents without embeddings: the client would embed them itself with
    # the default (ONNX) embedding function, so send this one raw
    r = httpx.post(f"{TD}/collections/{col.id}/update", json={
        "ids": ["b"], "embeddings": None, "metadatas": None, "documents": ["new b"], "uris": None})
    assert r.status_code == 200, r.text
    r = col.get(ids=["a", "b"], include=["embeddings", "documents", "metadatas"])
    got = {i: (list(e), d, m) for i, e, d, m in zip(r["ids"], r["embeddings"], r["documents"], r["metadatas"])}
    assert got["a"] == ([5.0, 5.0], "doc a", {"v": 10, "keep": "yes"})
    assert got["b"] == ([2.0, 2.0], "new b", {"v": 2})
    # the updated embedding is what queries see
    assert col.query(query_embeddings=[[5.0, 5.0]], n_results=1)["ids"] == [["a"]]
    # updating a metadata key to None removes it
    col.update(ids=["a"], metadatas=[{"keep": None}])
    assert col.get(ids=["a"])["metadatas"] == [{"v": 10}]
    # update of a missing id is ignored
    col.update(ids=["missing"], embeddings=[[7.0, 7.0]])
    assert col.count() == 2
    assert col.get(ids=["missing"])["ids"] == []
    with pytest.raises(InvalidArgumentError):
        col.update(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])


def test_upsert(col: Any) -> None:
    col.add(ids=["a"], embeddings=[[1.0, 1.0]], documents=["doc a"], metadatas=[{"v": 1, "keep": "yes"}])
    col.upsert(ids=["a", "b"], embeddings=[[3.0, 3.0], [4.0, 4.0]], metadatas=[{"v": 2}, {"v": 3}])
    assert col.count() == 2
    r = col.get(ids=["a", "b"], include=["embeddings", "documents", "metadatas"])
    got = {i: (list(e), d, m) for i, e, d, m in zip(r["ids"], r["embeddings"], r["documents"], r["metadatas"])}
    # existing record: embedding and given metadata keys replaced, document kept
    assert got["a"][0] == [3.0, 3.0]
    assert got["a"][1] == "doc a"
    assert got["a"][2]["v"] == 2
    assert got["b"] == ([4.0, 4.0], None, {"v": 3})
    assert col.query(query_embeddings=[[3.0, 3.0]], n_results=1, include=["distances"])["ids"] == [["a"]]


# ---------------------------------------------------------------- delete


def test_delete_by_ids(col: Any) -> None:
    col.add(ids=["a", "b", "c"], embeddings=[[1.0], [2.0], [3.0]])
    col.delete(ids=["b", "not-there"])
    assert col.count() == 2
    assert ids_of(col.get()) == ["a", "c"]
    r = col.query(query_embeddings=[[2.0]], n_results=3, include=["distances"])
    assert sorted(r["ids"][0]) == ["a", "c"] and r["distances"] == [[1.0, 1.0]]  # a tie
    # a deleted id can be added again
    col.add(ids=["b"], embeddings=[[2.5]], documents=["back"])
    assert col.get(ids=["b"])["documents"] == ["back"]


def test_delete_by_where_and_where_document(filter_col: Any) -> None:
    filter_col.delete(where={"color": "red"})
    assert ids_of(filter_col.get(include=[])) == ["r2", "r4", "r5", "r6"]
    filter_col.delete(where_document={"$contains": "dog"})
    assert ids_of(filter_col.get(include=[])) == ["r5", "r6"]
    filter_col.delete(ids=["r5", "r6"], where={"n": 5})
    assert ids_of(filter_col.get(include=[])) == ["r6"]
    assert filter_col.count() == 1
    r = filter_col.query(query_embeddings=[[1.0, 0.0]], n_results=5)
    assert r["ids"] == [["r6"]]


def test_delete_needs_a_selector(col: Any) -> None:
    col.add(ids=["a"], embeddings=[[1.0]])
    with pytest.raises((ValueError, InvalidArgumentError)):
        col.delete()
    assert col.count() == 1


def test_delete_collection_removes_records(client: Any, request: pytest.FixtureRequest) -> None:
    name = unique_name(request)
    c = client.create_collection(name, embedding_function=None)
    c.add(ids=["a", "b"], embeddings=[[1.0], [2.0]])
    client.delete_collection(name)
    with pytest.raises(NotFoundError):
        c.count()
    with pytest.raises(NotFoundError):
        c.add(ids=["z"], embeddings=[[1.0]])
    with pytest.raises(NotFoundError):
        c.query(query_embeddings=[[1.0]])
    # a new collection with the same name starts empty
    c2 = client.create_collection(name, embedding_function=None)
    try:
        assert c2.id != c.id
        assert c2.count() == 0
        c2.add(ids=["x"], embeddings=[[1.0, 2.0, 3.0]])  # dimension is free again
        assert c2.count() == 1
    finally:
        client.delete_collection(name)


# ---------------------------------------------------------------- raw wire errors


def test_error_bodies_on_the_wire(col: Any) -> None:
    """Error bodies are {"error": NAME, "message": ...} with a NAME the client
    maps to its exception class (chromadb.errors.error_types), else the client
    raises a bare Exception."""
    from chromadb.errors import error_types

    r = httpx.post(f"{TD}/collections/{col.id}/add",
                   json={"ids": ["d", "d"], "embeddings": [[1.0], [2.0]], "metadatas": None,
                         "documents": None, "uris": None})
    # real Chroma's server accepts duplicates (the client checks them); a
    # server that rejects them must use a name the client knows (DuplicateID)
    if r.status_code != 201:
        assert r.status_code == 400 and r.json()["error"] in error_types, r.text
        assert col.count() == 0
    col.delete(ids=["d"])
    r = httpx.get(f"{TD}/collections/missing-{uuid.uuid4().hex}")
    assert r.status_code == 404 and r.json()["error"] == "NotFoundError"
    r = httpx.post(f"{TD}/collections/{col.id}/add", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "InvalidArgumentError"
    r = httpx.post(f"{TD}/collections/{col.id}/add", json={"ids": ["a", "b"], "embeddings": [[1.0]]})
    assert r.status_code == 400 and r.json()["error"] == "InvalidArgumentError"
    r = httpx.post(f"{TD}/collections", json={"name": "a", "get_or_create": False})
    assert r.status_code == 400 and r.json()["error"] == "InvalidArgumentError"
    assert col.count() == 0


# ---------------------------------------------------------------- token auth
#
# scripts/test-python starts two more routers on the same cluster with
# Chroma's TokenAuthenticationServerProvider: VDB_AUTH_PORT with a users file
# (admin: every tenant and database; bob: tenant acme, database db1; header
# Authorization: Bearer), VDB_AUTH_X_PORT with the single token test-x-token
# in X-Chroma-Token. The client is configured exactly as Chroma documents it.

AUTH_PORT = os.environ.get("VDB_AUTH_PORT")
AUTH_X_PORT = os.environ.get("VDB_AUTH_X_PORT")
needs_auth = pytest.mark.skipif(
    not (AUTH_PORT and AUTH_X_PORT),
    reason="VDB_AUTH_PORT / VDB_AUTH_X_PORT not set (scripts/test-python sets them)",
)
TOKEN_CLIENT = "chromadb.auth.token_authn.TokenAuthClientProvider"


def token_settings(token: str, header: Optional[str] = None) -> Settings:
    extra = {"chroma_auth_token_transport_header": header} if header else {}
    return Settings(
        chroma_client_auth_provider=TOKEN_CLIENT,
        chroma_client_auth_credentials=token,
        **extra,
    )


def auth_client(port: Optional[str], settings: Optional[Settings] = None, **kwargs: Any) -> Any:
    assert port is not None
    return chromadb.HttpClient(host=HOST, port=int(port), settings=settings or Settings(), **kwargs)


def roundtrip(c: Any, request: pytest.FixtureRequest) -> None:
    name = unique_name(request)
    col = c.create_collection(name, embedding_function=None)
    try:
        col.add(ids=["a", "b"], embeddings=[[1.0, 2.0], [3.0, 4.0]])
        assert col.count() == 2
        assert col.query(query_embeddings=[[1.0, 2.0]], n_results=1)["ids"] == [["a"]]
    finally:
        c.delete_collection(name)


def admin_client(token: str) -> Any:
    return chromadb.AdminClient(Settings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI",
        chroma_server_host=HOST,
        chroma_server_http_port=int(AUTH_PORT or 0),
        chroma_client_auth_provider=TOKEN_CLIENT,
        chroma_client_auth_credentials=token,
    ))


@needs_auth
def test_token_auth_bearer(request: pytest.FixtureRequest) -> None:
    c = auth_client(AUTH_PORT, token_settings("test-admin-token"))
    identity = c.get_user_identity()
    assert (identity.user_id, identity.tenant, identity.databases) == ("admin", "*", ["*"])
    roundtrip(c, request)


@needs_auth
def test_token_auth_x_chroma_token(request: pytest.FixtureRequest) -> None:
    c = auth_client(AUTH_X_PORT, token_settings("test-x-token", "X-Chroma-Token"))
    assert c.get_user_identity().user_id == "anonymous"
    roundtrip(c, request)
    # The bearer form is not what this server reads.
    with pytest.raises(ChromaAuthError):
        auth_client(AUTH_X_PORT, token_settings("test-x-token"))


@needs_auth
def test_no_or_wrong_token_is_auth_error() -> None:
    # The client asks for its identity as it starts: a 401 AuthError there.
    with pytest.raises(ChromaAuthError):
        auth_client(AUTH_PORT)
    with pytest.raises(ChromaAuthError):
        auth_client(AUTH_PORT, token_settings("not-a-token"))
    with pytest.raises(ChromaAuthError):
        auth_client(AUTH_X_PORT, token_settings("test-admin-token", "X-Chroma-Token"))
    # The probes stay open, everything else needs the token.
    assert httpx.get(f"http://{HOST}:{AUTH_PORT}/api/v2/heartbeat").status_code == 200
    r = httpx.get(f"http://{HOST}:{AUTH_PORT}/api/v2/tenants/default_tenant/databases/default_database/collections")
    assert r.status_code == 401 and r.json()["error"] == "AuthError", r.text


@needs_auth
def test_forbidden_database_is_authorization_error(request: pytest.FixtureRequest) -> None:
    admin = admin_client("test-admin-token")
    try:
        admin.get_tenant("acme")
    except NotFoundError:
        admin.create_tenant("acme")
    for db in ("db1", "db2"):
        try:
            admin.get_database(db, tenant="acme")
        except NotFoundError:
            admin.create_database(db, tenant="acme")

    bob = token_settings("test-bob-token")
    c = auth_client(AUTH_PORT, bob, tenant="acme", database="db1")
    roundtrip(c, request)
    with pytest.raises(AuthorizationError):
        auth_client(AUTH_PORT, bob, tenant="acme", database="db2")
    with pytest.raises(AuthorizationError):
        auth_client(AUTH_PORT, bob)  # default_tenant / default_database
    with pytest.raises(AuthorizationError):
        admin_client("test-bob-token").create_database("db3", tenant="acme")
    with pytest.raises(NotFoundError):
        admin.get_database("db3", tenant="acme")
