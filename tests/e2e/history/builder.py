"""A small builder of hand-written histories, for checker tests and planted anomalies.

Times are plain integers (units don't matter to the checkers, only order). Each helper
appends one operation and returns it, so a test reads like the history it describes.
"""

from __future__ import annotations

from tests.e2e.history.history import KV, Act, Cmp, History, Op, Result, Status


class Builder:
    def __init__(self, seed: int = 0, scenario: str = "unit") -> None:
        self.history = History(seed=seed, scenario=scenario)

    def _op(self, name: str, client: int, t0: int, t1: int | None, status: Status,
            success: list[Act], results: list[Result], rev: int, compares: list[Cmp] | None = None,
            failure: list[Act] | None = None, succeeded: bool = True,
            serializable: bool = False) -> Op:
        op = Op(id=len(self.history.ops), client=client, name=name, invoke=t0,
                compares=compares or [], success=success, failure=failure or [],
                serializable=serializable, status=status,
                complete=t1 if status is Status.OK else None, revision=rev,
                succeeded=succeeded, results=results if status is Status.OK else [])
        self.history.ops.append(op)
        return op

    def put(self, key: str, value: str, t0: int, t1: int, rev: int = 0, client: int = 0,
            status: Status = Status.OK) -> Op:
        return self._op("put", client, t0, t1, status, [Act("put", key, value)], [None], rev)

    def delete(self, key: str, t0: int, t1: int, rev: int, deleted: int, client: int = 0,
               status: Status = Status.OK) -> Op:
        return self._op("delete", client, t0, t1, status, [Act("del", key)], [deleted], rev)

    def get(self, key: str, kv: KV | None, t0: int, t1: int, rev: int, client: int = 0,
            serializable: bool = False) -> Op:
        return self._op("get", client, t0, t1, Status.OK, [Act("get", key)], [kv], rev,
                        serializable=serializable)

    def range(self, kvs: list[KV], t0: int, t1: int, rev: int, client: int = 0,
              name: str = "range") -> Op:
        return self._op(name, client, t0, t1, Status.OK, [Act("range")], [kvs], rev)

    def cas(self, key: str, expect: str | None, value: str, t0: int, t1: int, rev: int,
            succeeded: bool, seen: KV | None = None, client: int = 0,
            status: Status = Status.OK) -> Op:
        return self._op("cas", client, t0, t1, status, [Act("put", key, value)],
                        [None] if succeeded else [seen], rev, compares=[Cmp(key, expect)],
                        failure=[Act("get", key)], succeeded=succeeded)

    def txn2(self, k1: str, expect: str | None, v1: str, k2: str, v2: str, t0: int, t1: int,
             rev: int, succeeded: bool, seen: tuple[KV | None, KV | None] = (None, None),
             client: int = 0, status: Status = Status.OK) -> Op:
        results: list[Result] = [None, None] if succeeded else [seen[0], seen[1]]
        return self._op("txn2", client, t0, t1, status,
                        [Act("put", k1, v1), Act("put", k2, v2)], results, rev,
                        compares=[Cmp(k1, expect)], failure=[Act("get", k1), Act("get", k2)],
                        succeeded=succeeded)
